"""Write a self-contained export of a run: its params (no optimizer or data state), its
resolved config and the tokenizer or preprocessing statistics it saved:

    python -m bigmodels.export --workdir=runs/quickstart --out=runs/quickstart-export [--step=N]

Each of the run's regimes changes the params on the way (`Regime.export_params`, e.g.
merging adapters). The export is what to share: `bigmodels.sample --workdir=<out>`
samples from it, `--config.init_from=<out>` fine-tunes from it and
`bigmodels.checkpoint.load(<out>)` reads it on any topology.
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


def build_regimes(config, source: str):
    """The regimes of the run whose config and run files are in `source`, built as
    train/setup.py builds them (without reading its data)."""
    import types
    from bigmodels import models, regimes, tasks
    from bigmodels.data import preprocess
    from bigmodels.names import PREPROCESS_FILE
    # A task may need the statistics its data saved (a GAN's FID pixel space).
    stats = os.path.join(source, PREPROCESS_FILE)
    data = types.SimpleNamespace(stats=preprocess.load(stats)) if os.path.isfile(stats) else None
    if config.get("fid_classifier"):
        # Eval only: the GAN's FID classifier run need not exist where the export runs.
        config = config.copy_and_resolve_references()
        config.fid_classifier = ""
    task = tasks.build(config, models.build(config.model), data)
    return regimes.build(config, task, _mesh(config))


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


def export(workdir: str, out: str, step: int | None = None) -> str:
    """Writes the export of `workdir` (a run or one of its step directories) to `out`;
    returns its path."""
    from bigmodels import checkpoint
    from bigmodels.errors import BadInput
    if checkpoint.is_export(os.path.abspath(workdir)):
        raise BadInput(f"export: {workdir} is already an export (its params went through "
                       f"the run's export hooks); copy the directory instead")
    checkpoint.run_dir(workdir, step)
    checkpoint.check_export_out(out)        # before the costly part
    return checkpoint.export_params(workdir, out, step, export_transform(workdir, step),
                                    run_files=True)


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
    print(summary(export(args.workdir, args.out, args.step)))


if __name__ == "__main__":
    define_flags()
    run_main(main)
