"""LM fine-tuning: continue a pretrained GPT (e.g. the quickstart run) on a new corpus,
with a fresh optimizer, step 0 and a short, low learning-rate schedule.

    python -m bigmodels.main --config=experiments/gpt_finetune_lm.py --workdir=runs/finetune \
        --config.init_from=runs/quickstart [--config.data.path=<your text>]

The default corpus is the `email` package of the standard library, which the quickstart
(top-level stdlib modules only) never saw. Without init_from it trains from scratch,
the baseline to compare with.
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
    c.optim.update(name="adamw", lr=5e-4, schedule="warmup_cosine", warmup_steps=20,
                   min_lr=5e-5, b2=0.99, weight_decay=0.1, clip_norm=1.0)
    c.data.path = os.path.join(sysconfig.get_paths()["stdlib"], "email", "*.py")
    c.data.tokenizer = "byte"
    c.sample_at_end = "def "
    if arg == "tiny":                          # shaped like quickstart.py:tiny
        tiny_run(c)
        c.sample_tokens, c.data.eval_batches = 16, 2
        c.model.update(num_layers=1, embed_dim=32, num_heads=2, context_length=32)
    return c
