"""Kind toy_datasets: the small real datasets that ship inside scikit-learn (no
download), wrapped as TFDS datasets.

`data.name`: digits (1,797 8x8 handwritten digits, 10 classes), breast_cancer (569
rows, 30 features, binary: 1 = benign, 0 = malignant) or diabetes (442 rows, 10 raw
features, a disease-progression target). Rows with a missing value are dropped, then
a fixed split (seed SPLIT_SEED, `data.val_fraction` of the rows held out, stratified
by class for the classification sets) is written once as array_record under
`data.tfds_dir` and read back without TensorFlow.

Features get log(1+x) on `data.log1p` columns and are standardised with statistics
fitted on train only (`data.standardize`: column | global | none; the regression
target too with `data.standardize_target`, so eval/mse is in units of the train
target's variance). The statistics go to `preprocess.json` in the workdir and a
resumed run reads them back instead of refitting.

Train batch i is a pure function of (seed, i): grain shuffles the train rows anew
every epoch and draws each example's augmentation (`data.augment`: a random shift of
up to one pixel for digits; no flip, a flipped digit is another symbol) from the
seed and the example's position in the stream. Eval reads the whole test split once,
in batches of batch_size; the last batch is padded with rows of `weight` 0 so every
test example counts exactly once. Each example carries its `id`, its row in its split
(a GAN's eval pairs test example k with the fake drawn from noise seed k).
"""

import dataclasses
import math
import os

import grain
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from bigmodels.data import augment, preprocess
from bigmodels.data.local_builder import LocalBuilder
from bigmodels.data.text_files import default_data_dir
from bigmodels.data.windows import rows_for_process
from bigmodels.errors import BadInput
from bigmodels.names import PREPROCESS_FILE

SPLIT_SEED = 0     # the split is part of the dataset, the same for every run seed


@dataclasses.dataclass(frozen=True)
class Spec:
    loader: str                     # sklearn.datasets function
    kwargs: dict
    image_shape: tuple | None       # HxWxC for image sets; None = a flat feature row
    classification: bool


DATASETS = {
    "digits": Spec("load_digits", {}, (8, 8, 1), True),
    "breast_cancer": Spec("load_breast_cancer", {}, None, True),
    "diabetes": Spec("load_diabetes", {"scaled": False}, None, False),   # raw, unscaled
}


def sklearn_data_config(name: str, **overrides) -> ml_collections.ConfigDict:
    """The `config.data` of kind toy_datasets; experiment files override what they change."""
    from bigmodels.config import base_config
    data = base_config().data
    data.update(kind="toy_datasets", name=name)
    for key, value in dict(val_fraction=0.2, log1p="", standardize="column",
                           standardize_target=True, augment=False, classes="",
                           train_per_class=0, train_per_class_seed=-1).items():
        data[key] = value   # new keys: ConfigDict.update only sets existing ones
    data.update(overrides)
    return data


def load_arrays(name: str):
    """(features N x F float64, targets N, class names) with missing rows dropped."""
    import sklearn.datasets
    spec = DATASETS[name]
    bunch = getattr(sklearn.datasets, spec.loader)(**spec.kwargs)
    features, targets = preprocess.drop_missing(bunch.data, bunch.target)
    names = [str(n) for n in bunch.target_names] if spec.classification else []
    return features, targets, names


def split_indices(n: int, val_fraction: float, seed: int, labels=None):
    """(train, test) row indices, sorted; per class when `labels` is given, so both
    splits keep the class balance."""
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if labels is None else [
        np.flatnonzero(labels == c) for c in np.unique(labels)]
    test = []
    for group in groups:
        take = int(round(len(group) * val_fraction))
        test.append(rng.permutation(group)[:take])
    test = np.sort(np.concatenate(test))
    return np.setdiff1d(np.arange(n), test), test


class SklearnDataset(LocalBuilder):
    """One scikit-learn dataset split into train / test."""
    VERSION = tfds.core.Version("1.0.0")

    def __init__(self, *, dataset: str, val_fraction: float, **kwargs):
        self._dataset, self._val_fraction = dataset, val_fraction
        self._features, self._targets, _ = load_arrays(dataset)
        # The name keys the prepared files: the held-out rows are TFDS's "test" split.
        name = f"{dataset}_test{round(val_fraction * 1000)}_seed{SPLIT_SEED}"
        super().__init__(source=f"data.name={dataset} (scikit-learn)",
                         config=tfds.core.BuilderConfig(name=name),
                         file_format="array_record", **kwargs)

    def _info(self):
        classification = DATASETS[self._dataset].classification
        return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
            "index": np.int64,   # the row in the cleaned data; TFDS shuffles records
            "features": tfds.features.Tensor(shape=(self._features.shape[1],),
                                             dtype=np.float32),
            "target": np.int64 if classification else np.float32,
        }))

    def _split_generators(self, dl_manager):
        labels = self._targets if DATASETS[self._dataset].classification else None
        train, test = split_indices(len(self._targets), self._val_fraction, SPLIT_SEED,
                                    labels)
        return {"train": self._generate_examples(train), "test": self._generate_examples(test)}

    def _generate_examples(self, indices):
        for i in indices:
            yield int(i), {"index": int(i), "features": self._features[i].astype(np.float32),
                           "target": self._targets[i]}


def load_splits(name: str, val_fraction: float = 0.2, data_dir: str = "") -> dict:
    """{"train"|"test": (row indices, features N x F float32, targets N)}, in row order;
    prepared once under data_dir."""
    if name not in DATASETS:
        raise BadInput(f"data.name: unknown scikit-learn dataset {name!r} "
                       f"(known: {', '.join(DATASETS)})")
    if not 0.0 < val_fraction < 1.0:
        raise BadInput(f"data.val_fraction must be in (0, 1), got {val_fraction}")
    tfds.disable_progress_bar()
    builder = SklearnDataset(dataset=name, val_fraction=val_fraction,
                             data_dir=data_dir or default_data_dir())
    builder.download_and_prepare()
    return indexed_splits(builder, "features", "target", np.float32)


def indexed_splits(builder, x_key: str, y_key: str, x_dtype=None) -> dict:
    """{"train"|"test": (row indices, stacked x, y)} of a prepared builder whose
    records carry their row `index`, in row order (TFDS shuffles records on disk)."""
    out = {}
    for split in ("train", "test"):
        source = builder.as_data_source(split)
        records = sorted((source[i] for i in range(len(source))), key=lambda r: int(r["index"]))
        out[split] = (np.array([int(r["index"]) for r in records]),
                      np.stack([np.asarray(r[x_key], x_dtype) for r in records]),
                      np.array([r[y_key] for r in records]))
    return out


@dataclasses.dataclass
class TabularData:
    name: str
    class_names: list
    stats: dict            # {"features": Standardizer, "target": Standardizer?, ...}
    train: object          # grain.MapDataset of host-local batches, indexed by step
    eval: object           # grain.MapDataset covering the test split once
    tokenizer = None       # no text

    @property
    def num_classes(self) -> int:
        return len(self.class_names) or 1     # regression: one output

    def save(self, workdir: str) -> None:
        preprocess.save(os.path.join(workdir, PREPROCESS_FILE), self.stats)


def batch_maker(stats: dict, spec: Spec, rows: slice):
    """Raw stacked examples -> the model's batch: standardised, labels or targets typed."""
    def finish(raw):
        x = stats["features"].apply(raw["x"])
        out = {"image" if spec.image_shape else "features": x}
        if spec.classification:
            out["label"] = raw["y"].astype(np.int32)
        else:
            y = raw["y"].astype(np.float64)[:, None]
            if "target" in stats:
                y = stats["target"].apply(y)
            out["target"] = y[:, 0].astype(np.float32)
        out["weight"] = raw["w"].astype(np.float32)
        out["id"] = raw["id"].astype(np.int32)    # the example's row in its split
        return {k: v[rows] for k, v in out.items()}
    return finish


def _fit_stats(d, spec: Spec, train_x, train_y) -> dict:
    columns = preprocess.parse_columns(d.log1p, train_x.shape[1])
    mode = d.standardize
    stats = {"dataset": d.name,
             "features": preprocess.fit(train_x, columns, mode)}
    if not spec.classification and d.standardize_target:
        stats["target"] = preprocess.fit(train_y[:, None])
    return stats


def _load_stats(path: str, name: str, num_features: int) -> dict:
    stats = preprocess.load(path)
    if stats.get("dataset") != name or stats["features"].mean.size not in (1, num_features):
        raise BadInput(f"data.name={name!r}: the workdir's {PREPROCESS_FILE} was fitted on "
                       f"{stats.get('dataset')!r}; use a fresh workdir")
    return stats


def batches(config, spec: Spec, stats: dict, train_xy, test_xy, augment=(),
            process_index: int = 0, process_count: int = 1):
    """(train, eval) MapDatasets of this process's rows of each global batch.

    `augment`: grain RandomMap transforms applied, in order, to each raw train example
    {"image": H x W x C, ...} before standardisation."""
    b = config.batch_size
    (train_x, train_y), (test_x, test_y) = train_xy, test_xy
    if len(train_y) < b:
        raise BadInput(f"batch_size={b} is larger than the {len(train_y)} train rows")
    shape = tuple(spec.image_shape or train_x.shape[1:])
    finish = batch_maker(stats, spec, rows_for_process(b, process_index, process_count))

    def example(i):
        return {"image": train_x[i].reshape(shape), "y": train_y[i], "w": np.float32(1),
                "id": np.int32(i)}

    # shuffle + repeat: a fresh permutation of the train rows every epoch.
    train = (grain.MapDataset.range(len(train_y)).shuffle(seed=config.seed).repeat(None)
             .map(example))
    for transform in augment:
        train = train.random_map(transform, seed=config.seed)
    train = (train.map(lambda e: {"x": e["image"], "y": e["y"], "w": e["w"], "id": e["id"]})
             .batch(b, drop_remainder=True).map(finish))

    def eval_batch(i, _):
        index = np.arange(i * b, (i + 1) * b)
        valid = index < len(test_y)
        index = np.where(valid, index, 0)          # padding rows repeat row 0, weight 0
        return finish({"x": test_x[index].reshape((b,) + shape), "y": test_y[index],
                       "w": valid, "id": index})

    eval_ = grain.MapDataset.range(math.ceil(len(test_y) / b)).map_with_index(eval_batch)
    return train, eval_


def fitted_or_saved_stats(d, spec: Spec, workdir: str, train_x, train_y) -> dict:
    """The workdir's saved statistics when resuming, else fitted on the train split."""
    path = os.path.join(workdir, PREPROCESS_FILE)
    if os.path.exists(path):
        return _load_stats(path, d.name, train_x[0].size)
    return _fit_stats(d, spec, train_x.reshape(len(train_x), -1), train_y)


def select_classes(x, y, names: list, classes: str, per_class: int = 0, key="data.classes",
                   per_class_seed: int = -1):
    """Rows of the listed classes (comma-separated ids), relabelled 0..k-1 in the listed
    order, keeping at most `per_class` rows of each: e.g. pretrain on digits 0-4, then
    fine-tune on 5-9 from a few labels each. The rows kept are the first ones in row
    order, or a random draw of each class's rows when `per_class_seed` >= 0 (a different
    labelled subset per seed, for error bars over subsets)."""
    if not classes and not per_class:
        return x, y, names
    try:
        ids = [int(c) for c in classes.split(",")] if classes else list(range(len(names)))
    except ValueError:
        raise BadInput(f"{key}: {classes!r} is not a comma-separated list of class ids") from None
    if len(set(ids)) != len(ids) or not all(0 <= c < len(names) for c in ids):
        raise BadInput(f"{key}: {classes!r} must list distinct ids in 0..{len(names) - 1}")
    rng = np.random.default_rng(per_class_seed) if per_class_seed >= 0 else None
    keep = [np.flatnonzero(y == c) for c in ids]
    keep = [rows if rng is None else rng.permutation(rows) for rows in keep]
    keep = [rows[:per_class or None] for rows in keep]
    rows = np.sort(np.concatenate(keep))
    relabel = np.full(len(names), -1)
    relabel[ids] = np.arange(len(ids))
    return x[rows], relabel[y[rows]], [names[c] for c in ids]


def build(config, workdir: str, process_index: int = 0, process_count: int = 1):
    d = config.data
    if config.batch_size % process_count:
        raise BadInput(f"batch_size={config.batch_size} cannot be split over "
                       f"{process_count} processes")
    splits = load_splits(d.name, d.val_fraction, d.tfds_dir)
    spec = DATASETS[d.name]
    if d.augment and spec.image_shape is None:
        raise BadInput(f"data.augment: {d.name!r} is not an image dataset")
    _, train_x, train_y = splits["train"]
    _, test_x, test_y = splits["test"]
    names = load_arrays(d.name)[2]
    if d.get("classes") or d.get("train_per_class"):
        if not spec.classification:
            raise BadInput(f"data.classes: {d.name!r} is not a classification dataset")
        train_x, train_y, _ = select_classes(train_x, train_y, names, d.classes,
                                             d.train_per_class,
                                             per_class_seed=d.get("train_per_class_seed", -1))
        test_x, test_y, names = select_classes(test_x, test_y, names, d.classes)
    stats = fitted_or_saved_stats(d, spec, workdir, train_x, train_y)
    train, eval_ = batches(config, spec, stats, (train_x, train_y), (test_x, test_y),
                           augment.image_augmentations(8, d.augment, False), process_index,
                           process_count)
    return TabularData(d.name, names, stats, train, eval_)
