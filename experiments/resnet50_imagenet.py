"""ResNet-50 on ImageNet (ILSVRC 2012), the standard recipe: 90 epochs of SGD with
momentum 0.9, batch 1024, lr 0.1 x batch / 256 = 0.4 after 5 warmup epochs, cosine to 0,
L2 weight decay 1e-4 on the kernels (not BatchNorm), Inception crops of 8-100% of the
image at 224 x 224 and flips for training, the centre 87.5% for eval, and the last
BatchNorm of each block starting at 0 (Goyal et al. 2017). Published: 76-77% top-1
(../shared/REFERENCE_NUMBERS.md).

TFDS cannot download ImageNet: put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar
in <tfds_dir>/downloads/manual/ first (image-net.org). The first run prepares the
dataset as array_record (once, hours); training then reads, decodes and augments each
image in `data.workers` grain worker processes, holding none of them in memory:

    python -m bigmodels.main --config=experiments/resnet50_imagenet.py \\
        --workdir=runs/resnet50 --config.data.tfds_dir=/data/tfds --config.data.workers=16

bf16 compute with f32 params; on 8 GPUs the batch is 128 a device. `:tiny` is the same
pipeline and model shape on a few TFDS mock examples (random pixels, offline).
"""

from bigmodels.config import base_config, check_variant, tiny_run
from bigmodels.data.tfds_images import tfds_images_config
from bigmodels.models.resnet import resnet50_config

VARIANTS = ("tiny",)
TRAIN_IMAGES = 1_281_167
BATCH = 1024
EPOCHS = 90


def get_config(arg: str = ""):
    check_variant(arg, VARIANTS)
    steps_per_epoch = TRAIN_IMAGES // BATCH
    c = base_config(task="classify", total_steps=EPOCHS * steps_per_epoch, batch_size=BATCH,
                    log_every=100, eval_every=5 * steps_per_epoch, ckpt_every=steps_per_epoch)
    c.model = resnet50_config(dtype="bfloat16")
    c.optim.update(name="momentum", momentum=0.9, lr=0.1 * BATCH / 256,
                   schedule="warmup_cosine", warmup_steps=5 * steps_per_epoch, min_lr=0.0,
                   l2=1e-4)
    c.data = tfds_images_config("imagenet2012", standardize="global", random_resized_crop=True,
                                image_size=224, flip=True, workers=8, stats_examples=10_000,
                                train_split="train", eval_split="validation")
    if arg == "tiny":
        tiny_run(c, batch_size=8)
        c.model.update(image_size=32, stem=8, stages=(4, 8), stage_blocks=(1, 1),
                       dtype="float32")
        c.data.update(image_size=32, workers=0, mock_examples=12)
    return c
