"""A variational autoencoder on scikit-learn's 8x8 digits (offline), pixels scaled to
[0, 1] with a Bernoulli decoder. Reports the held-out eval/elbo (nats per image,
higher is better), eval/kl and eval/reconstruction, and writes PNG grids of
reconstructions and of samples from the prior into <workdir>/images at each eval.

    python -m bigmodels.main --config=experiments/digits_vae.py --workdir=runs/digits_vae

The same recipe on a TFDS image dataset (online the first time, then cached):
`--config=experiments/digits_vae.py:mnist` (also fashion_mnist, cifar10, cifar100).
"""

from bigmodels.config import base_config, check_variant, tiny_run
from bigmodels.data.sklearn_data import sklearn_data_config
from bigmodels.data.tfds_images import KNOWN as TFDS_IMAGES, image_experiment
from bigmodels.models.autoencoder import autoencoder_config


VARIANTS = ("tiny", *TFDS_IMAGES)  # TFDS_IMAGES: online mnist, cifar10, ...


def get_config(arg: str = ""):
    check_variant(arg, VARIANTS)
    c = base_config(task="vae", total_steps=3000, batch_size=64, log_every=100, eval_every=500,
                    ckpt_every=3000)
    c.model = autoencoder_config("vae", latent_dim=8, hidden=(256, 128))
    c.optim.update(name="adam", lr=1e-3, schedule="warmup_cosine", warmup_steps=100,
                   min_lr=1e-4)
    c.data = sklearn_data_config("digits", standardize="unit")
    if arg in TFDS_IMAGES:
        image_experiment(c, arg)
    if arg == "tiny":
        tiny_run(c, batch_size=16)
        c.model.update(latent_dim=2, hidden=(16,))
    return c
