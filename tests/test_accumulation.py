"""Gradient accumulation inside the jitted step equals the full-batch step."""

import jax
import numpy as np

from bigmodels import models, optim, sharding, tasks
from bigmodels.config import base_config
from bigmodels.models.gpt import gpt_config
from bigmodels.train import state as state_lib
from bigmodels.train.step import make_train_step


def test_accumulated_step_equals_full_batch():
    c = base_config()
    c.model = gpt_config(vocab_size=50, num_layers=2, num_heads=2, embed_dim=32,
                         context_length=16)
    task = tasks.build(c, models.build(c.model))
    tx, schedule = optim.build(c.optim, 10)
    batch = {"tokens": jax.random.randint(jax.random.key(1), (16, 17), 0, 50)}
    mesh = sharding.make_mesh(dict(data=4, fsdp=2, tensor=1))
    rng = jax.random.key(0)
    _, shardings = state_lib.state_shardings(task, tx, mesh, rng, batch)
    results = []
    for accum in (1, 4):
        state = state_lib.init_state(task, tx, rng, batch, shardings)
        step = jax.jit(make_train_step(task, tx, schedule, 0, accum))
        for _ in range(2):
            state, metrics = step(state, sharding.global_batch(batch, mesh))
        results.append((state.params, metrics))
    (p1, m1), (p4, m4) = results
    np.testing.assert_allclose(m1["loss"], m4["loss"], rtol=1e-5)
    np.testing.assert_allclose(m1["grad_norm"], m4["grad_norm"], rtol=1e-4)
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p4)):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-4)
