"""Pretrain a CNN on digits 0-4, then fine-tune it on digits 5-9 from 10 labelled
images per class, with a fresh head (scikit-learn's 8x8 digits; offline).

    python -m bigmodels.main --config=experiments/digits_finetune.py:pretrain --workdir=runs/digits_0to4
    python -m bigmodels.main --config=experiments/digits_finetune.py --workdir=runs/digits_5to9 \
        --config.init_from=runs/digits_0to4

Without init_from the second command is the from-scratch baseline on the same 50
images. `--config.optim.freeze='^(conv_|dense/)'` trains the new head alone on the
frozen backbone; `--config.optim.lr_multipliers='^(conv_|dense/)=0.1'` moves the
backbone at a tenth of the head's rate. Eval is every test image of 5-9 (eval/accuracy,
eval/f1).

Measured (test accuracy on 5-9 after 300 steps): fine-tuned 0.855, from scratch 0.860,
frozen backbone 0.670, backbone at 0.1x 0.754; with 3 images per class 0.754 vs 0.749.
Those are one seed and one labelled subset. Over 3 seeds, each with its own subset
(`data.train_per_class_seed`), fine-tuning gains a little at every label count
(+0.015 to +0.032; the README's label-efficiency table, notebooks/04): the 0-4 features
are only slightly better than random ones for 5-9 (tests/test_digits_finetune.py checks
that the backbone really is the pretrained one).
"""

from bigmodels.config import base_config, check_variant, tiny_run
from bigmodels.data.sklearn_data import sklearn_data_config
from bigmodels.models.cnn import cnn_config


VARIANTS = ("pretrain", "tiny", "pretrain_tiny")  # "" fine-tunes on 5-9


def get_config(arg: str = ""):
    check_variant(arg, VARIANTS)
    c = base_config()
    c.task = "classify"
    c.model = cnn_config(channels=(32, 64), dense=128, dropout=0.25)
    c.optim.update(name="adam", lr=2e-3, schedule="warmup_cosine", warmup_steps=50)
    c.init_from_skip = "^head/"              # 0-4 and 5-9 are different classes
    if arg.startswith("pretrain"):
        c.total_steps, c.batch_size = 1500, 64
        c.data = sklearn_data_config("digits", standardize="global", augment=True,
                                     classes="0,1,2,3,4")
    else:
        c.total_steps, c.batch_size = 300, 32
        c.data = sklearn_data_config("digits", standardize="global", augment=True,
                                     classes="5,6,7,8,9", train_per_class=10)
    c.log_every, c.eval_every, c.ckpt_every = 50, c.total_steps // 3, c.total_steps
    if arg.endswith("tiny"):
        tiny_run(c, batch_size=16)
        c.model.update(channels=(4, 8), dense=16)
    return c
