"""GPT-2 (`GPT2LMHeadModel`) <-> the GPT model (learned positions, LayerNorm with bias,
tanh GELU, tied embeddings).

GPT-2 stores its projections as `Conv1D` weights, (in, out), the layout of our Dense
kernels; the fused q/k/v weight splits as (D, 3, heads, head_dim) in that order.
"""

import jax.numpy as jnp

from bigmodels.convert.key_map import KeyMap, Row, as_mapped, as_read, layer_norm
from bigmodels.errors import BadInput

MODEL_TYPES = ("gpt2",)      # HF's config.json
MODEL_NAME = "gpt"           # ours: bigmodels.models
TASK = "causal_lm"


def _split_heads(array, dims):               # (D, 3D) -> (D, 3, H, hd); (3D,) -> (3, H, hd)
    return array.reshape(array.shape[:-1] + (3, dims["heads"], -1))


def _merge_heads(array, dims):
    return array.reshape(array.shape[:-3] + (-1,))


def _heads_in(array, dims):                  # out projection (D, D) -> (H, hd, D)
    return array.reshape(dims["heads"], -1, array.shape[-1])


def _heads_out(array, dims):
    return array.reshape(-1, array.shape[-1])


KEYS = KeyMap(
    [Row("transformer.wte.weight", "token_embed/embedding"),
     Row("transformer.wpe.weight", "pos_embed/embedding"),
     *layer_norm("transformer.h.{i}.ln_1", "block_{i}/attn_norm"),
     Row("transformer.h.{i}.attn.c_attn.weight", "block_{i}/attn/qkv/kernel",
         _split_heads, _merge_heads),
     Row("transformer.h.{i}.attn.c_attn.bias", "block_{i}/attn/qkv/bias",
         _split_heads, _merge_heads),
     Row("transformer.h.{i}.attn.c_proj.weight", "block_{i}/attn/out/kernel",
         _heads_in, _heads_out),
     Row("transformer.h.{i}.attn.c_proj.bias", "block_{i}/attn/out/bias"),
     *layer_norm("transformer.h.{i}.ln_2", "block_{i}/mlp_norm"),
     Row("transformer.h.{i}.mlp.c_fc.weight", "block_{i}/mlp/wi/kernel"),
     Row("transformer.h.{i}.mlp.c_fc.bias", "block_{i}/mlp/wi/bias"),
     Row("transformer.h.{i}.mlp.c_proj.weight", "block_{i}/mlp/wo/kernel"),
     Row("transformer.h.{i}.mlp.c_proj.bias", "block_{i}/mlp/wo/bias"),
     *layer_norm("transformer.ln_f", "final_norm")],
    # The tied head (when a file stores it) and the causal-mask buffers of old files.
    ignored_hf=[r"^lm_head\.weight$", r"\.attn\.(masked_)?bias$"])

def keys(model) -> KeyMap:
    return KEYS


HF_PREFIX = "transformer."        # hub files of the original GPT-2 omit it


def hf_name(name: str) -> str:
    """A tensor name as the key map spells it (with the `transformer.` prefix)."""
    return name if name.startswith(HF_PREFIX) or name.startswith("lm_head.") else HF_PREFIX + name


GELU = {"gelu_new": True, "gelu_pytorch_tanh": True, "gelu": False}


def model_from_hf(hf: dict) -> dict:
    """The `config.model` overrides of a GPT for HF's GPT-2 `config.json`."""
    d = hf["n_embd"]
    inner = hf.get("n_inner") or 4 * d
    if hf.get("activation_function", "gelu_new") not in GELU:
        raise BadInput(f"activation_function={hf['activation_function']!r}: not supported "
                       f"(known: {', '.join(GELU)})")
    for key, wanted in (("scale_attn_weights", True),
                        ("scale_attn_by_inverse_layer_idx", False),
                        ("reorder_and_upcast_attn", False), ("tie_word_embeddings", True)):
        if hf.get(key, wanted) != wanted:
            raise BadInput(f"{key}={hf[key]!r}: only {wanted!r} maps onto the GPT model")
    return dict(vocab_size=hf["vocab_size"], num_layers=hf["n_layer"], num_heads=hf["n_head"],
                embed_dim=d, mlp_dim=0 if inner == 4 * d else inner, mlp_ratio=4,
                context_length=hf["n_positions"], positions="learned", norm="layernorm",
                norm_eps=float(hf.get("layer_norm_epsilon", 1e-5)), use_bias=True,
                tie_embeddings=True,
                approximate_gelu=GELU[hf.get("activation_function", "gelu_new")])


def hf_from_model(model) -> dict:
    """HF's GPT-2 `config.json` for a GPT `config.model`; refuses options GPT-2 lacks."""
    for key, wanted in (("positions", "learned"), ("norm", "layernorm"),
                        ("tie_embeddings", True), ("mlp_activation", "gelu"),
                        ("num_kv_heads", 0), ("head_dim", 0)):
        # Runs saved before a key existed have its default, which is GPT-2's.
        value = model.get(key, wanted)
        if value != wanted and not (key == "num_kv_heads" and value == model.num_heads):
            raise BadInput(f"model.{key}={value!r} has no GPT-2 counterpart "
                           f"(GPT-2 needs {wanted!r})")
    return {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
            "vocab_size": model.vocab_size, "n_positions": model.context_length,
            "n_embd": model.embed_dim, "n_layer": model.num_layers, "n_head": model.num_heads,
            "n_inner": model.get("mlp_dim") or model.mlp_ratio * model.embed_dim,
            "activation_function": "gelu_new" if model.approximate_gelu else "gelu",
            "layer_norm_epsilon": model.get("norm_eps") or 1e-5, "tie_word_embeddings": True,
            "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
            "torch_dtype": "float32"}


def claims(model) -> bool:
    """Whether a GPT config is GPT-2's (learned positions) rather than Llama's."""
    return model.get("positions") == "learned"


def with_hf_options(model):
    """The GPT config whose params match GPT-2's one for one (unscanned: the export
    unstacks scanned layers first). A model without biases is GPT-2 with zero biases
    (exact), so `use_bias=False` exports with zeros filled in."""
    model = model.copy_and_resolve_references()
    model.use_bias, model.scan_layers = True, False
    return model


def dims(model) -> dict:
    return {"heads": model.num_heads}


def example_inputs(model) -> tuple:
    """What the model is called with to build its params: a few tokens."""
    return (jnp.zeros((1, min(8, model.context_length)), jnp.int32),)


from_hf_tensors, to_hf_tensors = as_read, as_mapped      # one tensor, one param
