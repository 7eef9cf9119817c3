"""Initialisers wrapped with logical axis names, so sharding is data, not model code."""

from flax import linen as nn


def logical(init, axes: tuple):
    """Wraps `init` so its parameter carries the logical axis names `axes`."""
    return nn.with_logical_partitioning(init, axes)


def normal(stddev: float, axes: tuple):
    return logical(nn.initializers.normal(stddev), axes)


def zeros(axes: tuple):
    return logical(nn.initializers.zeros_init(), axes)


def ones(axes: tuple):
    return logical(nn.initializers.ones_init(), axes)
