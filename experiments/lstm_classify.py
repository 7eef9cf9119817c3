"""A bidirectional LSTM that tells which standard-library module a passage of code
comes from: argparse, tarfile, smtplib, turtle, pydoc or inspect (offline, real text).

Passages are 64 to 128 characters, padded to 128 with their lengths given, so the LSTM
masks the padding. Reports eval/accuracy and eval/f1 (macro).

    python -m bigmodels.main --config=experiments/lstm_classify.py --workdir=runs/lstm_classify

Any files work as classes: `--config.data.path=a.txt,b.txt,...` (one class per file).
"""

from bigmodels.config import base_config, check_variant, tiny_run
from bigmodels.data.text_classes import STDLIB_CLASSES, stdlib_modules
from bigmodels.models.rnn import rnn_classifier_config

MODULES = STDLIB_CLASSES


VARIANTS = ("tiny",)


def get_config(arg: str = ""):
    check_variant(arg, VARIANTS)
    c = base_config(task="classify", total_steps=600, batch_size=64, log_every=50,
                    eval_every=200, ckpt_every=200)
    c.model = rnn_classifier_config(cell="lstm", embed_dim=64, hidden_dim=128, num_layers=1,
                                    bidirectional=True, context_length=128)
    c.optim.update(name="adam", lr=5e-3, schedule="warmup_cosine", warmup_steps=30,
                   min_lr=3e-4, clip_norm=1.0)
    c.data.kind = "text_classes"
    c.data.path = stdlib_modules(*MODULES)
    c.data.tokenizer = "char"
    c.data.eval_batches = 20
    if arg == "tiny":
        tiny_run(c)
        c.data.eval_batches = 2
        c.model.update(embed_dim=16, hidden_dim=16, context_length=32)
    return c
