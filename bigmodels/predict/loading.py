"""The one place a run or an export is loaded for prediction and evaluation: its
config, model, params (a LoRA run's adapters merged, through `bigmodels.export`) and
model state (BatchNorm statistics). A new kind of saved params (quantized runs) is
read here, so `predict` and `evaluate` both take it."""

import os
from typing import Any, NamedTuple

import jax

from bigmodels import checkpoint, models, quant
from bigmodels.errors import BadInput
from bigmodels.export import model_params
from bigmodels.names import MODEL_STATE



class Loaded(NamedTuple):
    config: Any           # the run's resolved config
    model: Any            # its Linen module
    params: Any           # host trees, as `model` takes them (quantized for a PTQ export)
    model_state: dict     # {collection: tree}, e.g. {"batch_stats": ...}; {} if none
    run_dir: str          # the directory of its config and data files


def load_model(workdir: str, step: int | None = None) -> Loaded:
    """Loads the run or export at `workdir` (its latest step, or `step`)."""
    if not os.path.isdir(workdir):
        raise BadInput(f"--workdir: {workdir} is not a directory (a training run or an "
                       f"export)")
    source = checkpoint.run_dir(workdir, step)
    config = checkpoint.read_config(source)
    params = model_params(workdir, step)
    saved = checkpoint.metadata(workdir, step)
    model_state = (checkpoint.load(workdir, step, prefix=MODEL_STATE)
                   if any(n.startswith(MODEL_STATE + "/") for n in saved) else {})
    # A quantized export: its model under qwix, its params held as int8/int4 + scales.
    model, params = quant.serving(config, models.build(config.model), params)
    return Loaded(config, model, params, model_state, source)


def check_model_state(loaded: Loaded, init) -> None:
    """Refuses a model whose `init(rng)` makes collections besides its params (BatchNorm
    statistics) that the checkpoint does not hold: an export keeps only the params."""
    shapes = jax.eval_shape(init, jax.random.key(0))
    missing = sorted(set(shapes) - {"params"} - set(loaded.model_state))
    if missing:
        raise BadInput(f"--workdir: {loaded.run_dir} holds no {', '.join(missing)} for "
                       f"model {loaded.config.model.name} (an export written before exports kept it holds only the params); "
                       f"use the training run's workdir")
