"""`config.model` derived from a Linen module's dataclass fields: every model default
is written once, on the module, and the config is built from it.

ml_collections type-checks `--config.model.x=v` against each default, so every value
must be concrete and keep its type. Three mappings, undone by `module_kwargs`:

- a dtype field holds the dtype's name ("float32", "bfloat16");
- a field whose default is None holds "" (e.g. attention_impl: "" = JAX picks);
- a required int field (vocab_size, num_classes) holds 0: the run fills it in from the
  data (bigmodels.train.setup.resolve).

Tuples stay tuples. Flax's own fields (`parent`, `name`) are not model config; the
config's `name` is the model's registry name (bigmodels.models.MODELS).
"""

import dataclasses

import jax.numpy as jnp
import ml_collections

from bigmodels.errors import BadInput

FLAX_FIELDS = ("parent", "name")
NONE = ""        # the config value of a field whose module default is None
FROM_DATA = 0    # the config value of a required int field: filled in from the data


def fields(cls) -> dict:
    """name -> dataclasses.Field of every model hyperparameter of `cls`."""
    return {f.name: f for f in dataclasses.fields(cls)
            if f.init and f.name not in FLAX_FIELDS}


def _is_dtype(field) -> bool:
    return field.type in (jnp.dtype, "jnp.dtype")


def to_config_value(field, value):
    """A module value (or a field's default) -> the concrete value the config holds."""
    if value is dataclasses.MISSING:
        if field.type is not int:
            raise TypeError(f"{field.name}: a required field must be an int (0 = from the "
                            f"data) to have a config default")
        return FROM_DATA
    if value is None:
        return NONE
    if _is_dtype(field):
        return jnp.dtype(value).name
    return value


def defaults(cls) -> dict:
    """field -> its config default: the module's default after the mappings above."""
    return {name: to_config_value(f, f.default) for name, f in fields(cls).items()}


def module_config(cls, name: str, **overrides) -> ml_collections.ConfigDict:
    """`config.model` of model `name` (whose module is `cls`): every field at its
    default, then `overrides`. A key that is not a field of `cls` is refused."""
    known = fields(cls)
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise BadInput(f"model.{unknown[0]}: not a field of {cls.__name__} (model "
                       f"{name!r}; fields: {', '.join(known)})")
    model = ml_collections.ConfigDict(dict(name=name, **defaults(cls)))
    model.update({k: to_config_value(known[k], v) for k, v in overrides.items()})
    return model


def module_kwargs(cls, model_config) -> dict:
    """The inverse: `config.model` -> keyword arguments of `cls` (without `name`)."""
    known = fields(cls)
    kwargs = {}
    for key, value in model_config.items():
        if key == "name":
            continue
        if key not in known:
            raise BadInput(f"model.{key}: not a field of {cls.__name__} (model "
                           f"{model_config['name']!r}; fields: {', '.join(known)})")
        field = known[key]
        if _is_dtype(field):
            value = jnp.dtype(value)
        elif value == NONE and field.default is None:
            value = None
        elif isinstance(value, list) and isinstance(field.default, tuple):
            value = tuple(value)        # a config read back from JSON
        kwargs[key] = value
    return kwargs
