"""Regression: one output per example, mean squared error; eval reports `mse` and
R² = 1 - SSE / SST over the whole eval set.

R² is not a mean of per-batch values: eval sums y, y² and the squared error over all
batches, and `finalize_eval` forms SST = sum y² - (sum y)² / n from them.
"""

import dataclasses

import jax.numpy as jnp

from bigmodels.tasks.classify import example_weights
from bigmodels.tasks.scalar_output import ScalarOutput


def r2_from_sums(sse: float, sum_y: float, sum_y2: float, n: float) -> float:
    sst = sum_y2 - sum_y * sum_y / n
    return float(1.0 - sse / sst) if sst > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class Regress(ScalarOutput):
    name = "regress"

    def loss(self, params, model_state, batch, rng, train=True):
        prediction, model_state = self._output(params, model_state, batch, rng, train)
        w = example_weights(batch)
        loss = ((prediction - batch["target"]) ** 2 * w).sum() / jnp.maximum(w.sum(), 1e-12)
        return loss, ({"loss": loss}, model_state)

    def eval_sums(self, params, model_state, batch):
        y, w = batch["target"], example_weights(batch)
        sse = ((self._output(params, model_state, batch, None, False)[0] - y) ** 2 * w).sum()
        n = w.sum()
        return {"loss": (sse, n), "y": ((y * w).sum(), n), "y2": ((y * y * w).sum(), n)}

    def finalize_eval(self, sums: dict) -> dict:
        (sse, n), (sum_y, _), (sum_y2, _) = sums["loss"], sums["y"], sums["y2"]
        n = max(float(n), 1e-12)
        mse = float(sse) / n
        # float64 on the host: the sums come back as numpy float64 from the loop.
        return {"loss": mse, "mse": mse,
                "r2": r2_from_sums(float(sse), float(sum_y), float(sum_y2), n)}
