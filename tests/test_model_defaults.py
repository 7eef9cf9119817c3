"""One source of truth per model: `config.model` is derived from the Linen module's
dataclass fields (bigmodels/models/config_factory.py), so an experiment's model keys are
module fields and each config default is the module's default."""

import dataclasses
import glob
import os

import jax.numpy as jnp
import pytest

from bigmodels import models
from bigmodels.errors import BadInput
from bigmodels.models.gpt import GPT, gpt_config
from conftest import ROOT
from helpers import load_experiment

EXPERIMENTS = sorted(glob.glob(str(ROOT / "experiments" / "*.py")))


def _module_fields(cls) -> dict:
    return {f.name: f for f in dataclasses.fields(cls) if f.name not in ("parent", "name")}


def _expected_default(field):
    """The module's default as the config holds it: a required int is 0 (filled in from
    the data), None is "", a dtype is its name; everything else as is."""
    if field.default is dataclasses.MISSING:
        assert field.type is int, field.name
        return 0
    if field.default is None:
        return ""
    if field.type is jnp.dtype:
        return jnp.dtype(field.default).name
    return field.default


@pytest.mark.parametrize("arg", ["", "tiny"])
@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: os.path.basename(p))
def test_experiment_model_keys_are_module_fields(path, arg):
    model = load_experiment(path).get_config(arg).model
    assert model.name in models.MODELS
    cls = models.load(models.MODELS[model.name])
    fields = _module_fields(cls)
    assert set(model) - {"name"} <= set(fields), set(model) - {"name"} - set(fields)
    # The factory's defaults are the module's.
    defaults = models.model_config(model.name)
    assert set(defaults) == set(fields) | {"name"}
    for key, field in fields.items():
        assert defaults[key] == _expected_default(field), key
        assert type(defaults[key]) is type(_expected_default(field)), key
    models.build(model)      # every key maps back onto the module


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_config_round_trips_to_the_module_defaults(name):
    cls = models.load(models.MODELS[name])
    module = models.build(models.model_config(name))
    for key, field in _module_fields(cls).items():
        if field.default is not dataclasses.MISSING:
            value = getattr(module, key)
            assert value == field.default or jnp.dtype(value) == jnp.dtype(field.default), key


def test_gpt_defaults_and_mappings():
    c = gpt_config()
    assert c.name == "gpt" and c.context_length == GPT.context_length == 128
    assert c.dtype == "float32" and c.attention_impl == "" and c.vocab_size == 0
    model = models.build(gpt_config(vocab_size=8, dtype="bfloat16"))
    assert model.dtype == jnp.bfloat16 and model.attention_impl is None
    assert gpt_config(name="gpt_classifier").num_classes == 2     # GPTClassifier's default


def test_unknown_override_is_refused():
    with pytest.raises(BadInput, match="model.num_classes"):
        gpt_config(num_classes=3)          # a gpt_classifier field, not a gpt one
    with pytest.raises(BadInput, match="model.name"):
        models.model_config("gpt3")
    c = gpt_config()
    with c.unlocked():
        c.typo_layers = 2
    with pytest.raises(BadInput, match="model.typo_layers"):
        models.build(c)
