"""Peak memory and time to the first step of a run on a large prepared corpus:

    python benchmarks/data_memory.py [--gb=2] [--dir=/tmp/big_corpus] [--steps=20]

Writes `--gb` GB of token shards (uint16 ids of the byte tokenizer plus <eos>, as
`prepare --tokenizer=byte` would; random, which costs the pipeline the same), then trains
the quickstart model on them (`data.kind=tokens`) through `python -m bigmodels.main`, and
reports the process's peak RSS (VmHWM) and the seconds from launch to its first logged
step. The shards are checksummed at startup, so the time includes reading all of them.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from bigmodels.data import prepare_shards, token_shards, tokenizers

SHARD_TOKENS = 64 << 20          # 128 MB a shard


def write_corpus(directory: str, gigabytes: float) -> dict:
    if os.path.isfile(os.path.join(directory, token_shards.METADATA_FILE)):
        return token_shards.read_metadata(directory)
    os.makedirs(directory, exist_ok=True)
    tok = prepare_shards.tokenizer_for("byte")
    tokenizers.save(tok, os.path.join(directory, token_shards.TOKENIZER_FILE))
    spec_hash = prepare_shards._json_sha256(tok.to_json())
    total = int(gigabytes * 1e9) // 2
    rng = np.random.default_rng(0)
    shards = []
    for index, start in enumerate(range(0, total, SHARD_TOKENS)):
        ids = rng.integers(0, tok.vocab_size, min(SHARD_TOKENS, total - start), np.uint16)
        name = token_shards.shard_name(index)
        info = token_shards.write_shard(os.path.join(directory, name), ids)
        shards.append({"file": name, **info, "tokenizer_sha256": spec_hash})
        print(f"{name}: {info['tokens']:,} tokens", flush=True)
    n_train = int(total * 0.99)
    meta = {"format": token_shards.FORMAT, "tokenizer": "byte", "tokenizer_sha256": spec_hash,
            "vocab_size": tok.vocab_size, "dtype": "uint16", "tokens": total,
            "splits": {"train": [0, n_train], "validation": [n_train, total]},
            "shards": shards}
    with open(os.path.join(directory, token_shards.METADATA_FILE), "w") as f:
        json.dump(meta, f)
    return meta


def peak_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gb", type=float, default=2.0)
    p.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "bigmodels_2gb_corpus"))
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    start = time.perf_counter()
    meta = write_corpus(args.dir, args.gb)
    size = sum(os.path.getsize(os.path.join(args.dir, s["file"])) for s in meta["shards"])
    print(f"corpus: {meta['tokens']:,} tokens, {size / 1e9:.2f} GB in {len(meta['shards'])} "
          f"shards ({time.perf_counter() - start:.0f} s)", flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        cmd = [sys.executable, "-m", "bigmodels.main", "--config=experiments/quickstart.py",
               f"--workdir={workdir}", "--config.data.kind=tokens",
               f"--config.data.path={args.dir}", f"--config.total_steps={args.steps}",
               "--config.log_every=1", f"--config.eval_every={args.steps}",
               f"--config.ckpt_every={args.steps}", "--config.sample_at_end="]
        launched = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=os.path.join(os.path.dirname(__file__), ".."),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        metrics, first_step, peak = os.path.join(workdir, "metrics.jsonl"), None, 0.0
        while proc.poll() is None:
            peak = max(peak, peak_rss_mb(proc.pid))
            if first_step is None and os.path.isfile(metrics) and os.path.getsize(metrics):
                first_step = time.perf_counter() - launched
            time.sleep(0.05)
        err = proc.stderr.read()
        if proc.returncode:
            sys.exit(f"training failed ({proc.returncode}): {err[-2000:]}")
    print(f"quickstart on {size / 1e9:.2f} GB of tokens ({args.steps} steps): peak RSS "
          f"{peak:,.0f} MB, first step logged {first_step:.1f} s after launch, whole run "
          f"{time.perf_counter() - launched:.1f} s")


if __name__ == "__main__":
    main()
