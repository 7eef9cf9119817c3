"""Predict with a trained run or an export, one JSON line per input:

    python -m bigmodels.predict --workdir=<run or export> --input=<file | dir | -> \
        [--output=<out.jsonl>] [--batch_size=64]

What `--input` is depends on the run's family (bigmodels/predict/families.py): lines of
text (language models: --max_new_tokens --temperature --top_k --top_p --seed --stop;
seq2seq: --beam_size; text classifiers), image files or a directory of them, a CSV
with the training columns, WAV files; a GAN takes none and draws --num_samples images.
`-` reads text or CSV from stdin, or for file families a list of paths. Autoencoders
and GANs write PNGs into --image_dir (default: <output>_images beside --output).
Without --output the lines go to stdout. Bad input exits with code 2 and one line,
having written nothing.
"""

import os

from absl import flags, logging

from bigmodels.cli import fail, run_main
from bigmodels.errors import BadInput


def define_flags() -> None:
    flags.DEFINE_string("workdir", None, "A training run's workdir or an export.")
    flags.DEFINE_string("input", None, "A file, a directory of files, or - for stdin.")
    flags.DEFINE_string("output", None, "JSON lines file to write; default: stdout.")
    flags.DEFINE_integer("batch_size", 64, "Inputs per batch (rounded up to a multiple "
                         "of the device count).")
    flags.DEFINE_integer("step", None, "Checkpoint step; default: the latest.")
    flags.DEFINE_integer("max_new_tokens", None, "Language models: tokens to generate; "
                         "default: as many as fit in the context, at most 200.")
    flags.DEFINE_float("temperature", 0.8, "Language models: 0 = greedy.")
    flags.DEFINE_integer("top_k", 0, "Language models: keep the k most likely tokens.")
    flags.DEFINE_float("top_p", 1.0, "Language models: nucleus sampling mass.")
    flags.DEFINE_integer("seed", 0, "Sampling seed (language models, GAN noise).")
    flags.DEFINE_multi_string("stop", [], "Language models: end a continuation before "
                              "this text (repeatable; \\n and \\t are newline and tab).")
    flags.DEFINE_integer("beam_size", 1, "Seq2seq models: 1 = greedy decoding.")
    flags.DEFINE_integer("num_samples", 16, "GAN: images to draw.")
    flags.DEFINE_string("image_dir", None, "Where autoencoders and GANs write PNGs; "
                        "default: <output without .jsonl>_images.")


def _option(name: str, args):
    """The value of the CLI flag behind a predictor's option."""
    if name == "stop":
        return tuple(s.replace("\\n", "\n").replace("\\t", "\t") for s in args.stop)
    if name == "image_dir":
        from bigmodels.predict.writing import image_dir_for
        if args.image_dir:
            return args.image_dir
        if not args.output:
            raise BadInput("--output or --image_dir: this model writes PNGs, which go "
                           "beside --output or into --image_dir")
        return image_dir_for(args.output)
    return getattr(args, name)


def predict(args) -> list[dict]:
    from bigmodels.predict import load
    if not args.workdir:
        raise BadInput("--workdir: required (a training run or an export)")
    predictor = load(args.workdir, args.step, args.batch_size)
    options = {name: _option(name, args) for name in predictor.options}
    if predictor.input_kind == "none":
        if args.input is not None:
            predictor.read(args.input)           # refuses it, naming the family
        return predictor.predict(**options)
    if not args.input:
        raise BadInput(f"--input: required ({predictor.input_kind} input for this model)")
    return predictor.predict(predictor.read(args.input), **options)


def main(argv):
    from bigmodels.predict import writing
    args = flags.FLAGS
    logging.set_verbosity(logging.ERROR)
    if args.output and (os.path.isdir(args.output) or args.output.endswith(os.sep)):
        fail(f"--output: {args.output} is a directory; give a file name")
    writing.jsonl(predict(args), args.output)


if __name__ == "__main__":
    define_flags()
    run_main(main)
