"""The one trainer. `run(config, workdir)` trains any family described by a config."""

from bigmodels.train.loop import run

__all__ = ["run"]
