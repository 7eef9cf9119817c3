"""LoRA fine-tuning: low-rank adapters on a frozen pretrained GPT (e.g. the quickstart
run), trained on a new corpus; the base gets no gradient and no optimizer state.

    python -m bigmodels.main --config=experiments/lora_email.py --workdir=runs/lora \
        --config.lora.base=runs/quickstart [--config.lora.base_dtype=nf4] \
        [--config.data.path=<your text>]
    python -m bigmodels.export --workdir=runs/lora --out=runs/lora-merged
    python -m bigmodels.convert --to_peft=runs/lora-peft --workdir=runs/lora

The default corpus is the `email` package of the standard library, which the quickstart
(top-level stdlib modules only) never saw, as in gpt_finetune_lm.py (the full
fine-tune to compare with: benchmarks/lora_vs_full.py). base_dtype int8 or nf4 holds
the base quantized (QLoRA). Without lora.base the base is a fresh random init.
"""

import os
import sysconfig

from bigmodels.config import base_config, check_variant, tiny_run
from bigmodels.models.gpt import gpt_config


VARIANTS = ("tiny",)


def get_config(arg: str = ""):
    check_variant(arg, VARIANTS)
    c = base_config(total_steps=200, batch_size=16, log_every=25, eval_every=50, ckpt_every=200)
    c.model = gpt_config(num_layers=4, num_heads=4, embed_dim=128, context_length=128,
                         use_bias=False)      # the quickstart's shape
    # Adapters start at zero and have few weights: a 20x higher rate than the full
    # fine-tune's (from the quickstart, 100 steps: eval loss 2.324 at 2e-3, 2.301 at
    # 5e-3, 2.291 at 1e-2; benchmarks/lora_vs_full.py).
    c.optim.update(name="adamw", lr=1e-2, schedule="warmup_cosine", warmup_steps=20,
                   min_lr=1e-3, b2=0.99, weight_decay=0.0, clip_norm=1.0)
    c.lora.update(rank=8, alpha=16.0, targets="(attn|mlp)/", dropout=0.0)
    c.data.path = os.path.join(sysconfig.get_paths()["stdlib"], "email", "*.py")
    c.data.tokenizer = "byte"
    c.sample_at_end = "def "
    if arg == "tiny":                          # shaped like quickstart.py:tiny
        tiny_run(c)
        c.sample_tokens, c.data.eval_batches = 16, 2
        c.model.update(num_layers=1, embed_dim=32, num_heads=2, context_length=32)
        c.lora.rank = 4
    return c
