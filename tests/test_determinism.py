"""Same config and seed, same bits: across runs, and for init and dropout across meshes."""

import jax
import numpy as np

from bigmodels import train
from helpers import read_metrics, tiny_lm_config


def test_same_seed_gives_bit_identical_losses_for_100_steps(corpus, tmp_path):
    config = tiny_lm_config(corpus, total_steps=100, eval_every=50, ckpt_every=50)
    config.model.dropout = 0.1
    train.run(config, str(tmp_path / "a"))
    train.run(config, str(tmp_path / "b"))
    a, b = read_metrics(str(tmp_path / "a")), read_metrics(str(tmp_path / "b"))
    assert len(a) == 100 and a == b


def test_init_and_dropout_are_identical_on_1_and_8_devices(corpus, tmp_path):
    config = tiny_lm_config(corpus, total_steps=1, ckpt_every=1)
    config.model.dropout = 0.5                 # a different mask would move the loss a lot
    config.optim.lr = 0.0                      # so the state after one step is the init
    one = train.run(config, str(tmp_path / "one"), devices=jax.devices()[:1])
    config.mesh.update(data=2, fsdp=2, tensor=2)
    eight = train.run(config, str(tmp_path / "eight"))
    assert jax.config.jax_threefry_partitionable        # the trainer turns it on
    for a, b in zip(jax.tree.leaves(one.state.params), jax.tree.leaves(eight.state.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    loss_one = read_metrics(str(tmp_path / "one"))[1]
    loss_eight = read_metrics(str(tmp_path / "eight"))[1]
    assert abs(loss_one - loss_eight) < 1e-5, (loss_one, loss_eight)
