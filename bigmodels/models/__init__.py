"""Model families, one file each. `build(config.model)` picks one by name.

Each model's defaults live once, as its Linen module's dataclass fields;
`model_config(name)` derives its `config.model` from them (models/config_factory.py), and
each family file keeps a named factory for it (`gpt_config`, `cnn_config`, ...). The
registry is the table below rather than decorators in the family files, so that `build`
and `model_config` import only the one module they need.
"""

from bigmodels.errors import BadInput
from bigmodels.models import config_factory
from bigmodels.registry import load

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


def _module(name: str):
    if name not in MODELS:
        raise BadInput(f"model.name: unknown model {name!r} (known: {', '.join(MODELS)})")
    return load(MODELS[name])


def model_config(name: str, **overrides):
    """The `config.model` of model `name`: its module's field defaults, then `overrides`
    (an unknown key is refused)."""
    return config_factory.module_config(_module(name), name, **overrides)


def build(model_config):
    """Instantiates the Linen module named by `model_config.name`."""
    cls = _module(model_config.name)
    return cls(**config_factory.module_kwargs(cls, model_config))
