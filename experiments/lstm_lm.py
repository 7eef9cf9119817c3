"""A character-level LSTM language model on a text file (e.g. Tiny Shakespeare).

One LSTM layer of 512 units over 128-dim character embeddings, trained with truncated
backpropagation through time on random 64-character windows (the same data pipeline,
trainer and sampler as the GPTs).

    python -m bigmodels.main --config=experiments/lstm_lm.py --workdir=runs/lstm_lm

Tiny Shakespeare is downloaded once into $BIGMODELS_DATA_DIR; offline, pass
`--config.data.path=<a local copy>`.

`--config.model.cell=gru` trains a GRU instead.
"""

from bigmodels.config import base_config, check_variant, tiny_run
from bigmodels.data.text_files import TINY_SHAKESPEARE, stdlib_sources
from bigmodels.models.rnn import rnn_config


VARIANTS = ("tiny",)


def get_config(arg: str = ""):
    check_variant(arg, VARIANTS)
    c = base_config(total_steps=1000, batch_size=32, log_every=100, eval_every=250,
                    ckpt_every=500)
    c.sample_at_end = "\n"
    c.model = rnn_config(cell="lstm", embed_dim=128, hidden_dim=512, num_layers=1,
                         context_length=64)
    c.optim.update(name="adam", lr=3e-3, schedule="warmup_cosine", warmup_steps=50,
                   min_lr=3e-4, clip_norm=1.0)
    c.data.path = TINY_SHAKESPEARE
    c.data.tokenizer = "char"
    c.data.eval_batches = 20
    if arg == "tiny":
        tiny_run(c)
        c.sample_tokens, c.data.eval_batches = 16, 2
        # Offline, and seconds long: the start of the stdlib's .py files, not the play.
        c.data.path, c.data.max_bytes = stdlib_sources(), 200_000
        c.model.update(embed_dim=16, hidden_dim=32, context_length=16)
    return c
