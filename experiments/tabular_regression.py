"""A 10-50-1 MLP (ReLU) regressing scikit-learn's diabetes progression target from its
10 raw features with MSE and plain SGD; reports eval/mse and eval/r2 on a 20% test
split. Offline: the data ships with scikit-learn.

    python -m bigmodels.main --config=experiments/tabular_regression.py --workdir=runs/tabular_regression

Features and target are standardised with train-split statistics (preprocess.json in
the workdir), so eval/mse is in units of the train target's variance.
"""

from bigmodels.config import base_config, check_variant, tiny_run
from bigmodels.data.sklearn_data import sklearn_data_config
from bigmodels.models.mlp import mlp_config


VARIANTS = ("tiny",)


def get_config(arg: str = ""):
    check_variant(arg, VARIANTS)
    # 500 steps: longer overfits the 353 train rows (R² falls).
    c = base_config(task="regress", total_steps=500, batch_size=32, log_every=50,
                    eval_every=250, ckpt_every=500)
    c.model = mlp_config(num_classes=1, hidden=(50,), activation="relu")
    c.optim.update(name="sgd", lr=0.01)
    c.data = sklearn_data_config("diabetes")
    if arg == "tiny":
        tiny_run(c, batch_size=16)
    return c
