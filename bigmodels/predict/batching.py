"""Prediction batches sharded over every local device: a data-parallel mesh, the
params replicated on it, and each batch padded to a fixed size (so each function
compiles once) whose padding rows are dropped from the results."""

import math

import jax
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from bigmodels import sharding
from bigmodels.errors import BadInput

DEFAULT_BATCH_SIZE = 64


def data_mesh(devices=None):
    """A mesh whose data axis spans every local device (fsdp and tensor of size 1)."""
    config = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1, rules=""))
    return sharding.make_mesh(config, devices or jax.local_devices())


class Batcher:
    """Runs `fn(consts, batch) -> per-row outputs` over inputs of any length."""

    def __init__(self, batch_size: int = DEFAULT_BATCH_SIZE, devices=None):
        if batch_size < 1:
            raise BadInput(f"--batch_size must be positive, got {batch_size}")
        self.mesh = data_mesh(devices)
        n = sharding.data_parallel_size(self.mesh)
        # Every device gets the same number of rows.
        self.batch_size = math.ceil(batch_size / n) * n
        self.replicated = sharding.replicated(self.mesh)
        self.rows = NamedSharding(self.mesh, P(sharding.BATCH_AXES))

    def place(self, tree):
        """Params (or any constants) replicated on every device."""
        return jax.device_put(tree, self.replicated)

    def jit(self, fn):
        """`fn(consts, batch)` jitted once, its batch and outputs split over the
        devices along their first axis."""
        return jax.jit(sharding.with_activation_rules(fn, self.mesh),
                       in_shardings=(self.replicated, self.rows),
                       out_shardings=self.rows)

    def map(self, fn, consts, arrays: dict) -> dict:
        """{name: N x ... numpy} -> `fn`'s outputs for the N rows, as numpy (N x ...).
        `fn` is one returned by `jit`; the last batch is padded with copies of row 0.
        Every batch is dispatched before the first result is fetched."""
        n = len(next(iter(arrays.values())))
        outputs = []
        for start in range(0, n, self.batch_size):
            batch = {k: _padded(v[start:start + self.batch_size], self.batch_size)
                     for k, v in arrays.items()}
            outputs.append(fn(consts, jax.device_put(batch, self.rows)))
        outputs = jax.device_get(outputs)
        return jax.tree.map(lambda *xs: np.concatenate(xs)[:n], *outputs)

def _padded(x: np.ndarray, size: int) -> np.ndarray:
    if len(x) == size:
        return x
    return np.concatenate([x, np.repeat(x[:1], size - len(x), axis=0)])
