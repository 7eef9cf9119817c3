"""Post-training quantization of a run or export with qwix:

    python -m bigmodels.quantize --workdir=runs/quickstart --out=exports/quickstart-int8 \\
        --weights=int8|int4 [--activations=int8 --include=<regex> --exclude=<regex>]

writes a quantized export: int8 or int4 weights with one float32 scale per output
channel (int4 packed two a byte), the run's config (its `quant` block records how) and
tokenizer or preprocessing files. `bigmodels.sample`, `predict` and `evaluate` load it
like any export and keep its weights quantized in memory (`bigmodels.quant.serving`).
`--include` / `--exclude` are regexes searched in module paths (block_0/mlp/wi).
Convolutions are quantized only with `--activations=int8` (qwix's w8a8); without it
they stay float32, and the tool says so. A QAT run (quant.mode=qat) takes its own
`quant.*` settings unless flags give others.
"""

from absl import flags, logging

from bigmodels.cli import fail, run_main


def define_flags() -> None:
    flags.DEFINE_string("workdir", None, "A training run's workdir, a step directory or "
                        "an export.")
    flags.DEFINE_string("out", None, "Directory to create for the quantized export.")
    flags.DEFINE_integer("step", None, "Step to quantize; default: the latest committed.")
    flags.DEFINE_string("weights", None, "int8 | int4 (default: a QAT run's quant.weights).")
    flags.DEFINE_string("activations", None, "'' (weights only) | int8.")
    flags.DEFINE_string("include", None, "Regex of module paths to quantize ('' = all).")
    flags.DEFINE_string("exclude", None, "Regex of module paths left float ('' = none).")


def spec_for(workdir: str, step=None, **given):
    """The QuantSpec of the flags `given` (None = unset): unset ones from the run's QAT
    settings if it trained with quant.mode=qat, else the defaults; --weights is
    required otherwise."""
    from bigmodels import checkpoint, quant
    from bigmodels.errors import BadInput
    config = checkpoint.read_config(checkpoint.run_dir(workdir, step))
    trained = quant.from_config(config, "qat") if not quant.is_quantized(config) else None
    base = trained or quant.QuantSpec()
    if given.get("weights") is None and trained is None:
        raise BadInput("--weights: required (int8 or int4)")
    spec = base._replace(**{k: v for k, v in given.items() if v is not None})
    return quant.check(spec, prefix="--")


def quantize(workdir: str, out: str, step=None, **given) -> str:
    """Writes the quantized export of `workdir` to `out`; returns its path."""
    from bigmodels import checkpoint, quant
    from bigmodels.errors import BadInput
    from bigmodels.export import export
    config = checkpoint.read_config(checkpoint.run_dir(workdir, step))
    if quant.is_quantized(config):
        raise BadInput(f"--workdir: {workdir} is already quantized (quant.weights="
                       f"{config.quant.weights}); quantize the float run or export it "
                       f"came from")
    spec = spec_for(workdir, step, **given)
    return export(workdir, out, step, dtype=spec.weights, quant_spec=spec)


def main(argv):
    from bigmodels.export import summary
    args = flags.FLAGS
    if not args.workdir or not args.out:
        fail("--workdir and --out are both required")
    logging.set_verbosity(logging.ERROR)
    out = quantize(args.workdir, args.out, args.step, weights=args.weights,
                   activations=args.activations, include=args.include, exclude=args.exclude)
    print(summary(out))


if __name__ == "__main__":
    define_flags()
    run_main(main)
