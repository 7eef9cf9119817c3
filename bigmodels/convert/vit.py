"""ViT (`ViTForImageClassification`) <-> the ViT model (pre-norm LayerNorm blocks with
biases, a [CLS] token, learned positions, a linear head on [CLS]).

HF embeds patches with a p x p Conv2d of stride p on NCHW pixels, weight (D, C, p, p);
ours flattens each patch of the NHWC image row-major as (p, p, C) and applies a Dense,
kernel (p*p*C, D). HF's q, k and v are three Linear weights, (out, in); ours are one
fused `qkv` (D x 3 x H x hd).

HF's position embeddings, (1, N+1, D), cover [CLS] too; ours cover the N patches, and
[CLS] gets none. Adding [CLS]'s position to the token is exact, as the two are only
ever summed: on import our `cls` is HF's token plus position 0 (`from_hf_tensors`), and
on export HF's token is ours with position 0 at zero (`to_hf_tensors`).
"""

import jax.numpy as jnp
import numpy as np

from bigmodels.convert.key_map import KeyMap, Row, layer_norm
from bigmodels.convert.linear import heads_in, heads_out, linear, out_in, out_out
from bigmodels.errors import BadInput

MODEL_TYPES = ("vit",)
MODEL_NAME = "vit"
TASK = "classify"
ARCHITECTURE = "ViTForImageClassification"
CLS, POS = "vit.embeddings.cls_token", "vit.embeddings.position_embeddings"
# HF's activation names -> our approximate_gelu (tanh GELU, or exact erf).
GELU = {"gelu": False, "gelu_pytorch_tanh": True, "gelu_new": True}


def _conv_in(array, dims):                   # (D, C, p, p) -> (p*p*C, D)
    return array.transpose(2, 3, 1, 0).reshape(-1, array.shape[0])


def _conv_out(array, dims):                  # (p*p*C, D) -> (D, C, p, p)
    p = dims["patch"]
    return array.reshape(p, p, -1, array.shape[-1]).transpose(3, 2, 0, 1)


def _squeeze(array, dims):                   # (1, N, D) -> (N, D)
    return array[0]


def _unsqueeze(array, dims):
    return array[None]


LAYER = "vit.encoder.layer.{i}"
KEYS = KeyMap(
    [Row(CLS, "cls"),
     Row(POS, "pos_embed", _squeeze, _unsqueeze),
     Row("vit.embeddings.patch_embeddings.projection.weight", "patch_embed/kernel",
         _conv_in, _conv_out),
     Row("vit.embeddings.patch_embeddings.projection.bias", "patch_embed/bias"),
     *layer_norm(f"{LAYER}.layernorm_before", "block_{i}/attn_norm"),
     *[Row(f"{LAYER}.attention.attention.{name}.{kind}", f"block_{{i}}/attn/qkv/{suffix}",
           heads_in(), heads_out, part=(index, -3))
       for index, name in enumerate(("query", "key", "value"))
       for kind, suffix in (("weight", "kernel"), ("bias", "bias"))],
     Row(f"{LAYER}.attention.output.dense.weight", "block_{i}/attn/out/kernel",
         out_in, out_out),
     Row(f"{LAYER}.attention.output.dense.bias", "block_{i}/attn/out/bias"),
     *layer_norm(f"{LAYER}.layernorm_after", "block_{i}/mlp_norm"),
     *linear(f"{LAYER}.intermediate.dense", "block_{i}/mlp/wi"),
     *linear(f"{LAYER}.output.dense", "block_{i}/mlp/wo"),
     *layer_norm("vit.layernorm", "final_norm"),
     *linear("classifier", "head")],
    # A pooler (ViTModel's) stored anyway: the classifier reads [CLS] without it.
    ignored_hf=[r"^vit\.pooler\."])


def keys(model) -> KeyMap:
    return KEYS


def hf_name(name: str) -> str:
    """A tensor name as the key map spells it: ViTModel files omit the `vit.` prefix."""
    return name if name.startswith(("vit.", "classifier.")) else "vit." + name


def from_hf_tensors(tensors):
    """HF's (name, array) pairs with position 0 folded into the [CLS] token (see the
    module docstring); the others pass through as they come."""
    held = {}
    for name, array in tensors:
        if name not in (CLS, POS):
            yield name, array
            continue
        held[name] = array
        if len(held) == 2:
            cls, pos = (held[k].astype(np.float32) for k in (CLS, POS))   # f16 files
            yield CLS, cls + pos[:, :1]
            yield POS, pos[:, 1:]
            held.clear()
    yield from held.items()              # one without the other: the key map says which


def to_hf_tensors(tensors: dict, hf_config: dict) -> tuple[dict, dict]:
    """HF's position embeddings with [CLS]'s at zero; the config's `num_channels` from
    the patch embedding where our config left it to the images."""
    tensors = dict(tensors)
    pos = tensors[POS]
    tensors[POS] = np.concatenate([np.zeros_like(pos[:, :1]), pos], axis=1)
    channels = tensors["vit.embeddings.patch_embeddings.projection.weight"].shape[1]
    return tensors, {**hf_config, "num_channels": channels}


def _side(hf: dict, key: str) -> int:
    """An int, or a square's [a, a]; a rectangle is refused."""
    value = hf[key]
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise BadInput(f"{key}={value!r}: only square sizes map onto the ViT model")
        value = value[0]
    return int(value)


def model_from_hf(hf: dict) -> dict:
    """The `config.model` overrides of a ViT for HF's ViT `config.json`."""
    architectures = hf.get("architectures") or [ARCHITECTURE]
    if ARCHITECTURE not in architectures:
        raise BadInput(f"architectures={architectures!r}: only {ARCHITECTURE} maps onto the "
                       f"ViT model (a classifier)")
    act = hf.get("hidden_act", "gelu")
    if act not in GELU:
        raise BadInput(f"hidden_act={act!r}: not supported (known: {', '.join(GELU)})")
    if not hf.get("qkv_bias", True):
        raise BadInput("qkv_bias=False: only True maps onto the ViT model")
    # Classes: id2label is what HF's configs keep; num_labels where one has only that.
    labels = len(hf["id2label"]) if hf.get("id2label") else hf.get("num_labels", 2)
    return dict(num_classes=labels, image_size=_side(hf, "image_size"),
                patch_size=_side(hf, "patch_size"), num_channels=hf.get("num_channels", 3),
                embed_dim=hf["hidden_size"], num_layers=hf["num_hidden_layers"],
                num_heads=hf["num_attention_heads"], mlp_dim=hf["intermediate_size"],
                norm_eps=float(hf.get("layer_norm_eps", 1e-12)), approximate_gelu=GELU[act])


def hf_from_model(model) -> dict:
    """HF's ViT `config.json` for a ViT `config.model` (`num_channels` 0, left to the
    images, is filled in from the weights by `to_hf_tensors`)."""
    labels = range(model.num_classes)
    return {"model_type": "vit", "architectures": [ARCHITECTURE],
            "image_size": model.image_size, "patch_size": model.patch_size,
            "num_channels": model.get("num_channels", 0),
            "hidden_size": model.embed_dim, "num_hidden_layers": model.num_layers,
            "num_attention_heads": model.num_heads, "intermediate_size": model.mlp_dim,
            "hidden_act": "gelu_pytorch_tanh" if model.get("approximate_gelu", True) else "gelu",
            "layer_norm_eps": model.get("norm_eps") or 1e-5, "qkv_bias": True,
            "id2label": {str(i): f"LABEL_{i}" for i in labels},
            "label2id": {f"LABEL_{i}": i for i in labels},
            "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
            "torch_dtype": "float32"}


def claims(model) -> bool:
    return True


def with_hf_options(model):
    model = model.copy_and_resolve_references()
    model.scan_layers = False
    return model


def dims(model) -> dict:
    return {"heads": model.num_heads, "patch": model.patch_size}


def example_inputs(model) -> tuple:
    """One image (of 1 channel where the config leaves the count to the images: no
    param the conversion checks then depends on it)."""
    side = model.image_size
    return (jnp.zeros((1, side, side, model.get("num_channels") or 1), jnp.float32),)
