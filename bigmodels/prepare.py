"""Tokenize a corpus once, in parallel, into token shards that training reads by random
access (`--config.data.kind=tokens --config.data.path=<out>`):

    python -m bigmodels.prepare --input='corpus/*.parquet' --text_key=text \
        --tokenizer=hf:gpt2 --out=data/corpus [--workers=8 --val_fraction=0.01]

--input is a file, directory or glob of .txt (a document per file), .jsonl (a document
per line), .parquet or .arrow files, or `hf:<dataset id or dir>[:config][:split]`, read
by the `datasets` library as a stream. Documents are separated by the tokenizer's
end-of-text token (an <eos> is added to one that has none). Rerun after a kill and the
finished shards are kept. Format: bigmodels/data/token_shards.py.
"""

import os

from absl import flags

from bigmodels.cli import fail, run_main


def define_flags() -> None:
    flags.DEFINE_string("input", None, "Files (glob, directory) or hf:<dataset>[:config][:split].")
    flags.DEFINE_string("out", None, "Directory to write (new, empty, or an unfinished one).")
    flags.DEFINE_string("tokenizer", "byte", "byte | hf:<tokenizer.json, dir or hub id> | "
                        "sentencepiece:<model file>.")
    flags.DEFINE_string("text_key", "text", "The text column of jsonl, parquet, arrow, hf:.")
    flags.DEFINE_integer("workers", os.cpu_count() or 1, "Tokenizing processes; 0 = this one.")
    flags.DEFINE_float("val_fraction", 0.01, "Last fraction of the tokens held out.")
    flags.DEFINE_float("part_mb", 64, "Text per shard (MB) where a file is cut into parts.")


def main(argv):
    args = flags.FLAGS
    if not args.input or not args.out:
        fail("--input and --out are both required")
    from bigmodels.data.prepare_shards import prepare
    meta = prepare(args.input, args.out, args.tokenizer, args.text_key, args.workers,
                   args.val_fraction, max(1, int(args.part_mb * (1 << 20))),
                   log=lambda line: print(line, flush=True))
    run = meta.get("last_run", {})
    rate = ""
    if run.get("seconds") and run.get("text_bytes"):
        mb_s = run["text_bytes"] / 1e6 / run["seconds"]
        rate = (f"; this run: {mb_s:.1f} MB of text/s, "
                f"{mb_s / max(run['workers'], 1):.1f} MB/s per worker")
    train, val = (b - a for a, b in meta["splits"].values())
    print(f"prepared {args.out}: {meta['tokens']:,} tokens ({train:,} train, {val:,} "
          f"validation) of {meta['documents']:,} documents in {len(meta['shards'])} shards, "
          f"{meta['dtype']}{rate}")


if __name__ == "__main__":
    define_flags()
    run_main(main)
