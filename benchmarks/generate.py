"""Greedy generation speed: `bigmodels.generate.generate_batch` against Hugging Face
transformers' `generate` (torch, float32, CPU) on the same GPT-2 weights.

    python benchmarks/generate.py [--size=124m|small] [--batches=1,16] [--new_tokens=64]
    python benchmarks/generate.py --no_hf            # ours only (e.g. on a GPU)
    python benchmarks/generate.py --dtype=bfloat16   # both sides hold and compute in bf16

A random GPT-2-architecture model is built here, saved as an export and written out by
our Hugging Face converter (bigmodels.convert.export_hf); transformers loads that
directory as a GPT2LMHeadModel. Both sides continue the same ragged prompts (ours:
ragged rows in one batch; HF: left-padded with an attention mask) for exactly
`--new_tokens` tokens (no EOS), are warmed up, and then run interleaved, `--repeats`
times each; the table gives the median tokens/s. Both must produce the same tokens.
"""

import argparse
import os
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from bigmodels import generate, models
from bigmodels.checkpoint import exports
from bigmodels.config import base_config
from bigmodels.models.gpt import gpt_config

SIZES = {   # GPT-2 small (experiments/gpt2_124m.py's shape, GPT-2's vocabulary), and less
    "124m": dict(num_layers=12, num_heads=12, embed_dim=768, context_length=1024),
    "small": dict(num_layers=4, num_heads=4, embed_dim=256, context_length=512),
}
VOCAB = 50257
SCALE = 2.0          # weights x SCALE: greedy tokens far from ties, yet not repeats


def build(size: str, seed: int = 0, dtype: str = "float32"):
    """(model, params, config) of a random GPT-2, its init's weights times SCALE: at 1
    greedy decoding mostly repeats a token, at 4 float rounding (ours against torch)
    flips near-ties between the top two logits."""
    config = base_config()
    config.model = gpt_config(vocab_size=VOCAB, dtype=dtype, **SIZES[size])
    model = models.build(config.model)
    params = jax.jit(model.init)(jax.random.key(seed), jnp.zeros((1, 8), jnp.int32))["params"]
    params = jax.tree.map(lambda x: (x * SCALE).astype(dtype), nn.meta.unbox(params))
    return model, params, config


def to_hf(params, config, directory: str, dtype: str = "float32"):
    """Our export of `params`, then its Hugging Face directory, loaded by transformers."""
    import torch
    import transformers
    from bigmodels.convert import export_hf
    ours = os.path.join(directory, "ours")

    def write(tmp):
        exports.save_params(tmp, params, compress=False)
        with open(os.path.join(tmp, "config.json"), "w") as f:
            f.write(config.to_json(indent=2))
    exports.write_atomically(ours, write)
    hf_dir = export_hf(ours, os.path.join(directory, "hf"))
    return transformers.GPT2LMHeadModel.from_pretrained(hf_dir,
                                                        torch_dtype=getattr(torch, dtype)).eval()


def prompts_of(batch: int, seed: int, lengths=(8, 32)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, VOCAB, rng.integers(*lengths, endpoint=True)).astype(np.int32)
            for _ in range(batch)]


def ours_run(model, params, prompts, new_tokens: int):
    return generate.generate_batch(model, params, prompts, new_tokens)


def hf_run(hf_model, prompts, new_tokens: int):
    """Left-padded prompts with an attention mask (GPT-2 then derives the positions),
    on the model's device."""
    import torch
    device = next(hf_model.parameters()).device
    width = max(len(p) for p in prompts)
    ids = np.zeros((len(prompts), width), np.int64)
    mask = np.zeros_like(ids)
    for r, p in enumerate(prompts):
        ids[r, width - len(p):], mask[r, width - len(p):] = p, 1
    with torch.no_grad():
        out = hf_model.generate(torch.tensor(ids, device=device),
                                attention_mask=torch.tensor(mask, device=device),
                                max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                do_sample=False, use_cache=True, pad_token_id=0)
    return [row[width:].astype(np.int32) for row in out.cpu().numpy()]


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), default="124m")
    p.add_argument("--batches", default="1,16")
    p.add_argument("--new_tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no_hf", action="store_true", help="time our side only")
    p.add_argument("--hf_device", default="cpu", help="torch device of the HF side (cuda)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="weights and compute of both sides")
    args = p.parse_args()

    model, params, config = build(args.size, dtype=args.dtype)
    params = jax.device_put(params)
    hf_model = None
    if not args.no_hf:
        import torch
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
              f"jax {jax.__version__} on {jax.devices()[0].platform}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            hf_model = to_hf(params, config, tmp, args.dtype).to(args.hf_device)
    rows = []
    for batch in [int(b) for b in args.batches.split(",")]:
        prompts = prompts_of(batch, seed=batch)
        tokens = batch * args.new_tokens
        ours_out, first = timed(lambda: ours_run(model, params, prompts, args.new_tokens))
        print(f"batch {batch}: ours' first call (compiles) {first:.1f} s", flush=True)
        if hf_model is not None:
            hf_out = hf_run(hf_model, prompts, args.new_tokens)              # warm-up
            same = all(np.array_equal(a, b) for a, b in zip(ours_out, hf_out))
            print(f"batch {batch}: greedy tokens " + ("IDENTICAL" if same else
                  "DIFFER between ours and transformers") + f" ({len(np.unique(hf_out))} "
                  f"distinct tokens)", flush=True)
        ours_s, hf_s = [], []
        for _ in range(args.repeats):          # interleaved: both see the same machine
            ours_s.append(timed(lambda: ours_run(model, params, prompts, args.new_tokens))[1])
            if hf_model is not None:
                hf_s.append(timed(lambda: hf_run(hf_model, prompts, args.new_tokens))[1])
        ours_tps = tokens / statistics.median(ours_s)
        hf_tps = tokens / statistics.median(hf_s) if hf_s else float("nan")
        rows.append((batch, ours_tps, hf_tps))
        print(f"batch {batch}: ours {['%.2f' % s for s in ours_s]} s, "
              f"HF {['%.2f' % s for s in hf_s]} s", flush=True)

    print(f"\nGPT-2 {args.size} in {args.dtype}, {args.new_tokens} new tokens per row, prompts of 8-32 tokens, "
          f"greedy, median of {args.repeats}; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs\n")
    print("| batch | ours tok/s | HF tok/s | ratio |\n|---|---|---|---|")
    for batch, ours_tps, hf_tps in rows:
        print(f"| {batch} | {ours_tps:.1f} | {hf_tps:.1f} | {ours_tps / hf_tps:.2f}x |")


if __name__ == "__main__":
    main()
