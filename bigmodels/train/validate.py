"""Checks a config before anything touches the workdir; each failure names its key."""

import os

import jax.numpy as jnp

from bigmodels.config import check_renamed
from bigmodels.errors import BadInput, require
from bigmodels.host_devices import check_cpu_devices


def check_config(config) -> None:
    check_renamed(config)
    for key in ("total_steps", "batch_size", "grad_accum_steps", "log_every", "eval_every",
                "ckpt_every"):
        require(config[key] > 0, f"{key} must be positive, got {config[key]}")
    require(config.batch_size % config.grad_accum_steps == 0,
            f"batch_size={config.batch_size} is not divisible by "
            f"grad_accum_steps={config.grad_accum_steps}")
    model = config.model
    check_dtypes(model)
    if "num_heads" in model and "embed_dim" in model:
        require(model.num_heads > 0 and model.embed_dim % model.num_heads == 0,
                f"model.num_heads={model.num_heads} does not divide "
                f"model.embed_dim={model.embed_dim}")
    if "context_length" in model:
        require(model.context_length > 0,
                f"model.context_length must be positive, got {model.context_length}")
        seq_len = config.data.get("seq_len", 0)
        require(0 <= seq_len <= model.context_length,
                f"data.seq_len={seq_len} is longer than the model's context "
                f"(model.context_length={model.context_length})" if seq_len > 0 else
                f"data.seq_len must be >= 0 (0 = model.context_length), got {seq_len}")
    specials = config.data.get("specials", "")
    require(specials in ("", "bert"), f"data.specials must be '' or 'bert', got {specials!r}")
    check_cpu_devices(config)
    require(config.data.prefetch >= 0,
            f"data.prefetch must be >= 0 (0 = no background thread), got "
            f"{config.data.prefetch}")
    require(config.preemption_check_every > 0,
            f"preemption_check_every must be positive, got {config.preemption_check_every}")
    require(config.nan_policy in ("stop", "skip"),
            f"nan_policy must be 'stop' or 'skip', got {config.nan_policy!r}")


# The dtypes a model computes in; its dtype keys take any name jnp.dtype resolves to one
# of them ("half" too), and anything else would fail deep inside model building.
DTYPES = ("float32", "bfloat16", "float16", "float64")


def check_dtypes(model) -> None:
    """Every `model.dtype` / `model.*_dtype` key names a float dtype."""
    for key, value in model.items():
        if key == "dtype" or key.endswith("_dtype"):
            try:
                name = jnp.dtype(value).name if isinstance(value, str) else None
            except TypeError:
                name = None
            require(name in DTYPES,
                    f"model.{key}={value!r}: unknown dtype; valid: {', '.join(DTYPES)}")


def check_batch_split(config, data_parallel: int) -> None:
    micro = config.batch_size // config.grad_accum_steps
    require(micro % data_parallel == 0,
            f"batch_size={config.batch_size} (microbatch {micro}) cannot be split over "
            f"{data_parallel} data-parallel devices (mesh data x fsdp)")


def check_workdir(workdir: str) -> None:
    require(bool(workdir), "workdir: no workdir given")
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise BadInput(f"workdir {workdir!r} exists and is not a directory")
