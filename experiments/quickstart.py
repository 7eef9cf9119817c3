"""Quickstart: a small byte-level GPT on the .py sources of Python's own standard library.

The corpus exists offline on every machine. About 3 minutes on 2 CPU cores.

    python -m bigmodels.main --config=experiments/quickstart.py --workdir=runs/quickstart
    python -m bigmodels.sample --workdir=runs/quickstart --prompt="def "

`--config=experiments/quickstart.py:tiny` is a seconds-long variant for smoke tests.
"""

from bigmodels.config import base_config
from bigmodels.data.text_files import stdlib_sources
from bigmodels.models.gpt import gpt_config


def get_config(arg: str = ""):
    c = base_config()
    c.total_steps = 600
    c.batch_size = 16
    c.log_every = 50
    c.eval_every = 200
    c.ckpt_every = 200
    c.sample_at_end = "def "
    c.sample_tokens = 200
    c.model = gpt_config(num_layers=4, num_heads=4, embed_dim=128, context_length=128,
                        use_bias=False)
    c.optim.update(name="adamw", lr=2e-3, schedule="warmup_cosine", warmup_steps=50,
                   min_lr=2e-4, b2=0.99, weight_decay=0.1, clip_norm=1.0)
    c.data.path = stdlib_sources()
    c.data.tokenizer = "byte"
    if arg == "tiny":
        c.total_steps, c.batch_size, c.log_every, c.eval_every, c.ckpt_every = 6, 8, 2, 3, 3
        c.sample_tokens, c.data.eval_batches, c.data.max_bytes = 16, 2, 200_000
        c.model.update(num_layers=1, embed_dim=32, num_heads=2, context_length=32)
    return c
