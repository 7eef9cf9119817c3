"""nanoGPT's CPU "baby GPT" on a character-level text file (e.g. Tiny Shakespeare).

Same recipe as nanoGPT's README CPU command, so the numbers compare side by side:
4 layers, 4 heads, width 128, context 64, no bias, tied embeddings, batch 12, 2000
steps, adamw lr 1e-3 (warmup 100, cosine to 1e-4), beta2 0.99, weight decay 0.1 on
matrices, clip 1.0, dropout 0. Split: first 90% train, last 10% validation. Eval loss:
mean over 20 random validation batches. On a CPU host the command line trains it
data-parallel over one device per core (`cpu_devices=0`, bigmodels/host_devices.py).

    python -m bigmodels.main --config=experiments/shakespeare_char.py \
        --workdir=runs/shakespeare_char

Tiny Shakespeare is downloaded once into $BIGMODELS_DATA_DIR; offline, pass
`--config.data.path=<a local copy>`.
"""

from bigmodels.config import base_config, check_variant, tiny_run
from bigmodels.data.text_files import TINY_SHAKESPEARE, stdlib_sources
from bigmodels.models.gpt import gpt_config


VARIANTS = ("tiny",)


def get_config(arg: str = ""):
    check_variant(arg, VARIANTS)
    c = base_config(total_steps=2000, batch_size=12, log_every=100, eval_every=250,
                    ckpt_every=1000)
    c.model = gpt_config(num_layers=4, num_heads=4, embed_dim=128, context_length=64,
                        use_bias=False, tie_embeddings=True, dropout=0.0)
    c.optim.update(name="adamw", lr=1e-3, schedule="warmup_cosine", warmup_steps=100,
                   decay_steps=2000, min_lr=1e-4, b1=0.9, b2=0.99, weight_decay=0.1,
                   clip_norm=1.0)
    c.data.path = TINY_SHAKESPEARE
    c.data.tokenizer = "char"
    c.cpu_devices = 0       # on a CPU host, data-parallel over the cores: 37 vs 52 ms/step on 2
    c.data.val_fraction = 0.1
    c.data.eval_batches = 20
    if arg == "tiny":
        tiny_run(c)
        c.data.eval_batches = 2
        # Offline, and seconds long: the start of the stdlib's .py files, not the play.
        c.data.path, c.data.max_bytes = stdlib_sources(), 200_000
    return c
