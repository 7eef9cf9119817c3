"""Llama (`LlamaForCausalLM`) and Qwen2 (`Qwen2ForCausalLM`) <-> the GPT model with
rotary positions, RMSNorm, SwiGLU, no biases (Qwen2: q, k and v biases), grouped-query
attention and an untied head (tied in the small Qwen2s and Llama 3.2s).

HF stores Linear weights as (out, in); our Dense kernels are (in, out...). HF's q, k
and v are three tensors; ours are one fused `qkv` (D x 3 x H x hd) under multi-head
attention and `q` plus `kv` (D x 2 x K x hd) under GQA, so the key map depends on the
config (`keys`). HF's rotary embedding rotates the halves of each head, (i, i + hd/2),
as ours does: q and k need no permutation.
"""

from bigmodels.convert import gpt2
from bigmodels.convert.key_map import KeyMap, Row, as_mapped, as_read
from bigmodels.convert.linear import heads_in, heads_out, out_in, out_out, transpose
from bigmodels.errors import BadInput

MODEL_TYPES = ("llama", "qwen2")
MODEL_NAME = "gpt"
TASK = "causal_lm"
ARCHITECTURE = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}


def _qkv_rows(gqa: bool, bias: bool) -> list[Row]:
    """q, k and v: parts of `qkv` (axis -3), or under GQA `q` and the parts of `kv`."""
    targets = ((("q", "q", 0, "heads"), ("k", "kv", 0, "kv_heads"), ("v", "kv", 1, "kv_heads"))
               if gqa else
               (("q", "qkv", 0, "heads"), ("k", "qkv", 1, "heads"), ("v", "qkv", 2, "heads")))
    rows = []
    for hf, ours, index, heads in targets:
        for kind, suffix in (("weight", "kernel"), ("bias", "bias"))[:1 + bias]:
            rows.append(Row(f"model.layers.{{i}}.self_attn.{hf}_proj.{kind}",
                            f"block_{{i}}/attn/{ours}/{suffix}", heads_in(heads), heads_out,
                            part=(index, -3)))
    return rows


def keys(model) -> KeyMap:
    """The key map of a GPT config in this family."""
    gqa = bool(model.num_kv_heads) and model.num_kv_heads != model.num_heads
    rows = [Row("model.embed_tokens.weight", "token_embed/embedding"),
            Row("model.layers.{i}.input_layernorm.weight", "block_{i}/attn_norm/scale"),
            *_qkv_rows(gqa, bias=model.qkv_bias),
            Row("model.layers.{i}.self_attn.o_proj.weight", "block_{i}/attn/out/kernel",
                out_in, out_out),
            Row("model.layers.{i}.post_attention_layernorm.weight", "block_{i}/mlp_norm/scale"),
            Row("model.layers.{i}.mlp.gate_proj.weight", "block_{i}/mlp/wi/kernel",
                transpose, transpose, part=(0, -2)),
            Row("model.layers.{i}.mlp.up_proj.weight", "block_{i}/mlp/wi/kernel",
                transpose, transpose, part=(1, -2)),
            Row("model.layers.{i}.mlp.down_proj.weight", "block_{i}/mlp/wo/kernel",
                transpose, transpose),
            Row("model.norm.weight", "final_norm/scale")]
    if not model.tie_embeddings:
        rows.append(Row("lm_head.weight", "head/kernel", transpose, transpose))
    # A tied head stored anyway, and the rotary buffers of old files.
    return KeyMap(rows, ignored_hf=[r"^lm_head\.weight$", r"\.rotary_emb\.inv_freq$"])


def hf_name(name: str) -> str:
    return name


def _rope(hf: dict) -> dict:
    """Our rope fields from HF's `rope_parameters` (transformers 5) or the older
    top-level `rope_theta` and `rope_scaling`."""
    params = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
    theta = params.get("rope_theta", hf.get("rope_theta", 10000.0))
    kind = params.get("rope_type", params.get("type", "default"))
    if kind == "default":
        return {"rope_theta": float(theta)}
    if kind != "llama3":
        raise BadInput(f"rope_type={kind!r}: only 'default' and 'llama3' rotary scaling "
                       f"map onto the GPT model")
    return {"rope_theta": float(theta), "rope_scaling_factor": float(params["factor"]),
            "rope_low_freq_factor": float(params["low_freq_factor"]),
            "rope_high_freq_factor": float(params["high_freq_factor"]),
            "rope_original_context": int(params["original_max_position_embeddings"])}


def model_from_hf(hf: dict) -> dict:
    """The `config.model` overrides of a GPT for a Llama or Qwen2 `config.json`."""
    d, heads = hf["hidden_size"], hf["num_attention_heads"]
    head_dim = hf.get("head_dim") or d // heads
    for key, wanted in (("hidden_act", "silu"), ("attention_bias", False), ("mlp_bias", False),
                        ("pretraining_tp", 1), ("use_sliding_window", False)):
        if hf.get(key, wanted) != wanted:
            raise BadInput(f"{key}={hf[key]!r}: only {wanted!r} maps onto the GPT model")
    return dict(vocab_size=hf["vocab_size"], num_layers=hf["num_hidden_layers"],
                num_heads=heads, num_kv_heads=hf.get("num_key_value_heads") or heads,
                embed_dim=d, head_dim=0 if head_dim * heads == d else head_dim,
                mlp_dim=hf["intermediate_size"], mlp_activation="swiglu",
                context_length=hf["max_position_embeddings"], positions="rotary",
                norm="rmsnorm", norm_eps=float(hf.get("rms_norm_eps", 1e-6)), use_bias=False,
                qkv_bias=hf["model_type"] == "qwen2",
                tie_embeddings=bool(hf.get("tie_word_embeddings", False)), **_rope(hf))


def claims(model) -> bool:
    """Whether a GPT config is this family's (rather than GPT-2's)."""
    return model.get("positions") == "rotary"


def hf_from_model(model) -> dict:
    """HF's Llama (or, with q/k/v biases, Qwen2) `config.json` for a GPT config."""
    for key, wanted in (("positions", "rotary"), ("norm", "rmsnorm"), ("use_bias", False),
                        ("mlp_activation", "swiglu")):
        if model.get(key) != wanted:
            raise BadInput(f"model.{key}={model.get(key)!r} has no Llama counterpart "
                           f"(Llama needs {wanted!r})")
    model_type = "qwen2" if model.qkv_bias else "llama"
    head_dim = model.head_dim or model.embed_dim // model.num_heads
    rope = {"rope_type": "default", "rope_theta": model.rope_theta}
    if model.rope_scaling_factor > 0:
        rope.update(rope_type="llama3", factor=model.rope_scaling_factor,
                    low_freq_factor=model.rope_low_freq_factor,
                    high_freq_factor=model.rope_high_freq_factor,
                    original_max_position_embeddings=model.rope_original_context)
    return {"model_type": model_type, "architectures": [ARCHITECTURE[model_type]],
            "vocab_size": model.vocab_size, "hidden_size": model.embed_dim,
            "intermediate_size": model.mlp_dim or model.mlp_ratio * model.embed_dim,
            "num_hidden_layers": model.num_layers, "num_attention_heads": model.num_heads,
            "num_key_value_heads": model.num_kv_heads or model.num_heads,
            "head_dim": head_dim, "hidden_act": "silu",
            "max_position_embeddings": model.context_length,
            "rms_norm_eps": model.norm_eps or 1e-6, "rope_parameters": rope,
            "rope_theta": model.rope_theta, "attention_bias": False, "mlp_bias": False,
            "tie_word_embeddings": bool(model.tie_embeddings), "attention_dropout": 0.0,
            "torch_dtype": "float32"}


def with_hf_options(model):
    model = model.copy_and_resolve_references()
    model.scan_layers = False
    return model


def dims(model) -> dict:
    return {"heads": model.num_heads, "kv_heads": model.num_kv_heads or model.num_heads}


def example_inputs(model) -> tuple:
    return gpt2.example_inputs(model)


from_hf_tensors, to_hf_tensors = as_read, as_mapped      # one tensor, one param
