"""A small CNN (conv 32 -> pool -> conv 64 -> pool, dropout, dense 128) on
scikit-learn's 8x8 handwritten digits (1,797 real scans, 10 classes); reports
eval/accuracy and eval/f1 (macro) on a stratified 20% test split. Offline: the data
ships with scikit-learn.

    python -m bigmodels.main --config=experiments/digits_cnn.py --workdir=runs/digits_cnn

The same recipe on a TFDS image dataset (online the first time, then cached):
`--config=experiments/digits_cnn.py:mnist` (also fashion_mnist, cifar10, cifar100).
Your own images, one sub-directory per class, resized to 32x32 RGB:
`--config=experiments/digits_cnn.py:folder --config.data.path=<root>`.

Pixels are standardised with one train-split mean and std (preprocess.json); train
images are shifted by up to one pixel at random (data.augment).
"""

from bigmodels.config import base_config, check_variant, tiny_run
from bigmodels.data.image_folder import image_folder_config
from bigmodels.data.sklearn_data import sklearn_data_config
from bigmodels.data.tfds_images import KNOWN as TFDS_IMAGES, image_experiment
from bigmodels.models.cnn import cnn_config


VARIANTS = ("tiny", "folder", *TFDS_IMAGES)  # TFDS_IMAGES: online mnist, cifar10, ...


def get_config(arg: str = ""):
    check_variant(arg, VARIANTS)
    c = base_config(task="classify", total_steps=3000, batch_size=64, log_every=100,
                    eval_every=1000, ckpt_every=3000)
    c.model = cnn_config(channels=(32, 64), dense=128, dropout=0.25)
    c.optim.update(name="adam", lr=2e-3, schedule="warmup_cosine", warmup_steps=100)
    c.data = sklearn_data_config("digits", standardize="global", augment=True)
    if arg in TFDS_IMAGES:
        image_experiment(c, arg)
    if arg == "folder":     # root/<class>/*.png|jpg; change both sizes together
        c.data = image_folder_config(image_size=32, channels=3)
        c.model.image_size = 32
    if arg == "tiny":
        tiny_run(c, batch_size=16)
        c.model.update(channels=(4, 8), dense=16)
    return c
