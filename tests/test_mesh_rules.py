"""`mesh.rules` overrides the logical-axis -> mesh-axis rules (bigmodels/sharding.py)."""

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import PartitionSpec as P

from bigmodels import models, sharding
from bigmodels.config import base_config
from bigmodels.errors import BadInput
from bigmodels.models.gpt import gpt_config


def _mesh_config(rules="", **sizes):
    c = base_config().mesh
    c.update(data=2, fsdp=2, tensor=2, rules=rules, **sizes)
    return c


def _param_specs(rules_text: str) -> dict:
    """Partition specs of a tiny GPT's params on data=2 x fsdp=2 x tensor=2."""
    config = _mesh_config(rules_text)
    mesh = sharding.make_mesh(config)
    model = models.build(gpt_config(vocab_size=32, num_layers=1, num_heads=2, embed_dim=16,
                                    context_length=8))
    boxed = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 8), jnp.int32))
    shardings = sharding.logical_shardings(boxed["params"], mesh,
                                           sharding.rules_from_config(config))
    return {"embedding": shardings["token_embed"]["embedding"].spec,       # vocab, embed
            "wi": shardings["block_0"]["mlp"]["wi"]["kernel"].spec,        # embed, mlp
            "qkv": shardings["block_0"]["attn"]["qkv"]["kernel"].spec}     # embed, qkv, heads, kv


def test_eight_fake_devices():
    assert jax.device_count() == 8


def test_no_rules_are_the_built_in_ones():
    assert sharding.rules_from_config(_mesh_config("")) == sharding.LOGICAL_RULES
    assert sharding.rules_from_config(dict(data=1, fsdp=1, tensor=1)) == sharding.LOGICAL_RULES
    assert _param_specs("") == {"embedding": P("tensor", "fsdp"), "wi": P("fsdp", "tensor"),
                                "qkv": P("fsdp", None, "tensor", None)}


def test_override_changes_the_affected_params():
    # embed on tensor instead of fsdp: the rules are applied in order and a mesh axis is
    # used once per array, so an axis after embed whose rule is tensor stays whole.
    specs = _param_specs("embed=tensor")
    assert specs == {"embedding": P("tensor", None), "wi": P("tensor", None),
                     "qkv": P("tensor", None, None, None)}
    specs = _param_specs(" vocab= , embed = fsdp+tensor ,mlp=")
    assert specs == {"embedding": P(None, ("fsdp", "tensor")), "wi": P(("fsdp", "tensor"), None),
                     "qkv": P(("fsdp", "tensor"), None, None, None)}


def test_parsed_rules():
    rules = dict(sharding.rules_from_config(_mesh_config("embed=fsdp+tensor,kv=tensor,vocab=")))
    assert rules["embed"] == ("fsdp", "tensor")
    assert rules["kv"] == "tensor" and rules["vocab"] is None
    assert rules["mlp"] == "tensor" and rules["batch"] == sharding.BATCH_AXES


def test_activation_rules_take_the_override():
    mesh = sharding.make_mesh(_mesh_config())
    rules = sharding.rules_from_config(_mesh_config("act_embed=tensor"))
    seen = []

    def fn(x):
        from flax import linen as nn
        seen.append(nn.logical_to_mesh_axes(("batch", "length", "act_embed")))
        return x
    sharding.with_activation_rules(fn, mesh, rules)(jnp.zeros(2))
    sharding.with_activation_rules(fn, mesh)(jnp.zeros(2))
    assert seen == [P(sharding.BATCH_AXES, None, "tensor"), P(sharding.BATCH_AXES, None, None)]


@pytest.mark.parametrize("text, match", [
    ("embeding=fsdp", "unknown logical axis 'embeding'"),
    ("embed=fsdp+model", "unknown mesh axis 'model'"),
    ("embed", "not logical_axis=mesh_axes"),
    ("embed=fsdp,embed=tensor", "given twice"),
    ("embed=tensor+tensor", "twice"),
    ("batch=data", "batch axis"),
])
def test_bad_rules_are_refused(text, match):
    with pytest.raises(BadInput, match=r"mesh\.rules: .*" + match):
        sharding.rules_from_config(_mesh_config(text))
