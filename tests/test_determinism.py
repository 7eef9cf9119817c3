"""Same config and seed, same bits: across runs, and for init and dropout across meshes."""

import chex
import jax

from bigmodels import train
from helpers import read_metrics, tiny_lm_config


def test_same_seed_gives_bit_identical_losses(corpus, tmp_path, fresh_compiles):
    # 20 steps cross an eval and a checkpoint and draw 20 dropout masks and batches:
    # any unseeded randomness or order dependence shows in the first steps already.
    # Each run compiles its own programs (`fresh_compiles`: none from the test cache).
    config = tiny_lm_config(corpus, total_steps=20, eval_every=10, ckpt_every=10)
    config.model.dropout = 0.1
    first = train.run(config, str(tmp_path / "a"))
    second = train.run(config, str(tmp_path / "b"))
    a, b = read_metrics(str(tmp_path / "a")), read_metrics(str(tmp_path / "b"))
    assert len(a) == 20 and len(set(a.values())) == 20     # every step a new loss
    assert a == b
    assert read_metrics(str(tmp_path / "a"), "eval/loss") == \
        read_metrics(str(tmp_path / "b"), "eval/loss")
    chex.assert_trees_all_equal(jax.device_get(first.state), jax.device_get(second.state))


def test_init_and_dropout_are_identical_on_1_and_8_devices(corpus, tmp_path):
    config = tiny_lm_config(corpus, total_steps=1, ckpt_every=1)
    config.model.dropout = 0.5                 # a different mask would move the loss a lot
    config.optim.lr = 0.0                      # so the state after one step is the init
    one = train.run(config, str(tmp_path / "one"), devices=jax.devices()[:1])
    config.mesh.update(data=2, fsdp=2, tensor=2)
    eight = train.run(config, str(tmp_path / "eight"))
    assert jax.config.jax_threefry_partitionable        # the trainer turns it on
    chex.assert_trees_all_equal(jax.device_get(one.state.params),
                                jax.device_get(eight.state.params))
    loss_one = read_metrics(str(tmp_path / "one"))[1]
    loss_eight = read_metrics(str(tmp_path / "eight"))[1]
    assert abs(loss_one - loss_eight) < 1e-5, (loss_one, loss_eight)
