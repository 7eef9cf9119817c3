"""Tabular models (tabular_mlp, tabular_regression): a CSV whose header names the
training columns (others are ignored) -> label and probabilities, or the predicted
value in the target's own units.

Rows go through the run's saved preprocessing (log(1+x) columns, then the train-split
standardisation). Training drops rows with a missing value (an empty cell, NA or
NaN), so such a row is not predicted: its line says which columns are missing.
"""

import csv
import io
import math
import os

import numpy as np

from bigmodels.data import preprocess, sklearn_data
from bigmodels.errors import BadInput
from bigmodels.names import PREPROCESS_FILE
from bigmodels.predict import base, inputs
from bigmodels.predict.loading import check_model_state

MISSING = ("", "na", "nan", "null", "none")


def feature_names(dataset: str) -> list[str]:
    """The training columns of a scikit-learn dataset, in order."""
    import sklearn.datasets
    spec = sklearn_data.DATASETS[dataset]
    return [str(n) for n in getattr(sklearn.datasets, spec.loader)(**spec.kwargs).feature_names]


def unstandardize(standardizer, z):
    """The inverse of `standardizer.apply` for one column (a regression target)."""
    y = np.asarray(z, np.float64) * standardizer.std[0] + standardizer.mean[0]
    return np.expm1(y) if standardizer.log1p_columns else y


def _number(value, row: int, column: str) -> float:
    if value is None or (isinstance(value, str) and value.strip().lower() in MISSING):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BadInput(f"--input row {row + 1}, column {column!r}: {value!r} is not a "
                       f"number") from None


class TabularPredictor:
    input_kind = "csv"
    options = ()

    def __init__(self, loaded, batcher):
        config, model = loaded.config, loaded.model
        self.task, d = config.task, config.data
        self.columns = feature_names(d.name)
        stats_path = os.path.join(loaded.run_dir, PREPROCESS_FILE)
        if not os.path.isfile(stats_path):
            raise BadInput(f"--workdir: {stats_path} not found; the run's preprocessing "
                           f"statistics are needed")
        stats = preprocess.load(stats_path)
        self.features, self.target = stats["features"], stats.get("target")
        names = sklearn_data.load_arrays(d.name)[2]
        self.names = base.with_default_names(names, base.output_count(self.task, config))
        check_model_state(loaded, lambda rng: model.init(
            rng, np.zeros((1, len(self.columns)), np.float32)))
        self.batcher = batcher
        self.consts, self.forward = base.classifier_forward(loaded, batcher)

    def read(self, path: str) -> list[dict]:
        """The rows of a CSV file (or stdin) as {column: text}."""
        reader = csv.DictReader(io.StringIO(inputs.text(path, "a tabular model")))
        missing = [c for c in self.columns if c not in (reader.fieldnames or [])]
        if missing:
            raise BadInput(f"--input: {path} lacks the training column(s) "
                           f"{', '.join(repr(c) for c in missing[:5])}"
                           f"{' ...' if len(missing) > 5 else ''}; its header must name "
                           f"them: {', '.join(self.columns)}")
        rows = list(reader)
        if not rows:
            raise BadInput(f"--input: {path} holds no rows")
        return rows

    def matrix(self, rows) -> np.ndarray:
        """N x F float64, NaN where a value is missing. Rows are dicts by column name,
        or sequences in the training columns' order."""
        out = np.empty((len(rows), len(self.columns)))
        for i, row in enumerate(rows):
            if isinstance(row, dict):
                absent = [c for c in self.columns if c not in row]
                if absent:
                    raise BadInput(f"input row {i + 1}: no column {absent[0]!r}")
                values = [row[c] for c in self.columns]
            else:
                values = list(np.asarray(row, object).reshape(-1))
                if len(values) != len(self.columns):
                    raise BadInput(f"input row {i + 1}: {len(values)} values, expected "
                                   f"{len(self.columns)} ({', '.join(self.columns)})")
            out[i] = [_number(v, i, c) for v, c in zip(values, self.columns)]
        return out

    def predict(self, rows) -> list[dict]:
        """`rows`: a CSV path, dicts by column name, or rows of values in the training
        columns' order (a 2-D array)."""
        if isinstance(rows, (str, os.PathLike)):
            rows = self.read(str(rows))
        x = self.matrix(list(rows))
        if not len(x):
            return []
        complete = ~np.isnan(x).any(axis=1)
        records = [{"input": {c: (None if math.isnan(v) else float(v))
                              for c, v in zip(self.columns, row)}} for row in x]
        if complete.any():
            out = self.batcher.map(self.forward, self.consts,
                                   {"features": self.features.apply(x[complete])})
            unscale = (lambda z: unstandardize(self.target, z)) if self.target else \
                (lambda z: z)
            scored = iter(base.score_records(self.task, out, self.names, unscale))
        for record, row, keep in zip(records, x, complete):
            if keep:
                record.update(next(scored))
            else:
                gaps = [c for c, v in zip(self.columns, row) if math.isnan(v)]
                record["skipped"] = (f"missing value in {', '.join(repr(c) for c in gaps)}; "
                                     f"the run's preprocessing drops such rows")
        return records
