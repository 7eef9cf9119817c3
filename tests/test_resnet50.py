"""ResNet-50 and its ImageNet pipeline: the architecture's published size and cost,
Inception crops, and the streamed TFDS path on mock ImageNet (variable-size images)."""

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow_datasets as tfds
from flax import linen as nn

from bigmodels import data, models
from bigmodels.data import image_stream
from bigmodels.models.resnet import resnet50_config
from helpers import experiment_config


def test_resnet50_has_torchvisions_parameter_count_and_flops():
    config = resnet50_config(num_classes=1000)
    model = models.build(config)
    shapes = nn.meta.unbox(jax.eval_shape(lambda: model.init(
        jax.random.key(0), jnp.zeros((1, 224, 224, 3)))["params"]))
    count = sum(np.prod(x.shape) for x in jax.tree.leaves(shapes))
    assert count == 25_557_032                     # torchvision.models.resnet50
    params = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), shapes)
    forward = model.train_flops_per_token(params) / 3
    # torchvision's ResNet-50: 4.09 GMACs a 224 x 224 image (convs and the head).
    assert abs(forward / (2 * 4.089e9) - 1) < 0.01


def test_random_resized_crop_and_centre_crop_shapes():
    image = np.random.default_rng(0).integers(0, 255, (40, 70, 3), np.uint8)
    crop = image_stream.RandomResizedCrop(16)
    outs = [crop.random_map({"image": image, "y": 3}, np.random.default_rng(s))["image"]
            for s in range(20)]
    assert all(o.shape == (16, 16, 3) and o.dtype == np.uint8 for o in outs)
    assert len({o.tobytes() for o in outs}) == 20               # different boxes
    centre = image_stream.resize_center_crop(image, 16)
    assert centre.shape == (16, 16, 3)
    gray = image_stream.resize_center_crop(image[..., :1], 16)
    assert gray.shape == (16, 16, 1)


def test_mock_imagenet_streams_crops_of_variable_size_images(tmp_path):
    config = experiment_config("resnet50_imagenet", "tiny")
    config.data.update(tfds_dir=str(tmp_path / "tfds"), mock_examples=0)
    with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
        built = data.build(config, str(tmp_path / "run"))       # the real, lazy TFDS path
        train, eval_ = built.train[0], built.eval[0]
    assert len(built.class_names) == 1000
    assert train["image"].shape == eval_["image"].shape == (8, 32, 32, 3)
    assert train["image"].dtype == np.float32 and abs(float(train["image"].mean())) < 0.5
