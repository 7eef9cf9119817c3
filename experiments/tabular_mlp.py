"""An MLP (128-64-32, ReLU) with a sigmoid output on scikit-learn's breast_cancer set:
binary cross-entropy, adam; reports eval/accuracy and eval/f1 (of the positive class,
1 = benign) on a stratified 20% test split. Offline: the data ships with scikit-learn.

    python -m bigmodels.main --config=experiments/tabular_mlp.py --workdir=runs/tabular_mlp

Features get log(1+x) (all are non-negative and right-skewed) and are standardised
with train-split statistics, saved as preprocess.json in the workdir.
"""

from bigmodels.config import base_config, check_variant, tiny_run
from bigmodels.data.sklearn_data import sklearn_data_config
from bigmodels.models.mlp import mlp_config


VARIANTS = ("tiny",)


def get_config(arg: str = ""):
    check_variant(arg, VARIANTS)
    c = base_config(task="binary_classify", total_steps=300, batch_size=32, log_every=25,
                    eval_every=100, ckpt_every=300)
    c.model = mlp_config(num_classes=1, hidden=(128, 64, 32), activation="relu", dropout=0.1)
    c.optim.update(name="adam", lr=1e-3)
    c.data = sklearn_data_config("breast_cancer", log1p="all")
    if arg == "tiny":
        tiny_run(c, batch_size=16)
        c.model.hidden = (16, 8)
    return c
