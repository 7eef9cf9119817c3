""""module:Name" specs, imported only when used (the tables of data kinds, tasks and
models name their entries this way).

A neutral module: it imports nothing from bigmodels, so every layer may use it.
"""

import importlib


def load(spec: str):
    """"package.module:Name" -> the object it names."""
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)
