"""Print the eval metrics of a run or an export on its eval split, as one JSON object:

    python -m bigmodels.evaluate --workdir=<run or export> [--step=N] [--batch_size=N]

The numbers are the trainer's eval: the run's data code builds its eval batches (with
the tokenizer or statistics the run saved), its task's eval step runs on them and
bigmodels/train/evaluation.py sums them, over every local device. The params are read
by `bigmodels.predict.load_model`, as prediction reads them. Kinds whose eval set is
drawn batch by batch (text windows and passages) draw another one under another
--batch_size; the default is the run's.
"""

import json
import os
import sys
from typing import Any, Callable, NamedTuple

from absl import flags, logging

from bigmodels.cli import fail, run_main


def define_flags() -> None:
    flags.DEFINE_string("workdir", None, "A training run's workdir or an export.")
    flags.DEFINE_integer("step", None, "Checkpoint step; default: the latest.")
    flags.DEFINE_integer("batch_size", None, "Eval batch size; default: the run's.")


def _eval_mesh(batch_size: int, devices):
    """A data-parallel mesh over as many devices as split the batch evenly."""
    import ml_collections
    from bigmodels import sharding
    n = max(k for k in range(1, len(devices) + 1) if batch_size % k == 0)
    config = ml_collections.ConfigDict(dict(data=n, fsdp=1, tensor=1, rules=""))
    return sharding.make_mesh(config, devices[:n])


def _without_missing_fid(config):
    """A GAN's FID needs its classifier run; where that is gone, eval goes without it."""
    path = config.get("fid_classifier", "")
    if not path or os.path.isdir(path):
        return config
    sys.stderr.write(f"note: fid_classifier {path} not found; eval/fid is left out\n")
    config = config.copy_and_resolve_references()
    config.fid_classifier = ""
    return config


class Evaluation(NamedTuple):
    """A run or export made ready to evaluate: what `evaluate` runs, and what
    benchmarks time (one eval step on one batch)."""
    state: Any                  # params and model state, replicated on the eval mesh
    eval_step: Callable         # jitted (state, global batch) -> {metric: (sum, weight)}
    eval_batches: Callable      # () -> an iterator over the host's eval batches
    to_global: Callable         # host batch -> global arrays on the eval mesh
    finalize: Callable          # summed metrics -> {"eval/<metric>": value}
    saved_step: int | None      # the checkpoint's step (None for an export)


def prepare(workdir: str, step: int | None = None, batch_size: int | None = None,
            devices=None) -> Evaluation:
    """Loads `workdir` (through `bigmodels.predict.load_model`) and its eval data."""
    import jax
    from bigmodels import checkpoint, data as data_lib, sharding, tasks
    from bigmodels.errors import BadInput
    from bigmodels.predict.loading import load_model
    from bigmodels.train.state import TrainState
    from bigmodels.train.step import make_eval_step
    loaded = load_model(workdir, step)
    config = _without_missing_fid(loaded.config.copy_and_resolve_references())
    if batch_size is not None:
        if batch_size < 1:
            raise BadInput(f"--batch_size must be positive, got {batch_size}")
        config.batch_size = batch_size
    data = data_lib.build(config, loaded.run_dir, jax.process_index(), jax.process_count())
    task = tasks.build(config, loaded.model, data)
    mesh = _eval_mesh(config.batch_size // jax.process_count(),
                      devices or jax.local_devices())
    replicated = sharding.replicated(mesh)
    state = jax.device_put(TrainState(step=0, params=loaded.params, opt_state=(),
                                      model_state=loaded.model_state), replicated)
    eval_step = jax.jit(sharding.with_activation_rules(make_eval_step(task), mesh),
                        out_shardings=replicated)
    saved_step = (None if checkpoint.is_export(os.path.abspath(workdir))
                  else step if step is not None else checkpoint.latest_step(workdir))
    return Evaluation(state, eval_step, lambda: data.eval,
                      lambda local: sharding.global_batch(local, mesh), task.finalize_eval,
                      saved_step)


def evaluate(workdir: str, step: int | None = None, batch_size: int | None = None,
             devices=None) -> dict:
    """{"step": the checkpoint's step (None for an export), "eval/<metric>": value}."""
    from bigmodels.train.evaluation import evaluate as run_eval
    e = prepare(workdir, step, batch_size, devices)
    metrics = run_eval(e.eval_step, e.state, e.eval_batches(), e.to_global, e.finalize)
    return {"step": e.saved_step, **metrics}


def main(argv):
    args = flags.FLAGS
    if not args.workdir:
        fail("--workdir: required (a training run or an export)")
    logging.set_verbosity(logging.ERROR)
    print(json.dumps(evaluate(args.workdir, args.step, args.batch_size)))


if __name__ == "__main__":
    define_flags()
    run_main(main)
