"""The image experiments pointed at TFDS datasets (mnist, cifar10), on TFDS mock data:
real feature specs and splits, random pixels, no download and no TensorFlow."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from bigmodels import train
from bigmodels.errors import BadInput
from helpers import assert_runs_without_tensorflow, experiment_config


@pytest.mark.parametrize("experiment,dataset,shape", [
    ("digits_cnn", "mnist", (28, 28, 1)),
    ("digits_resnet", "cifar10", (32, 32, 3)),
    ("digits_vit", "fashion_mnist", (28, 28, 1)),
    ("digits_vae", "mnist", (28, 28, 1)),
    ("digits_gan", "cifar10", (32, 32, 3)),
])
def test_image_experiment_on_mock_tfds_data(tmp_path, experiment, dataset, shape):
    config = experiment_config(experiment, dataset, total_steps=4, batch_size=8, log_every=2,
                               eval_every=4, ckpt_every=4)
    config.model = experiment_config(experiment).model      # the tiny model ...
    for key, value in (("image_size", shape[0]), ("image_shape", shape), ("patch_size", 4)):
        if key in config.model:                             # ... at this dataset's size
            config.model[key] = value
    if "fid_classifier" in config:
        assert config.fid_classifier == f"runs/digits_cnn_{dataset}"
        config.fid_classifier = ""
    config.data.update(tfds_dir=str(tmp_path / "tfds"), max_examples=24)
    with tfds.testing.mock_data(num_examples=30, policy=tfds.testing.MockPolicy.USE_CODE):
        result = train.run(config, str(tmp_path / "run"))
        batch = result.data.train[0]             # images are read on demand, mocked here
    assert batch["image"].shape == (8,) + shape and batch["image"].dtype == np.float32
    if result.config.data.standardize == "unit":         # pixels in [0, 1] (AE, VAE, GAN)
        assert batch["image"].min() >= 0 and batch["image"].max() <= 1
    else:                                                # standardised with train statistics
        assert result.config.model.num_classes == 10
        assert abs(float(batch["image"].mean())) < 0.5
        assert {"eval/accuracy", "eval/f1"} <= set(result.eval_metrics)
    assert "eval/loss" in result.eval_metrics
    assert (tmp_path / "run" / "preprocess.json").exists()


def test_tfds_images_are_read_without_tensorflow(tmp_path):
    assert_runs_without_tensorflow(f"""
import tensorflow_datasets as tfds
from bigmodels import data, train
from helpers import experiment_config
config = experiment_config("digits_cnn", "mnist", batch_size=8)
config.data.update(tfds_dir={str(tmp_path / "tfds")!r}, max_examples=24)
with tfds.testing.mock_data(num_examples=30, policy=tfds.testing.MockPolicy.USE_CODE):
    built = data.build(config, {str(tmp_path / "run")!r})
    built.train[0], built.eval[0]
""")


def test_unknown_tfds_image_dataset_is_bad_input(tmp_path):
    config = experiment_config("digits_cnn", "mnist")
    config.data.update(name="no_such_dataset", tfds_dir=str(tmp_path / "tfds"))
    with pytest.raises(BadInput, match="data.name='no_such_dataset'"):
        train.run(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
