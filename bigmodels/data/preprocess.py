"""Preprocessing of numeric features: drop rows with missing values, log(1+x) on chosen
columns, then standardise with a mean and standard deviation fitted on train only.

The fitted `Standardizer` is plain data (JSON in the workdir), so a resumed run or a
later evaluation applies exactly the statistics the run was trained with.
"""

import dataclasses
import json
import os

import numpy as np

from bigmodels.errors import BadInput

# A mean/std per column, one for all values, none, or "unit": (x - min) / (max - min)
# over all train values, into [0, 1] (pixel intensities for a Bernoulli decoder).
MODES = ("column", "global", "none", "unit")


def drop_missing(features: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows whose features and target are all present (not NaN)."""
    features = np.asarray(features, np.float64)
    targets = np.asarray(targets)
    keep = ~np.isnan(features.reshape(len(features), -1)).any(axis=1)
    if np.issubdtype(targets.dtype, np.floating):
        keep &= ~np.isnan(targets)
    return features[keep], targets[keep]


def parse_columns(spec: str, num_features: int) -> tuple[int, ...]:
    """"" -> none, "all" -> every column, "0,3,7" -> those columns."""
    spec = spec.strip()
    if not spec:
        return ()
    if spec == "all":
        return tuple(range(num_features))
    try:
        columns = tuple(sorted({int(c) for c in spec.split(",")}))
    except ValueError:
        raise BadInput(f"data.log1p: expected '', 'all' or column indices like '0,3', "
                       f"got {spec!r}") from None
    if columns and not 0 <= columns[0] <= columns[-1] < num_features:
        raise BadInput(f"data.log1p: columns {columns} outside 0..{num_features - 1}")
    return columns


@dataclasses.dataclass(frozen=True)
class Standardizer:
    """x -> (log1p-on-some-columns(x) - mean) / std, over the last axis of flat rows."""
    log1p_columns: tuple
    mean: np.ndarray       # shape (F,) per column, (1,) global
    std: np.ndarray

    def apply(self, features: np.ndarray) -> np.ndarray:
        x = np.array(features, np.float64).reshape(len(features), -1)
        if self.log1p_columns:
            cols = list(self.log1p_columns)
            x[:, cols] = np.log1p(np.maximum(x[:, cols], -1 + 1e-6))
        return ((x - self.mean) / self.std).astype(np.float32).reshape(np.shape(features))

    def to_dict(self) -> dict:
        return {"log1p_columns": list(self.log1p_columns), "mean": self.mean.tolist(),
                "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Standardizer":
        return cls(tuple(d["log1p_columns"]), np.asarray(d["mean"], np.float64),
                   np.asarray(d["std"], np.float64))


def fit(train_features: np.ndarray, log1p_columns=(), mode: str = "column") -> Standardizer:
    """Fits on the train rows only: the test split must not leak into the statistics."""
    if mode not in MODES:
        raise BadInput(f"data.standardize must be one of {MODES}, got {mode!r}")
    x = np.array(train_features, np.float64).reshape(len(train_features), -1)
    cols = list(log1p_columns)
    if cols:
        if (x[:, cols] <= -1).any():
            raise BadInput(f"data.log1p: columns {tuple(cols)} have values <= -1, where "
                           f"log(1+x) is undefined")
        x[:, cols] = np.log1p(x[:, cols])
    if mode == "none":
        mean, std = np.zeros(1), np.ones(1)
    elif mode == "unit":
        mean, std = np.array([x.min()]), np.array([x.max() - x.min()])
    elif mode == "global":
        mean, std = np.array([x.mean()]), np.array([x.std()])
    else:
        mean, std = x.mean(axis=0), x.std(axis=0)
    # A constant column (a digit's always-blank corner pixel) is centred, not divided by 0.
    std = np.where(std > 1e-8, std, 1.0)
    return Standardizer(tuple(int(c) for c in cols), mean, std)


def save(path: str, stats: dict) -> None:
    """`stats`: {name: Standardizer or plain JSON value}."""
    out = {k: v.to_dict() if isinstance(v, Standardizer) else v for k, v in stats.items()}
    with open(path + ".tmp", "w") as f:
        json.dump(out, f, indent=1)
    os.replace(path + ".tmp", path)


def load(path: str) -> dict:
    with open(path) as f:
        raw = json.load(f)
    return {k: Standardizer.from_dict(v) if isinstance(v, dict) and "mean" in v else v
            for k, v in raw.items()}
