"""T5 (`T5ForConditionalGeneration`: T5 v1.0, v1.1, Flan-T5) <-> the T5 model with
relative positions, RMSNorm, no biases and unscaled attention logits.

HF's Linear weights are (out, in); our Dense kernels are (in, out...). HF's q, k and v
are three tensors, ours one fused `qkv` (D x 3 x N x hd) in self-attention and `q`
(D x 1 x N x hd) plus `kv` (D x 2 x N x hd) in cross-attention; the inner width N x hd
is head-major on both sides and may differ from d_model. The relative-position table
(buckets x N) sits in block 0 of each HF stack and is ours once per stack. v1.1's gated
MLP (`wi_0` gate, `wi_1` linear) is our `wi` kernel D x 2 x F, gate first.

The head: v1.0 ties it to the shared embedding and scales the decoder output by
d_model**-0.5 first (ours: scale_decoder_output); v1.1 has its own `lm_head` and no
scaling (`tie_word_embeddings: false`). Our default, a tied head without scaling, goes
out as v1.1 with `lm_head` a copy of the embedding. A model of ours that divides its
logits by sqrt(head_dim) (attention_scale 0) goes out with that factor folded into q.

The special ids are T5's (pad 0 = decoder start, eos 1) in the exported config; a T5
trained here keeps its specials at the end of the vocabulary
(bigmodels.tasks.seq2seq.special_ids), which HF's `generate` then needs to be given.
"""

import jax.numpy as jnp

from bigmodels.convert.key_map import KeyMap, Row, as_mapped
from bigmodels.convert.linear import heads_in, heads_out, out_in, out_out, transpose
from bigmodels.errors import BadInput

MODEL_TYPES = ("t5",)
MODEL_NAME = "t5"
TASK = "seq2seq"
STACKS = ("encoder", "decoder")

# feed_forward_proj -> (our mlp_activation, approximate_gelu). HF's "gated-gelu" is tanh
# GELU (gelu_new); its plain "gelu" is erf GELU.
FEED_FORWARD = {"relu": ("relu", True), "gelu": ("gelu", False), "gelu_new": ("gelu", True),
                "gated-gelu": ("geglu", True), "gated-gelu_new": ("geglu", True),
                "gated-silu": ("swiglu", True)}


def _q_in(array, dims):                      # HF's q carries our logits' scale
    return heads_in()(array, dims) / dims["q_scale"]


def _q_out(array, dims):
    return heads_out(array, dims) * dims["q_scale"]


def _attention_rows(hf: str, ours: str, cross: bool) -> list[Row]:
    """q, k, v and o of one attention: the parts of `qkv` (self), or `q` (a single
    part) and the parts of `kv` (cross)."""
    fused = (("q", "q", 0), ("k", "kv", 0), ("v", "kv", 1)) if cross else (
        ("q", "qkv", 0), ("k", "qkv", 1), ("v", "qkv", 2))
    return [*(Row(f"{hf}.{name}.weight", f"{ours}/{param}/kernel",
                  *((_q_in, _q_out) if name == "q" else (heads_in(), heads_out)),
                  part=(index, -3)) for name, param, index in fused),
            Row(f"{hf}.o.weight", f"{ours}/out/kernel", out_in, out_out)]


def _stack_rows(stack: str, gated: bool) -> list[Row]:
    hf, ours = f"{stack}.block.{{i}}.layer", f"{stack}/block_{{i}}"
    sublayers = [("SelfAttention", "attn", "attn_norm", False)]
    if stack == "decoder":
        sublayers.append(("EncDecAttention", "cross_attn", "cross_norm", True))
    rows = []
    for n, (hf_attn, attn, norm, cross) in enumerate(sublayers):
        rows += [Row(f"{hf}.{n}.layer_norm.weight", f"{ours}/{norm}/scale"),
                 *_attention_rows(f"{hf}.{n}.{hf_attn}", f"{ours}/{attn}", cross)]
    n = len(sublayers)
    mlp = f"{hf}.{n}.DenseReluDense"
    rows.append(Row(f"{hf}.{n}.layer_norm.weight", f"{ours}/mlp_norm/scale"))
    if gated:
        rows += [Row(f"{mlp}.wi_{k}.weight", f"{ours}/mlp/wi/kernel", transpose, transpose,
                     part=(k, -2)) for k in (0, 1)]
    else:
        rows.append(Row(f"{mlp}.wi.weight", f"{ours}/mlp/wi/kernel", transpose, transpose))
    return rows + [
        Row(f"{mlp}.wo.weight", f"{ours}/mlp/wo/kernel", transpose, transpose),
        Row(f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
            f"{stack}/relative_bias/embedding"),
        Row(f"{stack}.final_layer_norm.weight", f"{stack}/final_norm/scale")]


def keys(model) -> KeyMap:
    """The key map of a T5 config."""
    gated = model.get("mlp_activation", "gelu") in ("geglu", "swiglu")
    rows = [Row("shared.weight", "token_embed/embedding"),
            *(row for stack in STACKS for row in _stack_rows(stack, gated))]
    if not model.tie_embeddings:
        rows.append(Row("lm_head.weight", "head/kernel", transpose, transpose))
    elif not model.get("scale_decoder_output", False):
        rows.append(Row("lm_head.weight", "token_embed/embedding"))   # out as v1.1
    # A tied head stored anyway; the cross-attention position table some old files
    # carry, which T5 never reads.
    return KeyMap(rows, ignored_hf=[
        r"^lm_head\.weight$", r"^decoder\.block\.0\.layer\.1\.EncDecAttention\."
                              r"relative_attention_bias\.weight$"])


def hf_name(name: str) -> str:
    """The stacks' copies of the shared embedding (some files store them) are it."""
    return "shared.weight" if name in ("encoder.embed_tokens.weight",
                                       "decoder.embed_tokens.weight") else name


def from_hf_tensors(tensors):
    """HF's tensors, and the shared table as `lm_head.weight` where a file has none:
    transformers 5 ties the two whenever they are equal and then saves one (a tied head
    ignores it)."""
    shared, head = None, False
    for name, array in tensors:
        shared = array if name == "shared.weight" else shared
        head = head or name == "lm_head.weight"
        yield name, array
    if not head and shared is not None:
        yield "lm_head.weight", shared


def _scaled_output(hf: dict) -> bool:
    """Whether the decoder output is scaled by d_model**-0.5: transformers 5 saves
    `scale_decoder_outputs`; older files say it as `tie_word_embeddings` (not false)."""
    if "scale_decoder_outputs" in hf:
        return bool(hf["scale_decoder_outputs"])
    return hf.get("tie_word_embeddings", True) is not False


def model_from_hf(hf: dict) -> dict:
    """The `config.model` overrides of a T5 for HF's T5 `config.json`."""
    d, heads, d_kv = hf["d_model"], hf["num_heads"], hf["d_kv"]
    proj = hf.get("feed_forward_proj", "relu")
    if proj not in FEED_FORWARD:
        raise BadInput(f"feed_forward_proj={proj!r}: not supported (known: "
                       f"{', '.join(FEED_FORWARD)})")
    buckets = hf.get("relative_attention_num_buckets", 32)
    max_distance = hf.get("relative_attention_max_distance", 128)
    if max_distance <= buckets // 2:
        raise BadInput(f"relative_attention_max_distance={max_distance}: must exceed "
                       f"relative_attention_num_buckets / 2 = {buckets // 2}")
    if hf.get("is_encoder_decoder", True) is not True:
        raise BadInput(f"is_encoder_decoder={hf['is_encoder_decoder']!r}: only an "
                       f"encoder-decoder maps onto the T5 model")
    activation, approximate = FEED_FORWARD[proj]
    # v1.0 scales the output before its tied head; v1.1 has its own head, unscaled.
    scaled = _scaled_output(hf)
    return dict(vocab_size=hf["vocab_size"], num_layers=hf["num_layers"],
                num_decoder_layers=hf.get("num_decoder_layers") or hf["num_layers"],
                num_heads=heads, embed_dim=d, head_dim=0 if d_kv * heads == d else d_kv,
                mlp_dim=hf["d_ff"], mlp_activation=activation, approximate_gelu=approximate,
                context_length=hf.get("n_positions") or 512, positions="relative",
                relative_buckets=buckets, relative_max_distance=max_distance,
                norm="rmsnorm", norm_eps=float(hf.get("layer_norm_epsilon", 1e-6)),
                use_bias=False, attention_scale=1.0, tie_embeddings=scaled,
                scale_decoder_output=scaled)


def claims(model) -> bool:
    return model.get("positions") == "relative"


def _feed_forward(model) -> str:
    activation = model.get("mlp_activation", "gelu")
    # approximate_gelu matters to the GELUs only.
    approximate = (model.get("approximate_gelu", True) if activation in ("gelu", "geglu")
                   else True)
    for proj, ours in FEED_FORWARD.items():
        if ours == (activation, approximate):
            return proj
    raise BadInput(f"model.mlp_activation={activation!r} with approximate_gelu="
                   f"{approximate} has no T5 counterpart")


def hf_from_model(model) -> dict:
    """HF's T5 `config.json` for a T5 `config.model`; refuses options T5 lacks."""
    for key, wanted in (("positions", "relative"), ("norm", "rmsnorm"), ("use_bias", False)):
        if model.get(key) != wanted:
            raise BadInput(f"model.{key}={model.get(key)!r} has no T5 counterpart "
                           f"(T5 needs {wanted!r})")
    scaled = model.get("scale_decoder_output", False)
    if scaled and not model.tie_embeddings:
        raise BadInput("model.scale_decoder_output=True with tie_embeddings=False has no "
                       "T5 counterpart (T5 scales only before a tied head)")
    return {"model_type": "t5", "architectures": ["T5ForConditionalGeneration"],
            "vocab_size": model.vocab_size, "d_model": model.embed_dim,
            "d_kv": _head_dim(model), "d_ff": model.get("mlp_dim") or
            model.mlp_ratio * model.embed_dim, "num_layers": model.num_layers,
            "num_decoder_layers": model.num_decoder_layers or model.num_layers,
            "num_heads": model.num_heads, "n_positions": model.context_length,
            "relative_attention_num_buckets": model.relative_buckets,
            "relative_attention_max_distance": model.relative_max_distance,
            "layer_norm_epsilon": model.get("norm_eps") or 1e-6,
            "feed_forward_proj": _feed_forward(model), "tie_word_embeddings": bool(scaled),
            "is_encoder_decoder": True, "dropout_rate": 0.0, "pad_token_id": 0,
            "eos_token_id": 1, "decoder_start_token_id": 0, "torch_dtype": "float32"}


def with_hf_options(model):
    return model.copy_and_resolve_references()


def _head_dim(model) -> int:
    return model.get("head_dim") or model.embed_dim // model.num_heads


def dims(model) -> dict:
    return {"heads": model.num_heads,
            "q_scale": model.get("attention_scale") or _head_dim(model) ** -0.5}


def example_inputs(model) -> tuple:
    """Source tokens, their lengths and decoder inputs."""
    n = min(8, model.context_length)
    return (jnp.zeros((1, n), jnp.int32), jnp.full((1,), n, jnp.int32),
            jnp.zeros((1, n), jnp.int32))


to_hf_tensors = as_mapped
