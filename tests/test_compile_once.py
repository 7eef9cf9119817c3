"""The train step compiles exactly once in a run, checked with JAX's compile logging."""

import logging

import jax

from bigmodels import train
from helpers import tiny_lm_config


def test_train_step_compiles_once(corpus, tmp_path, caplog):
    config = tiny_lm_config(corpus, total_steps=6, eval_every=2, ckpt_every=3)
    with jax.log_compiles(True), caplog.at_level(logging.WARNING):
        train.run(config, str(tmp_path))
    compiles = [r.getMessage() for r in caplog.records
                if r.getMessage().startswith("Compiling jit(")]
    assert sum(m.startswith("Compiling jit(step)") for m in compiles) == 1, compiles
    assert sum(m.startswith("Compiling jit(eval_step)") for m in compiles) == 1, compiles
