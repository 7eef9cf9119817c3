"""A small ResNet with BatchNorm (stem 32, two stages of two residual blocks, 32 then
64 channels, the second at 4x4) on scikit-learn's 8x8 handwritten digits; reports
eval/accuracy and eval/f1 (macro) on a stratified 20% test split. Offline.

    python -m bigmodels.main --config=experiments/digits_resnet.py --workdir=runs/digits_resnet

The same recipe on a TFDS image dataset (online the first time, then cached):
`--config=experiments/digits_resnet.py:mnist` (also fashion_mnist, cifar10, cifar100).

BatchNorm's running statistics travel in the train state (model_state) and the
checkpoints; eval uses them. Same data pipeline as digits_cnn (standardised pixels,
random one-pixel shifts).
"""

from bigmodels.config import base_config, check_variant, tiny_run
from bigmodels.data.sklearn_data import sklearn_data_config
from bigmodels.data.tfds_images import KNOWN as TFDS_IMAGES, image_experiment
from bigmodels.models.resnet import resnet_config


VARIANTS = ("tiny", *TFDS_IMAGES)  # TFDS_IMAGES: online mnist, cifar10, ...


def get_config(arg: str = ""):
    check_variant(arg, VARIANTS)
    c = base_config(task="classify", total_steps=1500, batch_size=64, log_every=100,
                    eval_every=500, ckpt_every=1500)
    c.model = resnet_config(stem=32, stages=(32, 64), blocks=2)
    c.optim.update(name="adamw", lr=3e-3, weight_decay=1e-4, schedule="warmup_cosine",
                   warmup_steps=100)
    c.data = sklearn_data_config("digits", standardize="global", augment=True)
    if arg in TFDS_IMAGES:
        image_experiment(c, arg)
    if arg == "tiny":
        tiny_run(c, batch_size=16)
        c.model.update(stem=4, stages=(4, 8), blocks=1)
    return c
