"""A DCGAN-style GAN on scikit-learn's 8x8 digits (offline), pixels scaled to [0, 1].

The generator and discriminator are two parameter groups of one train state, each
with its own Adam (b1 0.5 as in DCGAN) through one optax.multi_transform, updated in
turn every step with the non-saturating losses. DCGAN's lr of 2e-4 reached FID 72 in
3,000 steps here; 1e-3 reaches 21 (real test vs real train digits: 6.8). At each eval
the trainer writes a sample grid to <workdir>/images/samples_<step>.png and logs
eval/fid, the Fréchet distance between the 360 test digits and 360 fakes in the
features of the trained digits CNN, so train that first:

    python -m bigmodels.main --config=experiments/digits_cnn.py --workdir=runs/digits_cnn
    python -m bigmodels.main --config=experiments/digits_gan.py --workdir=runs/digits_gan

On a TFDS image dataset (online the first time, then cached), with the FID in the
features of a CNN trained on it:
`--config=experiments/digits_cnn.py:mnist --workdir=runs/digits_cnn_mnist`, then
`--config=experiments/digits_gan.py:mnist` (also fashion_mnist, cifar10, cifar100).

(`--config.fid_classifier=` without a value trains without the score.)
"""

import ml_collections

from bigmodels.config import base_config, check_variant, tiny_run
from bigmodels.data.sklearn_data import sklearn_data_config
from bigmodels.data.tfds_images import KNOWN as TFDS_IMAGES, image_experiment
from bigmodels.models.gan import gan_config


VARIANTS = ("tiny", *TFDS_IMAGES)  # TFDS_IMAGES: online mnist, cifar10, ...


def get_config(arg: str = ""):
    check_variant(arg, VARIANTS)
    c = base_config()
    c.task = "gan"
    c.fid_classifier = "runs/digits_cnn"    # a trained classifier's workdir; "" = no FID
    c.total_steps = 3000
    c.batch_size = 64
    c.log_every = 100
    c.eval_every = 500
    c.ckpt_every = 3000
    c.model = gan_config(latent_dim=32, generator_channels=(128, 64),
                         discriminator_channels=(64, 128))
    c.optim.update(name="adam", lr=1e-3, b1=0.5, b2=0.999)
    # One optimizer per group; both start as the one above. Override one with e.g.
    # --config.optim.groups.discriminator.lr=5e-4.
    c.optim.groups = ml_collections.ConfigDict({"generator": {"lr": 1e-3},
                                                "discriminator": {"lr": 1e-3}})
    c.data = sklearn_data_config("digits", standardize="unit")
    if arg in TFDS_IMAGES:
        image_experiment(c, arg)
        c.fid_classifier = f"runs/digits_cnn_{arg}"    # digits_cnn.py:<arg> trained there
    if arg == "tiny":
        tiny_run(c, batch_size=16)
        c.model.update(latent_dim=4, generator_channels=(16, 8), discriminator_channels=(8, 16))
    return c
