"""Write a self-contained export of a run: its params (no optimizer or data state), its
resolved config and the tokenizer or preprocessing statistics it saved:

    python -m bigmodels.export --workdir=runs/quickstart --out=runs/quickstart-export \
        [--step=N --dtype=float32|bfloat16|int8|int4 --sparse]

Each of the run's regimes changes the params on the way (`Regime.export_params`, e.g.
merging adapters). The export is what to share: `bigmodels.sample --workdir=<out>`
samples from it, `--config.init_from=<out>` fine-tunes from it and
`bigmodels.checkpoint.load(<out>)` reads it on any topology.

Smaller files: `--dtype=bfloat16` halves every float array; `--dtype=int8|int4` is
`bigmodels.quantize` with its defaults (a quantized export, for serving); `--sparse`
stores each array that is mostly exact zeros (a pruned kernel) as a packed bitmask and
its nonzero values (bigmodels/checkpoint/packing.py). Each reads back as written. An
export may be the source of a smaller one.
"""

import os

from absl import flags, logging

from bigmodels.cli import fail, run_main
from bigmodels.names import CONFIG_FILE, DATA_FILES


def define_flags() -> None:
    """Only when run as a program: every entry point defines --workdir, and defining it
    twice in one process fails, so `export` and `sample.sample` import side by side."""
    flags.DEFINE_string("workdir", None, "A training run's workdir or a step directory.")
    flags.DEFINE_string("out", None, "Directory to create for the export (or an empty one).")
    flags.DEFINE_integer("step", None, "Step to export; default: the latest committed.")
    flags.DEFINE_string("dtype", "float32", "float32 | bfloat16 | int8 | int4 (quantized "
                        "with qwix, as bigmodels.quantize).")
    flags.DEFINE_bool("sparse", False, "Store mostly-zero arrays as a bitmask + values.")


DTYPES = ("float32", "bfloat16", "int8", "int4")


def _mesh(config):
    """The run's mesh on this host's devices or, when they cannot hold it, an abstract
    mesh of its sizes: regimes read only its shape, and exports run anywhere."""
    import jax
    from bigmodels import sharding
    from bigmodels.errors import BadInput
    try:
        return sharding.make_mesh(config.mesh)
    except BadInput:
        sizes = [max(int(config.mesh[a]), 1) for a in sharding.MESH_AXES]
        return jax.sharding.AbstractMesh(tuple(sizes), sharding.MESH_AXES)


def build_task(config, source: str, data=None):
    """The task of the run whose config and run files are in `source`, built as
    train/setup.py builds it; without `data`, only from what the run saved."""
    import types
    from bigmodels import models, tasks
    from bigmodels.data import preprocess
    from bigmodels.names import PREPROCESS_FILE
    # A task may need the statistics its data saved (a GAN's FID pixel space).
    stats = os.path.join(source, PREPROCESS_FILE)
    if data is None and os.path.isfile(stats):
        data = types.SimpleNamespace(stats=preprocess.load(stats))
    if config.get("fid_classifier"):
        # Eval only: the GAN's FID classifier run need not exist where the export runs.
        config = config.copy_and_resolve_references()
        config.fid_classifier = ""
    return tasks.build(config, models.build(config.model), data)


def build_regimes(config, source: str):
    """The regimes of the run whose config and run files are in `source`, built as
    train/setup.py builds them (without reading its data)."""
    from bigmodels import regimes
    return regimes.build(config, build_task(config, source), _mesh(config))


def export_transform(workdir: str, step: int | None = None):
    """params -> params through every regime of the run at `workdir` (its
    `export_params`: e.g. LoRA merges its adapters); None for an export, whose params
    went through them when it was written."""
    from bigmodels import checkpoint
    if checkpoint.is_export(os.path.abspath(workdir)):
        return None
    source = checkpoint.run_dir(workdir, step)
    regimes = build_regimes(checkpoint.read_config(source), source)
    saved = checkpoint.metadata(workdir, step)

    def transform(params):
        for regime in regimes:
            # Its own state (state.extra[name]) if the checkpoint holds one.
            prefix = f"extra/{regime.name}/"
            extra = (checkpoint.load(workdir, step, prefix=prefix[:-1])
                     if any(n.startswith(prefix) for n in saved) else None)
            params = regime.export_params(params, extra)
        return params
    return transform


def model_params(workdir: str, step: int | None = None):
    """The params of a run or export as its plain model takes them (a LoRA run's
    adapters merged): what sampling and the Hugging Face export read."""
    from bigmodels import checkpoint
    params = checkpoint.load(workdir, step)
    transform = export_transform(workdir, step)
    return params if transform is None else transform(params)


def export(workdir: str, out: str, step: int | None = None, dtype: str = "float32",
           sparse: bool = False, quant_spec=None) -> str:
    """Writes the export of `workdir` (a run, one of its step directories, or an export
    when `dtype`, `sparse` or `quant_spec` make it smaller) to `out`; returns its path.
    `quant_spec` (a bigmodels.quant.QuantSpec) quantizes as bigmodels.quantize does;
    `dtype` int8 or int4 alone means its defaults."""
    from bigmodels import checkpoint, quant
    from bigmodels.errors import BadInput
    if dtype not in DTYPES:
        raise BadInput(f"--dtype: unknown dtype {dtype!r} (known: {', '.join(DTYPES)})")
    source = checkpoint.run_dir(workdir, step)
    config = checkpoint.read_config(source)
    if quant.is_quantized(config):
        raise BadInput(f"{workdir} is already quantized (quant.weights="
                       f"{config.quant.weights}); quantize the float run or export it "
                       f"came from")
    if quant_spec is None and dtype in quant.QTYPES:
        quant_spec = quant.QuantSpec(weights=dtype)
    if quant_spec is not None:
        quant.check(quant_spec, prefix="--")
    if (checkpoint.is_export(os.path.abspath(workdir)) and dtype == "float32" and not sparse
            and quant_spec is None):
        raise BadInput(f"export: {workdir} is already an export (its params went through "
                       f"the run's export hooks); copy the directory instead")
    checkpoint.check_export_out(out)        # before the costly part
    transform = export_transform(workdir, step)
    config_json = None
    if quant_spec is not None:
        transform, config_json = _quantizing(config, source, transform, quant_spec)
    elif dtype == "bfloat16":
        transform = _then(transform, _to_bfloat16)
    return checkpoint.export_params(workdir, out, step, transform, run_files=True,
                                    config_json=config_json, sparse=sparse)


def _then(first, second):
    return second if first is None else (lambda params: second(first(params)))


def _to_bfloat16(params):
    import jax
    import jax.numpy as jnp
    import numpy as np
    return jax.tree.map(lambda x: np.asarray(x).astype(jnp.bfloat16)
                        if jnp.issubdtype(x.dtype, jnp.floating) else x, params)


def _quantizing(config, source: str, transform, spec):
    """(params -> quantized params, the export's config.json): qwix traces the model
    once, on the shapes of one batch of the run's data."""
    import sys

    import ml_collections

    from bigmodels import data as data_lib
    from bigmodels import quant
    data = data_lib.build(config, source)
    task = build_task(config, source, data)
    example = data.train[0]

    def quantize(params):
        stored, notes = quant.quantize(task, params, spec, example)
        for note in notes:
            print(f"note: {note}", file=sys.stderr, flush=True)
        return stored
    quantized = config.copy_and_resolve_references()
    quantized.quant = ml_collections.ConfigDict(spec.as_config("ptq"))
    return _then(transform, quantize), quantized.to_json(indent=2)


def summary(out: str) -> str:
    """One line: where the export is, its size and its files."""
    sizes = [os.path.getsize(os.path.join(root, f))
             for root, _, files in os.walk(out) for f in files]
    run_files = [f for f in (CONFIG_FILE,) + DATA_FILES if os.path.isfile(os.path.join(out, f))]
    return f"exported to {out}: {sum(sizes) / 1e6:.2f} MB, params + {', '.join(run_files)}"


def main(argv):
    args = flags.FLAGS
    if not args.workdir or not args.out:
        fail("--workdir and --out are both required")
    logging.set_verbosity(logging.ERROR)
    print(summary(export(args.workdir, args.out, args.step, args.dtype, args.sparse)))


if __name__ == "__main__":
    define_flags()
    run_main(main)
