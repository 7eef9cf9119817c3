"""Model families, one file each. `build(config.model)` picks one by name."""

import jax.numpy as jnp

from bigmodels.errors import BadInput


def build(model_config):
    """Instantiates the Linen module named by `model_config.name`."""
    kwargs = {k: v for k, v in model_config.items() if k != "name"}
    if "dtype" in kwargs:
        kwargs["dtype"] = jnp.dtype(kwargs["dtype"])
    if kwargs.get("attention_impl", None) == "":
        kwargs["attention_impl"] = None
    if model_config.name == "gpt":
        from bigmodels.models.gpt import GPT
        return GPT(**kwargs)
    if model_config.name == "gpt_classifier":
        from bigmodels.models.gpt import GPTClassifier
        return GPTClassifier(**kwargs)
    if model_config.name == "rnn":
        from bigmodels.models.rnn import RNNLM
        return RNNLM(**kwargs)
    if model_config.name == "rnn_classifier":
        from bigmodels.models.rnn import RNNClassifier
        return RNNClassifier(**kwargs)
    raise BadInput(f"model.name: unknown model {model_config.name!r} "
                   f"(known: gpt, gpt_classifier, rnn, rnn_classifier)")
