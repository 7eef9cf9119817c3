"""Model families, one file each. `build(config.model)` picks one by name."""

import importlib

import jax.numpy as jnp

from bigmodels.errors import BadInput

# model.name -> "module:Class", imported only when used.
MODELS = {
    "autoencoder": "bigmodels.models.autoencoder:Autoencoder",
    "vae": "bigmodels.models.autoencoder:VAE",
    "bert_mlm": "bigmodels.models.bert:BertMLM",
    "bert_classifier": "bigmodels.models.bert:BertClassifier",
    "gpt": "bigmodels.models.gpt:GPT",
    "gpt_classifier": "bigmodels.models.gpt:GPTClassifier",
    "rnn": "bigmodels.models.rnn:RNNLM",
    "rnn_classifier": "bigmodels.models.rnn:RNNClassifier",
    "t5": "bigmodels.models.t5:T5",
    "speech_ctc": "bigmodels.models.speech:SpeechCTC",
    "mlp": "bigmodels.models.mlp:MLP",
    "cnn": "bigmodels.models.cnn:CNN",
    "resnet": "bigmodels.models.resnet:ResNet",
    "vit": "bigmodels.models.vit:ViT",
    "gan": "bigmodels.models.gan:GAN",
}


def load(spec: str):
    """"package.module:Name" -> the object it names."""
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def build(model_config):
    """Instantiates the Linen module named by `model_config.name`."""
    if model_config.name not in MODELS:
        raise BadInput(f"model.name: unknown model {model_config.name!r} "
                       f"(known: {', '.join(MODELS)})")
    kwargs = {k: v for k, v in model_config.items() if k != "name"}
    if "dtype" in kwargs:
        kwargs["dtype"] = jnp.dtype(kwargs["dtype"])
    if kwargs.get("attention_impl", None) == "":
        kwargs["attention_impl"] = None
    return load(MODELS[model_config.name])(**kwargs)
