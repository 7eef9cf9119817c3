"""An MLP (128-64-32, ReLU) with a sigmoid output on scikit-learn's breast_cancer set:
binary cross-entropy, adam; reports eval/accuracy and eval/f1 (of the positive class,
1 = benign) on a stratified 20% test split. Offline: the data ships with scikit-learn.

    python -m bigmodels.main --config=experiments/tabular_mlp.py --workdir=runs/tabular_mlp

Features get log(1+x) (all are non-negative and right-skewed) and are standardised
with train-split statistics, saved as preprocess.json in the workdir.
"""

from bigmodels.config import base_config
from bigmodels.data.sklearn_data import sklearn_data_config
from bigmodels.models.mlp import mlp_config


def get_config(arg: str = ""):
    c = base_config()
    c.task = "binary_classify"
    c.total_steps = 300
    c.batch_size = 32
    c.log_every = 25
    c.eval_every = 100
    c.ckpt_every = 300
    c.model = mlp_config(num_classes=1, hidden=(128, 64, 32), activation="relu", dropout=0.1)
    c.optim.update(name="adam", lr=1e-3)
    c.data = sklearn_data_config("breast_cancer", log1p="all")
    if arg == "tiny":
        c.total_steps, c.batch_size, c.log_every, c.eval_every, c.ckpt_every = 6, 16, 2, 3, 3
        c.model.hidden = (16, 8)
    return c
