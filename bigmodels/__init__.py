"""bigmodels: one sharded JAX/Flax trainer for every big-model family."""

__version__ = "0.1.0"
