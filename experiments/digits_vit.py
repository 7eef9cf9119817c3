"""A small Vision Transformer (2x2 patches -> 16 tokens + [CLS], 4 pre-norm blocks,
width 64, 4 heads) on scikit-learn's 8x8 handwritten digits; reports eval/accuracy
and eval/f1 (macro) on a stratified 20% test split. Offline.

    python -m bigmodels.main --config=experiments/digits_vit.py --workdir=runs/digits_vit

The same recipe on a TFDS image dataset (online the first time, then cached):
`--config=experiments/digits_vit.py:mnist` (also fashion_mnist, cifar10, cifar100).

Same data pipeline as digits_cnn (standardised pixels, random one-pixel shifts); with
1,437 training images the shifts are what keeps a ViT, which has no built-in
translation invariance, from overfitting.
"""

from bigmodels.config import base_config, check_variant, tiny_run
from bigmodels.data.sklearn_data import sklearn_data_config
from bigmodels.data.tfds_images import KNOWN as TFDS_IMAGES, image_experiment
from bigmodels.models.vit import vit_config


VARIANTS = ("tiny", *TFDS_IMAGES)  # TFDS_IMAGES: online mnist, cifar10, ...


def get_config(arg: str = ""):
    check_variant(arg, VARIANTS)
    c = base_config(task="classify", total_steps=2000, batch_size=64, log_every=100,
                    eval_every=500, ckpt_every=2000)
    c.model = vit_config(patch_size=2, embed_dim=64, num_layers=4, num_heads=4, mlp_dim=128,
                         dropout=0.0)
    c.optim.update(name="adamw", lr=3e-3, weight_decay=0.05, clip_norm=1.0,
                   schedule="warmup_cosine", warmup_steps=100)
    c.data = sklearn_data_config("digits", standardize="global", augment=True)
    if arg in TFDS_IMAGES:
        image_experiment(c, arg)
    if arg == "tiny":
        tiny_run(c, batch_size=16)
        c.model.update(embed_dim=16, num_layers=1, num_heads=2, mlp_dim=32)
    return c
