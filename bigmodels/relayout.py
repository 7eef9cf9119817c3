"""Converts a run's params between the unscanned (block_0 ... block_{L-1}) and the
scanned (blocks/, stacked on a leading layer axis; model.scan_layers=True) layouts,
losslessly, into a params export that `init_from` reads:

    python -m bigmodels.relayout --source=runs/gpt --out=runs/gpt_scanned --layout=scanned
    python -m bigmodels.main --config=... --config.model.scan_layers=True \\
        --config.init_from=runs/gpt_scanned
"""

from absl import flags

from bigmodels.cli import fail, run_main

_SOURCE = flags.DEFINE_string("source", None, "A workdir, step directory or params export.")
_OUT = flags.DEFINE_string("out", None, "Where to write the converted params export.")
_LAYOUT = flags.DEFINE_enum("layout", None, ["scanned", "unscanned"], "The target layout.")
PREFIX, SCANNED = "block_", "blocks"


def convert(params: dict, layout: str) -> dict:
    """params in `layout` ("scanned" or "unscanned"), from either layout."""
    from bigmodels.errors import BadInput
    from bigmodels.nn.transformer import stack_layers, unstack_layers
    layers = sorted(int(k[len(PREFIX):]) for k in params
                    if k.startswith(PREFIX) and k[len(PREFIX):].isdigit())
    if layout == "scanned":
        if SCANNED in params:
            return params
        if not layers or layers != list(range(len(layers))):
            raise BadInput(f"relayout: no {PREFIX}0..{PREFIX}N params to stack (top-level "
                           f"names: {sorted(params)})")
        return stack_layers(params, len(layers), PREFIX, SCANNED)
    if SCANNED not in params:
        if layers:
            return params
        raise BadInput(f"relayout: no {SCANNED!r} params to unstack (top-level names: "
                       f"{sorted(params)})")
    import jax
    num_layers = jax.tree.leaves(params[SCANNED])[0].shape[0]
    return unstack_layers(params, num_layers, PREFIX, SCANNED)


def main(argv):
    for flag in (_SOURCE, _OUT, _LAYOUT):
        if not flag.value:
            fail(f"--{flag.name}: required")
    from bigmodels import checkpoint
    out = checkpoint.export_params(_SOURCE.value, _OUT.value,
                                   transform=lambda p: convert(p, _LAYOUT.value))
    print(f"wrote the {_LAYOUT.value} params of {_SOURCE.value} to {out}")


if __name__ == "__main__":
    run_main(main)
