"""Images from a folder of class sub-directories: decoded, split, augmented and
learned by the CNN."""

import numpy as np
import pytest
from PIL import Image

from bigmodels import train
from bigmodels.config import base_config
from bigmodels.data import augment, image_folder, image_stream
from bigmodels.errors import BadInput
from bigmodels.models.cnn import cnn_config
from helpers import read_metrics


def _write_folder(root, per_class=24):
    """Two classes told apart by stripe direction, on noise; RGB PNGs of 12x12."""
    rng = np.random.default_rng(0)
    for name, axis in (("horizontal", 0), ("vertical", 1)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            stripes = np.indices((12, 12))[axis] % 4 < 2
            pixels = stripes[..., None] * 160 + rng.integers(0, 90, size=(12, 12, 3))
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}.png")
    return str(root)


def _config(path, **data):
    c = base_config()
    c.task = "classify"
    c.update(total_steps=20, batch_size=32, log_every=1, eval_every=20, ckpt_every=20)
    c.data = image_folder.image_folder_config(path, image_size=8, channels=1, **data)
    c.model = cnn_config(image_size=8, channels=(8, 16), dense=32, dropout=0.0)
    c.optim.update(name="adam", lr=3e-3)
    return c


def test_folder_is_split_by_class_and_batched(tmp_path):
    config = _config(_write_folder(tmp_path / "images"))
    classes, splits = image_folder.load_splits(config.data)
    assert classes == ["horizontal", "vertical"]
    train_rows, test_rows = splits["train"][0], splits["test"][0]
    assert not set(train_rows) & set(test_rows) and len(train_rows) + len(test_rows) == 48
    assert np.bincount(splits["test"][2]).tolist() == [5, 5]        # 20% of 24, per class
    assert splits["train"][1].shape[1:] == (8, 8, 1)
    data = image_folder.build(config, str(tmp_path / "run"))
    batch = data.eval[0]
    assert batch["image"].shape == (32, 8, 8, 1) and batch["weight"].sum() == 10


def test_flip_mirrors_left_right_and_keeps_the_label():
    image = np.arange(12, dtype=np.uint8).reshape(2, 3, 2)
    flipped = [augment.RandomFlip().random_map({"image": image, "y": 1},
                                                    np.random.default_rng(s))
               for s in range(20)]
    assert all(f["y"] == 1 for f in flipped)
    mirrored = [np.array_equal(f["image"], image[:, ::-1]) for f in flipped]
    kept = [np.array_equal(f["image"], image) for f in flipped]
    assert all(m or k for m, k in zip(mirrored, kept)) and any(mirrored) and any(kept)


def test_bad_folders_are_refused(tmp_path):
    with pytest.raises(BadInput, match="data.path"):
        image_folder.build(_config(str(tmp_path / "missing")), str(tmp_path / "run"))
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(BadInput, match="at least 2"):
        image_folder.build(_config(str(tmp_path / "one")), str(tmp_path / "run"))


def test_cnn_learns_the_folder_on_a_mixed_mesh(tmp_path):
    config = _config(_write_folder(tmp_path / "images"), augment=True, flip=True)
    config.mesh.update(data=2, fsdp=2, tensor=2)
    result = train.run(config, str(tmp_path / "run"))
    losses = read_metrics(str(tmp_path / "run"))
    assert np.mean([losses[s] for s in range(16, 21)]) < losses[1] - 0.2
    assert result.config.model.num_classes == 2
    assert (tmp_path / "run" / "preprocess.json").exists()


def test_worker_processes_give_the_same_batches_and_resume(tmp_path):
    """data.workers=2 decodes and augments in grain worker processes: the batches are
    those of workers=0 (batch i = f(seed, i)), and a position saved with either number
    of workers resumes with the other."""
    root = _write_folder(tmp_path / "images")
    train = {}
    for workers in (0, 2):
        config = _config(root, augment=True, flip=True, workers=workers)
        config.batch_size = 8
        train[workers] = image_folder.build(config, str(tmp_path / f"run{workers}")).train
    runs = {}
    for workers, other in ((0, 2), (2, 0)):
        iterator = iter(train[workers].to_iter_dataset())
        first = [next(iterator) for _ in range(3)]
        state = iterator.get_state()
        assert state == {"next_index": 3}
        later = [next(iterator) for _ in range(2)]
        resumed = iter(train[other].to_iter_dataset())
        resumed.set_state(state)
        for a, b in zip(later, [next(resumed) for _ in range(2)]):
            np.testing.assert_array_equal(a["image"], b["image"])
        runs[workers] = first + later
    for a, b in zip(runs[0], runs[2]):
        for key in ("image", "label", "id", "weight"):
            np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(runs[0][0]["image"], runs[0][1]["image"])


def test_the_fast_reader_equals_tfds_decoding(tmp_path):
    config = _config(_write_folder(tmp_path / "images"))
    _, builder = image_folder.prepared(config.data)
    for split in ("train", "test"):
        reader = image_stream.SplitReader(builder, split, "image", "label")
        source = builder.as_data_source(split)
        assert reader._raw_shape == (8, 8, 1) and len(reader) == len(source)
        for i in range(len(source)):
            np.testing.assert_array_equal(reader(i)["image"], source[i]["image"])
            assert reader(i)["y"] == source[i]["label"]
