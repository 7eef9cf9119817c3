"""Defaults shared by every experiment; experiment files start from `base_config()`.

Every key has a concrete default (never None) so that ml_collections can type-check
`--config.x=v` overrides.
"""

import difflib

import ml_collections

from bigmodels.errors import BadInput

# Renamed config keys and data kinds: an old name is refused with one line naming the
# new one, in a config (check_renamed) and in a --config.<key>=<value> override.
RENAMED = {
    "data.test_fraction": "data.val_fraction",
    "data.heldout_percent": "data.val_fraction",
    "data.eval_text_fraction": "data.val_fraction",
}
RENAMED_KINDS = {"sklearn": "toy_datasets", "espeak": "synthetic_speech"}
_NOTES = {"data.heldout_percent": " (a fraction now: percent / 100)"}


def _has_key(config, dotted: str) -> bool:
    node = config
    for part in dotted.split("."):
        if not hasattr(node, "keys") or part not in node:
            return False
        node = node[part]
    return True


def _key_renamed(key: str) -> BadInput:
    return BadInput(f"{key} was renamed to {RENAMED[key]}{_NOTES.get(key, '')}")


def _kind_renamed(kind: str) -> BadInput:
    return BadInput(f"data.kind={kind} was renamed to data.kind={RENAMED_KINDS[kind]}")


def check_renamed(config) -> None:
    """Raises BadInput naming the new key (or kind) if `config` uses an old one."""
    for old in RENAMED:
        if _has_key(config, old):
            raise _key_renamed(old)
    kind = config["data"].get("kind", "") if _has_key(config, "data") else ""
    if kind in RENAMED_KINDS:
        raise _kind_renamed(kind)


def override_args(argv, flag: str = "config"):
    """(key, value) of each override `--config.<key>=<value>` (or `... <value>`) in argv."""
    prefix = f"--{flag}."
    for i, arg in enumerate(argv):
        if arg.startswith(prefix):
            key, eq, value = arg[len(prefix):].partition("=")
            if not eq and i + 1 < len(argv):
                value = argv[i + 1]
            yield key, value


def check_renamed_overrides(argv, flag: str = "config") -> None:
    """The same for command-line overrides `--config.<key>=<value>` (or `... <value>`),
    which would otherwise fail as an unknown key."""
    for key, value in override_args(argv, flag):
        if key in RENAMED:
            raise _key_renamed(key)
        if key == "data.kind" and value in RENAMED_KINDS:
            raise _kind_renamed(value)


def unknown_key(config, dotted: str):
    """None if `dotted` ("optim.lr") is a key of `config`, else why not, with the
    nearest key that is ("unknown config key; did you mean optim.lr?")."""
    node, parts = config, dotted.split(".")
    for i, part in enumerate(parts):
        if not hasattr(node, "keys"):
            return (f"unknown config key; {'.'.join(parts[:i])} is a value of type "
                    f"{type(node).__name__}, not a group of keys")
        if part not in node:
            nearest = _nearest(node, parts[i:])
            hint = f"; did you mean {'.'.join(parts[:i] + nearest)}?" if nearest else ""
            return f"unknown config key{hint}"
        node = node[part]
    return None


def _nearest(node, parts):
    """The existing key path closest to `parts` under `node`, one part at a time
    (optimm.lrr -> optim.lr), or None when some part has no close match."""
    found = []
    for part in parts:
        if not hasattr(node, "keys"):
            return None
        if part not in node:
            close = difflib.get_close_matches(part, list(node.keys()), n=1)
            if not close:
                return None
            part = close[0]
        found.append(part)
        node = node[part]
    return found


def check_variant(arg: str, variants) -> None:
    """Raises BadInput unless `arg`, the variant of `--config=<file>:<variant>`, is ""
    (the experiment's full run) or one of the experiment's `variants`."""
    if arg and arg not in variants:
        raise BadInput(f"unknown variant {arg!r}; known: {', '.join(variants)}")


def tiny_run(config, batch_size: int = 8) -> None:
    """The run length of an experiment's `:tiny` variant (its smoke test): 6 steps,
    logging every 2, evaluating and checkpointing every 3."""
    config.update(total_steps=6, batch_size=batch_size, log_every=2, eval_every=3,
                  ckpt_every=3)


def base_config(**top) -> ml_collections.ConfigDict:
    """The defaults, with top-level keys (task, total_steps, ...) set from `top`."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.total_steps = 1000
    c.batch_size = 32               # global batch, summed over all devices and microbatches
    c.grad_accum_steps = 1          # microbatches per step, accumulated inside the jitted step
    c.log_every = 50
    c.eval_every = 200
    c.ckpt_every = 500
    c.keep_checkpoints = 3
    c.task = "causal_lm"
    c.sample_at_end = ""            # prompt to sample from when training ends ("" = no sample)
    c.sample_tokens = 200
    c.nan_policy = "stop"           # on a NaN/Inf loss or gradient: stop | skip (the update is dropped either way)
    c.nan_skip_limit = 10           # skip: stop anyway after this many non-finite steps in a row
    # Multi-process runs compare their SIGTERM flags (a cross-host collective) every this
    # many steps and at every checkpoint, never on every step (bigmodels/preemption.py).
    c.preemption_check_every = 10

    # Fine-tuning: start from another run's params (fresh optimizer, step 0). A workdir,
    # a step directory or a params export; ignored when the workdir already holds a run.
    c.init_from = ""
    c.init_from_skip = ""           # comma-separated regexes of params to leave freshly initialised
    c.init_from_rename = ""         # comma-separated old_regex=>new rules for checkpoint names

    # LoRA / QLoRA (bigmodels/regimes/lora.py): low-rank adapters on the Dense layers whose
    # module path (block_0/attn/qkv) matches the regex `targets`; the rest is the frozen
    # base, read from `base` (a run, step directory or export; "" = the model's own init)
    # and held as base_dtype: float32 | bfloat16 | int8 | nf4 (QLoRA). rank 0 = off.
    # checkpoint_base=False: checkpoints hold the adapters alone (plus the reference,
    # lora.base, in config.json); a resumed run re-reads the base.
    c.lora = ml_collections.ConfigDict(dict(
            rank=0, alpha=16.0, targets="(attn|mlp)/", dropout=0.0, base_dtype="float32",
            base="", checkpoint_base=True))

    # Magnitude pruning (bigmodels/regimes/prune.py): masks in the optimizer state, the
    # params matched by the regex `include` pruned by |w| per tensor, at mask steps from
    # begin_step to end_step (-1 = total_steps), every `every` steps, to the sparsity
    # target * (1 - (1 - progress)^3). structure: unstructured | n:m (e.g. 2:4: the n
    # largest of each m along a kernel's axis 0, from begin_step; target unused).
    # target 0 with unstructured = off. Pruned weights stay exactly zero.
    c.prune = ml_collections.ConfigDict(dict(
            target=0.0, begin_step=0, end_step=-1, every=10, include="kernel$",
            structure="unstructured"))

    # Quantization (bigmodels/quant/): mode "qat" trains with fake quantization
    # (bigmodels/regimes/qat.py); "ptq" marks a quantized export (bigmodels.quantize).
    # weights int8 | int4; activations "" (weights only) | int8; include / exclude:
    # regexes searched in module paths (block_0/mlp/wi), "" = all / none.
    c.quant = ml_collections.ConfigDict(dict(
            mode="", weights="int8", activations="", include="", exclude=""))

    # Knowledge distillation (bigmodels/regimes/distill.py): the loss is (1 - alpha) *
    # label loss + alpha * T^2 * KL(teacher || student) at temperature T, for tasks
    # classify and causal_lm. teacher: a run, step directory or export with the same
    # vocabulary and label set ("" = off); it is re-read on resume, never saved.
    c.distill = ml_collections.ConfigDict(dict(teacher="", temperature=2.0, alpha=0.5))

    # Multi-process runs (bigmodels/distributed.py): "auto" joins a SLURM or TPU-pod
    # cluster when there is one, "none" never, "host:port" is an explicit coordinator.
    c.distributed = ml_collections.ConfigDict(dict(
            coordinator="auto", num_processes=0, process_id=-1, timeout_s=300))

    # Local SGD / DiLoCo (bigmodels/regimes/local_sgd.py): each data group trains its own
    # replica for inner_steps steps, then one outer SGD step on the averaged change.
    c.local_sgd = ml_collections.ConfigDict(dict(
            inner_steps=0,              # 0 = off (plain synchronous data parallelism)
            outer_lr=0.7, outer_momentum=0.9, nesterov=True))

    # Axis sizes of the device mesh; -1 takes whatever devices are left. `rules` overrides
    # the logical-axis -> mesh-axis rules (bigmodels/sharding.py), e.g. "embed=tensor,
    # vocab=" ("" = the built-in rules; an empty right side = replicated; a+b = both axes).
    c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1, rules=""))
    # CPU devices the host's cores are split into (bigmodels/host_devices.py), set by the
    # command line before JAX starts: 1 = one device on all cores (XLA's default), 0 = one
    # per core as far as the mesh and batch can use them (data parallel), N = exactly N.
    c.cpu_devices = 1

    c.optim = ml_collections.ConfigDict(dict(
            name="adamw",               # sgd | momentum | adagrad | rmsprop | adam | adamw
            lr=1e-3,
            schedule="constant",        # constant | inverse_time | warmup_cosine | plateau
            warmup_steps=0,
            decay_steps=0,              # 0 = total_steps
            min_lr=0.0,
            decay_rate=0.0,             # inverse_time: lr / (1 + decay_rate * step)
            b1=0.9, b2=0.999, eps=1e-8,
            momentum=0.9, nesterov=False,
            rms_decay=0.9,
            weight_decay=0.0,           # decoupled (AdamW-style), on matrices only
            l2=0.0,                     # coupled L2: l2 * w added to the gradient, on matrices only
            l1=0.0,                     # L1: l1 * sign(w) added to the gradient, on matrices only
            clip_norm=0.0,              # global-norm clipping; 0 = off
            freeze="",                  # comma-separated regexes of params never updated
            lr_multipliers="",          # "regex=factor,...": per-group LR scale, first match wins
            plateau_factor=0.5, plateau_patience=10, plateau_cooldown=0,
            plateau_rtol=1e-4, plateau_accumulation=10,
            # Per top-level module optimizers, e.g. groups.generator.lr=2e-4: each group's
            # optimizer is this one with the group's overrides (optax.multi_transform).
            groups=ml_collections.ConfigDict(),
    ))

    c.data = ml_collections.ConfigDict(dict(
            kind="text",
            path="",                    # file, directory or glob
            tokenizer="byte",           # byte | char
            val_fraction=0.1,           # last fraction of the corpus held out for validation
            sampling="random",          # random windows (nanoGPT) | sequential (shuffled, non-overlapping)
            packing="",                 # "" | segmented: attention stays within each document (EOS-separated)
            eval_batches=20,
            prefetch=2,                 # batches built and placed on devices ahead, in a thread (0 = none)
            tfds_dir="",                # "" = $BIGMODELS_DATA_DIR or ~/.cache/bigmodels/tfds
            max_bytes=0,                # read at most this many bytes of the corpus; 0 = all
            seq_len=0,                  # tokens per training sequence; 0 = model.context_length
            specials="",                # "" | bert: add [PAD] [CLS] [SEP] [MASK] to the tokenizer
            mask_rate=0.15,             # masked LM: share of text tokens to predict
            name="",                    # a TFDS dataset, e.g. imdb_reviews (kinds tfds_*)
            text_key="text", label_key="label",
            train_split="train", eval_split="test",
    ))

    c.perf = ml_collections.ConfigDict(dict(
            peak_flops_per_device=0.0,  # 0 = look up the device kind in bigmodels.flops
    ))
    c.update(top)
    return c
