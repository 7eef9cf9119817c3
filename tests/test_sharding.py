"""DP, FSDP, TP and mixes on 8 fake devices train exactly like one device."""

import jax
import numpy as np
import pytest

from bigmodels import sharding, train
from bigmodels.config import base_config
from bigmodels.errors import BadInput
from helpers import read_metrics, tiny_lm_config


def test_eight_fake_devices():
    assert jax.device_count() == 8


def test_mesh_fills_minus_one():
    c = base_config().mesh
    c.update(data=-1, fsdp=2, tensor=2)
    assert sharding.mesh_shape(c, 8) == {"data": 2, "fsdp": 2, "tensor": 2}
    c.update(data=3, fsdp=1, tensor=1)
    with pytest.raises(BadInput, match="mesh"):
        sharding.mesh_shape(c, 8)


@pytest.fixture(scope="module")
def one_device_losses(corpus, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("one"))
    c = tiny_lm_config(corpus)
    c.mesh.update(data=1, fsdp=1, tensor=1)
    train.run(c, workdir, devices=jax.devices()[:1])
    return read_metrics(workdir)


@pytest.mark.parametrize("mesh", [(8, 1, 1), (1, 8, 1), (1, 2, 4), (2, 2, 2)],
                         ids=["dp", "fsdp", "fsdp+tp", "dp+fsdp+tp"])
def test_mesh_matches_one_device(corpus, tmp_path, one_device_losses, mesh):
    c = tiny_lm_config(corpus)
    c.mesh.update(data=mesh[0], fsdp=mesh[1], tensor=mesh[2])
    result = train.run(c, str(tmp_path))
    losses = read_metrics(str(tmp_path))
    assert sorted(losses) == [1, 2, 3, 4, 5]
    np.testing.assert_allclose([losses[s] for s in sorted(losses)],
                               [one_device_losses[s] for s in sorted(losses)], rtol=1e-5)
    # The params really are sharded as the rules say.
    qkv = result.state.params["block_0"]["attn"]["qkv"]["kernel"]    # embed, qkv, heads, kv
    shard = qkv.sharding.shard_shape(qkv.shape)
    assert shard[0] == qkv.shape[0] // mesh[1]
    assert shard[2] == qkv.shape[2] // mesh[2]


def test_uneven_dims_fall_back_to_replication():
    mesh = sharding.make_mesh(dict(data=1, fsdp=1, tensor=8))
    spec = sharding._fit_to_shape(jax.sharding.PartitionSpec("tensor", None), (65, 8), mesh)
    assert spec == jax.sharding.PartitionSpec(None, None)
