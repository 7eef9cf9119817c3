"""Write a params-only copy of a run's checkpoint (no optimizer or data state):

    python -m bigmodels.export --workdir=runs/quickstart --out=runs/quickstart-params [--step=N]

The export is what to share, or to fine-tune from with `--config.init_from=<out>`;
`bigmodels.checkpoint.load(<out>)` reads it on any topology.
"""

from absl import flags, logging

from bigmodels.cli import fail, run_main

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run's workdir or a step directory.")
_OUT = flags.DEFINE_string("out", None, "Directory to create for the export.")
_STEP = flags.DEFINE_integer("step", None, "Step to export; default: the latest committed.")


def main(argv):
    if len(argv) > 1:
        fail(f"unexpected arguments: {' '.join(argv[1:])}")
    if not _WORKDIR.value or not _OUT.value:
        fail("--workdir and --out are both required")
    logging.set_verbosity(logging.ERROR)
    from bigmodels import checkpoint
    out = checkpoint.export_params(_WORKDIR.value, _OUT.value, _STEP.value)
    print(f"exported params to {out}")


if __name__ == "__main__":
    run_main(main)
