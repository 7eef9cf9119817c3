"""A 10-50-1 MLP (ReLU) regressing scikit-learn's diabetes progression target from its
10 raw features with MSE and plain SGD; reports eval/mse and eval/r2 on a 20% test
split. Offline: the data ships with scikit-learn.

    python -m bigmodels.main --config=experiments/tabular_regression.py --workdir=runs/tabular_regression

Features and target are standardised with train-split statistics (preprocess.json in
the workdir), so eval/mse is in units of the train target's variance.
"""

from bigmodels.config import base_config
from bigmodels.data.sklearn_data import sklearn_data_config
from bigmodels.models.mlp import mlp_config


def get_config(arg: str = ""):
    c = base_config()
    c.task = "regress"
    c.total_steps = 500            # longer overfits the 353 train rows (R² falls)
    c.batch_size = 32
    c.log_every = 50
    c.eval_every = 250
    c.ckpt_every = 500
    c.model = mlp_config(num_classes=1, hidden=(50,), activation="relu")
    c.optim.update(name="sgd", lr=0.01)
    c.data = sklearn_data_config("diabetes")
    if arg == "tiny":
        c.total_steps, c.batch_size, c.log_every, c.eval_every, c.ckpt_every = 6, 16, 2, 3, 3
    return c
