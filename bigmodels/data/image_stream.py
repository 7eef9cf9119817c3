"""Images read one by one from an array_record source, decoded and augmented in grain
worker processes: nothing is held in memory whole.

``streamed_batches` is `sklearn_data.batches` without the arrays: a fresh permutation of
the train rows every epoch, per-example random transforms drawn from (seed, position),
padded eval batches, so train batch i is a pure function of (seed, i). With `workers` >
0 the trainer's iterator runs that pipeline in grain worker processes (`WithWorkers`);
the batches are the same as with 0, and so is the saved position (the next batch's
index), so a run resumes with any number of workers.

The ImageNet-style transforms live here too: `RandomResizedCrop` (Inception's: 8-100%
of the area, aspect 3/4-4/3) for training, `resize_center_crop` (the shorter side to
size / 0.875, then the centre) for eval.
"""

import math
import os

import grain
import numpy as np

from bigmodels.data.windows import rows_for_process
from bigmodels.errors import BadInput
from bigmodels.names import PREPROCESS_FILE


class WithWorkers(grain.MapDataset):
    """`parent` as is (item i = parent[i]), but iterated by `workers` processes."""

    def __init__(self, parent: grain.MapDataset, workers: int):
        super().__init__(parent)
        self._workers = workers

    def __len__(self):
        return len(self._parent)

    def __getitem__(self, index):
        return self._parent[index]

    def __str__(self):
        return f"WithWorkers(workers={self._workers})"

    def to_iter_dataset(self, read_options=None, *, allow_nones: bool = False):
        # One reading thread (per worker): grain's default 16 contend for the GIL, and
        # the trainer prefetches in its own thread (9.5k against 6.3k images/s on 2 cores).
        read_options = read_options or grain.ReadOptions(num_threads=1, prefetch_buffer_size=2)
        return ResumableIterator(self._parent, self._workers, read_options)


class ResumableIterator:
    """Batches parent[i], parent[i + 1], ... in `workers` processes (0: this one). Its
    state is the next batch index, {"next_index": i}, as a plain grain iterator's is:
    a run saved with any number of workers resumes with any other."""

    def __init__(self, parent, workers: int, read_options):
        self._parent, self._workers, self._options = parent, workers, read_options
        self._next, self._iterator = 0, None

    def __iter__(self):
        return self

    def _open(self):
        it = self._parent[self._next:].to_iter_dataset(self._options)
        if self._workers:
            from absl import flags
            if not flags.FLAGS.is_parsed():    # a notebook or test: grain reads flag defaults
                flags.FLAGS.mark_as_parsed()
            it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=self._workers))
        self._iterator = iter(it)

    def __next__(self):
        if self._iterator is None:
            self._open()
        item = next(self._iterator)
        self._next += 1
        return item

    def get_state(self) -> dict:
        return {"next_index": self._next}

    def set_state(self, state: dict) -> None:
        self._next, self._iterator = int(state["next_index"]), None


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image
    squeeze = image.ndim == 3 and image.shape[2] == 1
    pil = Image.fromarray(image[..., 0] if squeeze else image)
    out = np.asarray(pil.resize((width, height), Image.BILINEAR), np.uint8)
    return out[..., None] if squeeze else out


def resize_center_crop(image: np.ndarray, size: int, crop_fraction: float = 0.875):
    """The shorter side to size / crop_fraction, then the central size x size."""
    h, w = image.shape[:2]
    scale = size / crop_fraction / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    image = _resize(image, nh, nw)
    top, left = (nh - size) // 2, (nw - size) // 2
    return image[top:top + size, left:left + size]


class RandomResizedCrop(grain.transforms.RandomMap):
    """A random box of 8-100% of the image's area and aspect ratio 3/4 to 4/3 (log
    uniform), resized to size x size; after 10 misses, the centre crop."""

    def __init__(self, size: int, area=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        self.size, self.area, self.ratio = size, area, ratio

    def random_map(self, element, rng: np.random.Generator):
        image = element["image"]
        h, w = image.shape[:2]
        for _ in range(10):
            target = rng.uniform(*self.area) * h * w
            aspect = math.exp(rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1])))
            ch, cw = round(math.sqrt(target / aspect)), round(math.sqrt(target * aspect))
            if 0 < ch <= h and 0 < cw <= w:
                top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
                crop = image[top:top + ch, left:left + cw]
                return {**element, "image": _resize(crop, self.size, self.size)}
        return {**element, "image": resize_center_crop(image, self.size, 1.0)}


class EpochPermutation:
    """Position p of an endless stream that visits rows 0..n-1 once an epoch, in a
    fresh order each epoch: row perm_e[p % n] with perm_e drawn from (seed, e). The
    current epochs' permutations are kept (a numpy draw each, not a lookup per row)."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self._cache = n, seed, {}

    def _epoch(self, epoch: int) -> np.ndarray:
        permutation = self._cache.get(epoch)
        if permutation is None:          # a local, so a second thread evicting is harmless
            permutation = np.random.default_rng((self.seed, epoch)).permutation(self.n)
            if len(self._cache) > 2:
                self._cache.pop(min(self._cache), None)
            self._cache[epoch] = permutation
        return permutation

    def __getitem__(self, positions: np.ndarray) -> np.ndarray:
        epochs, offsets = np.divmod(positions, self.n)
        return np.array([self._epoch(int(e))[o] for e, o in zip(epochs, offsets)])

    def __getstate__(self):
        return {**self.__dict__, "_cache": {}}


def streamed_batches(config, finish, read_train, n_train: int, read_eval, n_eval: int,
                     augment=(), prepare_eval=None, process_index: int = 0,
                     process_count: int = 1, workers: int = 0):
    """(train, eval) MapDatasets of this process's rows of each global batch.

    `read_train(i)` / `read_eval(i)` give example i of a split as {"image", "y"};
    `augment` are grain RandomMap transforms of a train example, drawn from
    (seed, the example's position in the stream); `prepare_eval` maps an eval image
    (e.g. its centre crop); `finish` turns stacked raw rows {"x", "y", "w", "id"} into
    the model's batch (standardisation). A process reads and decodes its rows only."""
    b = config.batch_size
    if n_train < b:
        raise BadInput(f"batch_size={b} is larger than the {n_train} train rows")
    rows = rows_for_process(b, process_index, process_count)
    offsets = np.arange(b)[rows]

    def train_batch(step, ids_B):
        ids = np.asarray(ids_B)[rows]
        images, labels = [], []
        for i, position in zip(ids, step * b + offsets):
            e = read_train(int(i))
            rng = np.random.default_rng((config.seed, int(position)))
            for transform in augment:
                e = transform.random_map(e, rng)
            images.append(e["image"])
            labels.append(e["y"])
        return finish({"x": np.stack(images), "y": np.array(labels),
                       "w": np.ones(len(ids), np.float32), "id": ids.astype(np.int32)})

    # A fresh permutation of the train rows every epoch, cut into global batches; a
    # batch straddling two epochs takes the end of one and the start of the next.
    permutation = EpochPermutation(n_train, config.seed)
    train = grain.MapDataset.range(2**62).map_with_index(
        lambda step, _: train_batch(step, permutation[step * b + np.arange(b)]))

    def eval_batch(i, _):
        index = np.arange(i * b, (i + 1) * b)
        valid = index < n_eval
        index = np.where(valid, index, 0)[rows]    # padding rows repeat row 0, weight 0
        examples = [read_eval(int(j)) for j in index]
        images = [prepare_eval(e["image"]) if prepare_eval else e["image"] for e in examples]
        return finish({"x": np.stack(images), "y": np.array([e["y"] for e in examples]),
                       "w": valid[rows].astype(np.float32), "id": index.astype(np.int32)})

    eval_ = grain.MapDataset.range(math.ceil(n_eval / b)).map_with_index(eval_batch)
    return WithWorkers(train, workers), eval_


def streamed_stats(mode: str, read, count: int, prepare=None):
    """A Standardizer fitted on the first `count` images `read(i)["image"]` (through
    `prepare`, e.g. a centre crop), one at a time in float64 running sums: the mode's
    statistics as `preprocess.fit` computes them on the stacked images."""
    from bigmodels.data import preprocess
    if mode not in preprocess.MODES:
        raise BadInput(f"data.standardize must be one of {preprocess.MODES}, got {mode!r}")
    total = squares = low = high = None
    for i in range(count):
        image = read(i)["image"]
        x = np.asarray(prepare(image) if prepare else image, np.float64).reshape(-1)
        if total is None:
            total, squares, low, high = np.zeros_like(x), np.zeros_like(x), x.copy(), x.copy()
        total += x
        squares += x * x
        np.minimum(low, x, out=low)
        np.maximum(high, x, out=high)
    if mode == "none":
        mean, std = np.zeros(1), np.ones(1)
    elif mode == "unit":
        mean, std = np.array([low.min()]), np.array([high.max() - low.min()])
    elif mode == "global":
        mean = np.array([total.sum() / total.size / count])
        std = np.sqrt(np.maximum(squares.sum() / total.size / count - mean ** 2, 0.0))
    else:
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
    std = np.where(std > 1e-8, std, 1.0)
    return preprocess.Standardizer((), mean, std)


class SplitReader:
    """i -> {"image": uint8 H x W x C, "y": int} of a prepared TFDS split, read from its
    array_record files and decoded with its feature spec. Unlike a TFDS data source it
    pickles without its builder, so grain worker processes can hold one."""

    def __init__(self, builder, split: str, image_key: str, label_key: str):
        info = builder.info
        instructions = info.splits[split].file_instructions
        self._paths = [f.filename for f in instructions]
        starts = np.cumsum([0] + [f.examples_in_shard for f in instructions[:-1]])
        # The split's records, in order, as positions in the files' concatenation.
        self._records = np.concatenate([np.arange(f.skip, f.skip + f.take) + start
                                        for f, start in zip(instructions, starts)])
        self._features, self._image_key, self._label_key = info.features, image_key, label_key
        image = info.features[image_key]
        # A fixed-shape uint8 tensor is stored as a list of ints: read it straight from
        # the proto, faster than TFDS's generic decoding (the cost of a small image).
        self._raw_shape = (tuple(image.shape) if type(image).__name__ == "Tensor"
                           and np.dtype(image.np_dtype) == np.uint8
                           and None not in image.shape else None)
        self._source = None

    def __len__(self) -> int:
        return len(self._records)

    def __getstate__(self):
        return {**self.__dict__, "_source": None}

    def __call__(self, i: int) -> dict:
        if self._source is None:
            self._source = grain.sources.ArrayRecordDataSource(self._paths)
        serialized = self._source[int(self._records[i])]
        if self._raw_shape:
            from tensorflow_datasets.proto import tf_example_pb2
            feature = tf_example_pb2.Example.FromString(serialized).features.feature
            values = feature[self._image_key].int64_list.value
            labels = feature[self._label_key].int64_list.value
            if len(values) == np.prod(self._raw_shape) and len(labels) == 1:
                return {"image": np.asarray(values, np.uint8).reshape(self._raw_shape),
                        "y": int(labels[0])}
        record = self._features.deserialize_example_np(serialized)
        return {"image": np.asarray(record[self._image_key], np.uint8),
                "y": int(record[self._label_key])}


class Limited:
    """The first `count` examples of a reader."""

    def __init__(self, read, count: int):
        self.read, self.count = read, count

    def __len__(self) -> int:
        return self.count

    def __call__(self, i: int) -> dict:
        return self.read(i)


class ListReader:
    """Examples held in a list (a handful of mock ones)."""

    def __init__(self, examples: list):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __call__(self, i: int) -> dict:
        return self.examples[i]


def source_reader(source, image_key: str, label_key: str):
    """i -> {"image", "y"} of a TFDS data source (a registered dataset's pickles, and
    with it the reader, into grain worker processes)."""
    def read(i: int) -> dict:
        record = source[i]
        return {"image": np.asarray(record[image_key], np.uint8), "y": int(record[label_key])}
    return read


def saved_or_streamed_stats(d, name: str, workdir: str, read, n_train: int,
                            prepare=None) -> dict:
    """The run's saved statistics when resuming, else fitted on the first
    `data.stats_examples` (0 = all) train images."""
    from bigmodels.data import preprocess
    path = os.path.join(workdir, PREPROCESS_FILE)
    if os.path.exists(path):
        return preprocess.load(path)
    count = min(n_train, d.get("stats_examples", 0) or n_train)
    return {"dataset": name, "features": streamed_stats(d.standardize, read, count, prepare)}
