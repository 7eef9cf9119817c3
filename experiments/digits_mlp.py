"""An MLP (256-128, ReLU, dropout) on scikit-learn's 8x8 handwritten digits (1,797
real scans, 10 classes); reports eval/accuracy and eval/f1 (macro) on a stratified
20% test split. Offline: the data ships with scikit-learn.

    python -m bigmodels.main --config=experiments/digits_mlp.py --workdir=runs/digits_mlp

The same recipe on a TFDS image dataset (online the first time, then cached):
`--config=experiments/digits_mlp.py:mnist` (also fashion_mnist, cifar10, cifar100).

Pixels are standardised with one train-split mean and std (preprocess.json); train
images are shifted by up to one pixel at random (data.augment).
"""

from bigmodels.config import base_config, check_variant, tiny_run
from bigmodels.data.sklearn_data import sklearn_data_config
from bigmodels.data.tfds_images import KNOWN as TFDS_IMAGES, image_experiment
from bigmodels.models.mlp import mlp_config


VARIANTS = ("tiny", *TFDS_IMAGES)  # TFDS_IMAGES: online mnist, cifar10, ...


def get_config(arg: str = ""):
    check_variant(arg, VARIANTS)
    c = base_config(task="classify", total_steps=3000, batch_size=64, log_every=100,
                    eval_every=1000, ckpt_every=3000)
    c.model = mlp_config(hidden=(256, 128), activation="relu", dropout=0.2)
    c.optim.update(name="adam", lr=2e-3, schedule="warmup_cosine", warmup_steps=100)
    c.data = sklearn_data_config("digits", standardize="global", augment=True)
    if arg in TFDS_IMAGES:
        image_experiment(c, arg)
    if arg == "tiny":
        tiny_run(c, batch_size=16)
        c.model.hidden = (16,)
    return c
