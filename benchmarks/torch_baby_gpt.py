"""A PyTorch (eager, CPU) baby GPT written to nanoGPT's recipe, for side-by-side timing.

Not part of the library and not installed by it: run it from a separate virtualenv with
`pip install torch numpy`. It mirrors nanoGPT's model and training loop as described in
../shared/REFERENCE_NUMBERS.md (4 layers, 4 heads, width 128, context 64, batch 12, no bias,
tied embeddings, exact GELU, SDPA causal attention, AdamW lr 1e-3 with warmup 100 and cosine
to 1e-4, beta2 0.99, weight decay 0.1 on 2-D weights, clip 1.0), so that its ms/iter can be
measured on the same machine in the same minute as bigmodels':

    python benchmarks/torch_baby_gpt.py --data=../shared/data/tinyshakespeare.txt --iters=300
"""

import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LAYERS, HEADS, WIDTH, CONTEXT, BATCH = 4, 4, 128, 64, 12


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(WIDTH, bias=False)
        self.qkv = nn.Linear(WIDTH, 3 * WIDTH, bias=False)
        self.proj = nn.Linear(WIDTH, WIDTH, bias=False)
        self.ln2 = nn.LayerNorm(WIDTH, bias=False)
        self.fc = nn.Linear(WIDTH, 4 * WIDTH, bias=False)
        self.fc_proj = nn.Linear(4 * WIDTH, WIDTH, bias=False)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, HEADS, d // HEADS).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).contiguous().view(b, t, d))
        return x + self.fc_proj(F.gelu(self.fc(self.ln2(x))))


class BabyGPT(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.tok = nn.Embedding(vocab, WIDTH)
        self.pos = nn.Embedding(CONTEXT, WIDTH)
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.ln_f = nn.LayerNorm(WIDTH, bias=False)
        self.head = nn.Linear(WIDTH, vocab, bias=False)
        self.head.weight = self.tok.weight                      # tied
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * LAYERS) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx, targets):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def lr_at(it, iters):
    if it < 100:
        return 1e-3 * (it + 1) / 101
    ratio = (it - 100) / max(iters - 100, 1)
    return 1e-4 + 0.5 * (1 + math.cos(math.pi * min(ratio, 1.0))) * (1e-3 - 1e-4)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--eval", action="store_true", help="report val loss at the end")
    parser.add_argument("--seed", type=int, default=1337, help="seeds the init and batches")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    text = open(args.data, encoding="utf-8").read()
    chars = sorted(set(text))
    lookup = {c: i for i, c in enumerate(chars)}
    ids = np.array([lookup[c] for c in text], dtype=np.int64)
    cut = int(len(ids) * 0.9)
    train, val = ids[:cut], ids[cut:]

    def batch(split):
        ix = np.random.randint(len(split) - CONTEXT, size=BATCH)
        x = torch.from_numpy(np.stack([split[i:i + CONTEXT] for i in ix]))
        y = torch.from_numpy(np.stack([split[i + 1:i + 1 + CONTEXT] for i in ix]))
        return x, y

    model = BabyGPT(len(chars))
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99))
    times = []
    for it in range(args.iters):
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = lr_at(it, args.iters)
        loss = model(*batch(train))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss.item()
        times.append(time.perf_counter() - t0)
    steady = sorted(times[min(50, len(times) // 2):])
    print(f"torch_baby_gpt iters={args.iters} ms_per_step={1e3 * steady[len(steady) // 2]:.1f} "
          f"threads={torch.get_num_threads()}", end="")
    if args.eval:
        model.eval()
        with torch.no_grad():
            losses = [model(*batch(val)).item() for _ in range(20)]
        print(f" val_loss={np.mean(losses):.4f}", end="")
    print()


if __name__ == "__main__":
    main()
