"""Quickstart: a small byte-level GPT on the .py sources of Python's own standard library.

The corpus exists offline on every machine. About 3 minutes on 2 CPU cores.

    python -m bigmodels.main --config=experiments/quickstart.py --workdir=runs/quickstart
    python -m bigmodels.sample --workdir=runs/quickstart --prompt="def "

`--config=experiments/quickstart.py:tiny` is a seconds-long variant for smoke tests.
"""

from bigmodels.config import base_config, check_variant, tiny_run
from bigmodels.data.text_files import stdlib_sources
from bigmodels.models.gpt import gpt_config


VARIANTS = ("tiny",)


def get_config(arg: str = ""):
    check_variant(arg, VARIANTS)
    c = base_config(total_steps=600, batch_size=16, log_every=50, eval_every=200,
                    ckpt_every=200)
    c.sample_at_end = "def "
    c.sample_tokens = 200
    c.model = gpt_config(num_layers=4, num_heads=4, embed_dim=128, context_length=128,
                        use_bias=False)
    c.optim.update(name="adamw", lr=2e-3, schedule="warmup_cosine", warmup_steps=50,
                   min_lr=2e-4, b2=0.99, weight_decay=0.1, clip_norm=1.0)
    c.data.path = stdlib_sources()
    c.data.tokenizer = "byte"
    c.cpu_devices = 0       # on a CPU host, data-parallel over the cores: 138 vs 165 ms/step on 2
    if arg == "tiny":
        tiny_run(c)
        c.sample_tokens, c.data.eval_batches, c.data.max_bytes = 16, 2, 200_000
        c.model.update(num_layers=1, embed_dim=32, num_heads=2, context_length=32)
    return c
