"""The input pipeline alone: tokens/s that each experiment's data produces, against what
its training step consumes; and `bigmodels.prepare`'s MB of text/s per worker.

    python benchmarks/data_throughput.py [--batches=200] [--prepare_mb=64 --workers=2]
        [--gpt2_step_ms=130]

Each row builds the experiment's data as the trainer does (`bigmodels.data.build`) and
reads `--batches` consecutive training batches in one thread, as the trainer's prefetch
thread does. "Needs" is what the step consumes: the batch's tokens over the step time,
given in --step_ms (this machine's measured steps) or, for gpt2_124m, the step time of
one H200 (--gpt2_step_ms, benchmarks/RESULTS.md). gpt2_124m reads a corpus written here
by `prepare` (the stdlib's .py files, a GPT-2-style 32k BPE trained on them) at
64 x 1024 tokens a batch.
"""

import argparse
import glob
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import numpy as np  # noqa: E402
from helpers import experiment_config  # noqa: E402

from bigmodels import data  # noqa: E402
from bigmodels.data import prepare_shards, text_files, tokenizers  # noqa: E402


def batches_per_second(dataset, count: int) -> float:
    dataset[0]                                      # opens readers, builds caches
    start = time.perf_counter()
    for i in range(1, count + 1):
        dataset[i]
    return count / (time.perf_counter() - start)


def corpus(directory: str, megabytes: int) -> list[str]:
    """~megabytes of Python source in 8 MB files, from the stdlib (offline everywhere)."""
    stdlib = os.path.dirname(text_files.stdlib_sources())
    sources = sorted(glob.glob(os.path.join(stdlib, "**", "*.py"), recursive=True))
    paths, part, size, total = [], [], 0, 0
    for path in sources * 100:                       # repeats the stdlib if it is smaller
        with open(path, "rb") as f:
            part.append(f.read())
        size += len(part[-1])
        if size >= 8 << 20 or total + size >= megabytes << 20:
            paths.append(os.path.join(directory, f"part{len(paths):03d}.txt"))
            with open(paths[-1], "wb") as f:
                f.write(b"\n".join(part))
            total, part, size = total + size, [], 0
            if total >= megabytes << 20:
                return paths
    return paths


def bpe_file(directory: str, vocab: int = 32_000) -> str:
    """A GPT-2-style tokenizer (byte-level BPE, <|endoftext|>) learnt from the stdlib."""
    path = os.path.join(directory, "bpe.json")
    sample = b""
    for source in sorted(glob.glob(text_files.stdlib_sources())):
        with open(source, "rb") as f:
            sample += f.read() + b"\n"
    tok = tokenizers.train_bpe(sample, vocab).tokenizer
    tok.add_special_tokens(["<|endoftext|>"])
    tok.save(path)
    return path


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--prepare_mb", type=int, default=64)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--shakespeare", default="../shared/data/tinyshakespeare.txt")
    p.add_argument("--step_ms", default="quickstart=179,shakespeare_char=44",
                   help="this machine's step times (ms) of the CPU experiments")
    p.add_argument("--gpt2_step_ms", type=float, default=130.0)
    p.add_argument("--images", type=int, default=2000, help="32 x 32 PNGs of the image row")
    p.add_argument("--cnn_step_ms", type=float, default=0.0,
                   help="digits_cnn:folder's step time on them (0 = measure it here)")
    args = p.parse_args()
    step_ms = dict(kv.split("=") for kv in args.step_ms.split(","))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("BIGMODELS_DATA_DIR", os.path.join(tmp, "tfds"))
        # prepare: MB of text per second per worker, byte and BPE tokenizers.
        os.makedirs(os.path.join(tmp, "text"))
        paths = corpus(os.path.join(tmp, "text"), args.prepare_mb)
        bpe = bpe_file(tmp)
        text_mb = sum(os.path.getsize(q) for q in paths) / 1e6
        prepared = {}
        for name, tok in (("byte", "byte"), ("bpe 32k", f"hf:{bpe}")):
            out = os.path.join(tmp, f"prepared-{name.split()[0]}")
            start = time.perf_counter()
            prepare_shards.prepare(os.path.join(tmp, "text", "*.txt"), out, tok,
                                   workers=args.workers, val_fraction=0.01,
                                   part_bytes=8 << 20, log=lambda _: None)
            seconds = time.perf_counter() - start
            prepared[name] = out
            print(f"prepare {name}: {text_mb:.0f} MB in {seconds:.1f} s = "
                  f"{text_mb / seconds:.1f} MB/s, {text_mb / seconds / args.workers:.1f} "
                  f"MB/s per worker ({args.workers} workers)", flush=True)

        cases = [("quickstart", "", {}, float(step_ms["quickstart"])),
                 ("shakespeare_char", "", {"data.path": args.shakespeare},
                  float(step_ms["shakespeare_char"])),
                 ("gpt2_124m", "fineweb", {"data.path": prepared["bpe 32k"],
                                           "batch_size": 64}, args.gpt2_step_ms)]
        for name, variant, overrides, ms in cases:
            config = experiment_config(name, variant)
            for key, value in overrides.items():
                node = config
                *parents, leaf = key.split(".")
                for part in parents:
                    node = node[part]
                node[leaf] = value
            built = data.build(config, os.path.join(tmp, f"run-{name}"))
            rate = batches_per_second(built.train, args.batches)
            tokens = config.batch_size * ((config.data.seq_len or config.model.context_length)
                                          + 1)
            need = tokens / (ms / 1000)
            rows.append((f"{name}{':' + variant if variant else ''} ({config.data.kind}, "
                         f"{config.batch_size} x {tokens // config.batch_size})",
                         rate * tokens, need))
            print(rows[-1], flush=True)
        image_rows = images_rows(tmp, args)
    print("\n| pipeline | tokens/s produced | step consumes | ratio |\n|---|---|---|---|")
    for name, have, need in rows:
        print(f"| {name} | {have:,.0f} | {need:,.0f} | {have / need:.1f}x |")
    print("\n| pipeline | images/s produced | step consumes | ratio |\n|---|---|---|---|")
    for name, have, need in image_rows:
        print(f"| {name} | {have:,.0f} | {need:,.0f} | {have / need:.1f}x |")


def write_folder(root: str, count: int) -> None:
    """`count` random 32 x 32 RGB PNGs in 10 class folders (CIFAR-10's size)."""
    from PIL import Image
    rng = np.random.default_rng(0)
    for i in range(count):
        folder = os.path.join(root, f"class{i % 10}")
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), np.uint8)).save(
            os.path.join(folder, f"{i:05d}.png"))


def images_rows(tmp: str, args) -> list:
    """digits_cnn:folder's pipeline (decode, shift, flip, standardise) with 0 and 2
    worker processes, against its own step on this CPU."""
    root = os.path.join(tmp, "images")
    write_folder(root, args.images)
    config = experiment_config("digits_cnn", "folder")
    config.data.update(path=root, flip=True)
    step_ms = args.cnn_step_ms or cnn_step_ms(config, os.path.join(tmp, "cnn"))
    rows = []
    for workers in (0, 2):
        config.data.workers = workers
        built = data.build(config, os.path.join(tmp, f"run-images-{workers}"))
        iterator = iter(built.train.to_iter_dataset())
        next(iterator)                                    # workers started
        start = time.perf_counter()
        for _ in range(args.batches):
            next(iterator)
        rate = args.batches * config.batch_size / (time.perf_counter() - start)
        rows.append((f"digits_cnn:folder, 32 x 32 PNGs ({config.batch_size} a batch, "
                     f"workers={workers})", rate, config.batch_size / (step_ms / 1000)))
        print(rows[-1], flush=True)
    return rows


def cnn_step_ms(config, workdir: str) -> float:
    """The median of the trainer's own step times over 60 steps after 20."""
    import json
    import statistics
    from bigmodels import train
    run = config.copy_and_resolve_references()
    run.update(total_steps=80, log_every=20, eval_every=80, ckpt_every=80)
    train.run(run, workdir)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        times = [json.loads(line)["perf/step_time_s"] for line in f
                 if "perf/step_time_s" in line][1:]
    return 1000 * statistics.median(times)


if __name__ == "__main__":
    main()
