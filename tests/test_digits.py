"""Digits from scikit-learn: the random-shift augmentation, a fixed disjoint split and
a CNN that trains on a mixed mesh, with sharded conv kernels and an honest FLOP count."""


import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from bigmodels import train
from bigmodels.data import augment, sklearn_data
from bigmodels.models.cnn import CNN
from helpers import experiment_config, read_metrics


_experiment = experiment_config


def test_shift_image_moves_pixels_and_fills_with_background():
    image = np.arange(1, 17, dtype=np.float32).reshape(4, 4, 1)
    down_right = augment.shift_image(image, 1, 1)
    np.testing.assert_array_equal(down_right[1:, 1:], image[:-1, :-1])
    assert not down_right[0].any() and not down_right[:, 0].any()
    up_left = augment.shift_image(image, -1, -1)
    np.testing.assert_array_equal(up_left[:-1, :-1], image[1:, 1:])
    assert not up_left[-1].any() and not up_left[:, -1].any()
    np.testing.assert_array_equal(augment.shift_image(image, 0, 0), image)


def test_random_shift_keeps_the_label_and_shifts_by_at_most_one_pixel():
    image = np.random.default_rng(0).uniform(1, 16, size=(8, 8, 1)).astype(np.float32)
    shift = augment.RandomShift(1)
    seen = set()
    for seed in range(60):
        out = shift.random_map({"image": image, "y": 7}, np.random.default_rng(seed))
        assert out["y"] == 7
        matches = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                   if np.array_equal(out["image"], augment.shift_image(image, dy, dx))]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) == 9                                   # every shift occurs


def test_augmented_train_batches_keep_labels_and_are_deterministic(tmp_path):
    def build(augment, name):
        config = _experiment("digits_cnn")
        config.data.augment = augment
        return sklearn_data.build(config, str(tmp_path / name))

    plain, shifted, again = build(False, "a"), build(True, "b"), build(True, "c")
    for i in (0, 3):
        np.testing.assert_array_equal(plain.train[i]["label"], shifted.train[i]["label"])
        np.testing.assert_array_equal(shifted.train[i]["image"], again.train[i]["image"])
    a, b = plain.train[0]["image"], shifted.train[0]["image"]
    assert a.shape == b.shape == (16, 8, 8, 1) and not np.array_equal(a, b)
    assert np.isclose(a.sum(axis=(1, 2, 3)), b.sum(axis=(1, 2, 3))).any()   # some unshifted


def test_split_is_deterministic_disjoint_and_stratified(tmp_path):
    first = sklearn_data.load_splits("digits", 0.2, str(tmp_path / "one"))
    second = sklearn_data.load_splits("digits", 0.2, str(tmp_path / "two"))   # rebuilt
    for split in ("train", "test"):
        for a, b in zip(first[split], second[split]):
            np.testing.assert_array_equal(a, b)
    train_rows, test_rows = first["train"][0], first["test"][0]
    assert not set(train_rows) & set(test_rows)
    assert len(train_rows) + len(test_rows) == 1797
    test_counts = np.bincount(first["test"][2], minlength=10)
    all_counts = test_counts + np.bincount(first["train"][2], minlength=10)
    assert np.all(np.abs(test_counts - 0.2 * all_counts) <= 0.5)


def _forward_flops(kernel_size):
    """(the model's estimate, XLA's count) of forward FLOPs per example."""
    model = CNN(num_classes=10, channels=(8, 16), dense=32, dropout=0.0,
                kernel_size=kernel_size)
    images = jnp.zeros((4, 8, 8, 1))
    params = nn.meta.unbox(model.init(jax.random.key(0), images)["params"])
    analysis = jax.jit(lambda p: model.apply({"params": p}, images)).lower(params) \
        .compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return model.train_flops_per_token(params) / 3, analysis["flops"] / 4


def test_cnn_flop_estimate_agrees_with_xla():
    # 1x1 kernels touch no padding: XLA counts the same multiply-adds plus the bias,
    # ReLU and pooling the estimate leaves out.
    estimate, counted = _forward_flops(1)
    assert estimate <= counted <= 1.25 * estimate
    # 3x3 SAME convs: the estimate counts every tap, as the kernel computes them; XLA
    # skips the taps that fall on the zero padding (a third of them on a 4x4 map).
    estimate, counted = _forward_flops(3)
    assert counted <= estimate <= 1.35 * counted


def test_cnn_trains_on_a_mixed_mesh(tmp_path):
    config = _experiment("digits_cnn")
    config.update(total_steps=20, log_every=1, eval_every=20, ckpt_every=20, batch_size=32)
    config.model.update(channels=(8, 16), dense=32, dropout=0.0)
    config.optim.update(lr=3e-3, warmup_steps=0, schedule="constant")
    config.mesh.update(data=2, fsdp=2, tensor=2)
    result = train.run(config, str(tmp_path))
    losses = read_metrics(str(tmp_path))
    assert np.mean([losses[s] for s in range(16, 21)]) < losses[1] - 0.3
    assert {"eval/accuracy", "eval/f1"} <= set(result.eval_metrics)
    conv = result.state.params["conv_1"]["kernel"]                 # 3 x 3 x 8 x 16
    assert conv.sharding.spec[2:] == ("fsdp", "tensor")
    assert (tmp_path / sklearn_data.PREPROCESS_FILE).exists()
