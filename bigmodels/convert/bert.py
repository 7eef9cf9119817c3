"""BERT (`BertForMaskedLM`, `BertForSequenceClassification`) <-> our `bert_mlm` and
`bert_classifier` with BERT's own options: post-norm blocks, learned absolute positions,
LayerNorm at `layer_norm_eps`, exact GELU, and for the classifier its pooler
(`pooling="pooler"`).

HF's one model_type "bert" serves two of our models, so this module holds two
architectures, `MASKED_LM` and `CLASSIFIER`, which `hf.py` tells apart by the config's
`architectures` (`HF_ARCHITECTURES`). They share the encoder's key map. HF stores Linear
weights as (out, in), ours as (in, out...); its query, key and value are three tensors,
the parts of our fused `qkv` (D x 3 x H x hd). Our BERT has no scanned layout.
"""

from bigmodels.convert.gpt2 import GELU
from bigmodels.convert.key_map import KeyMap, Row, as_mapped, as_read, layer_norm
from bigmodels.convert.linear import heads_in, heads_out, linear, out_in, out_out
from bigmodels.errors import BadInput


_LAYER, _BLOCK = "bert.encoder.layer.{i}", "encoder/blocks_{i}"
ENCODER = [
    Row("bert.embeddings.word_embeddings.weight", "encoder/token_embed/embedding"),
    Row("bert.embeddings.position_embeddings.weight", "encoder/pos_embed/embedding"),
    Row("bert.embeddings.token_type_embeddings.weight", "encoder/segment_embed/embedding"),
    *layer_norm("bert.embeddings.LayerNorm", "encoder/embed_norm"),
    *(Row(f"{_LAYER}.attention.self.{hf}.{kind}", f"{_BLOCK}/attn/qkv/{suffix}",
          heads_in(), heads_out, part=(index, -3))
      for index, hf in enumerate(("query", "key", "value"))
      for kind, suffix in (("weight", "kernel"), ("bias", "bias"))),
    Row(f"{_LAYER}.attention.output.dense.weight", f"{_BLOCK}/attn/out/kernel",
        out_in, out_out),
    Row(f"{_LAYER}.attention.output.dense.bias", f"{_BLOCK}/attn/out/bias"),
    *layer_norm(f"{_LAYER}.attention.output.LayerNorm", f"{_BLOCK}/attn_norm"),
    *linear(f"{_LAYER}.intermediate.dense", f"{_BLOCK}/mlp/wi"),
    *linear(f"{_LAYER}.output.dense", f"{_BLOCK}/mlp/wo"),
    *layer_norm(f"{_LAYER}.output.LayerNorm", f"{_BLOCK}/mlp_norm"),
]
# The position ids buffer of old files.
_BUFFERS = [r"\.position_ids$"]


class _Bert:
    """What both BERT architectures share; a subclass adds its head."""
    from_hf_tensors = staticmethod(as_read)
    to_hf_tensors = staticmethod(as_mapped)
    MODEL_TYPES = ("bert",)
    MODEL_NAME = TASK = ""
    HF_ARCHITECTURES: tuple[str, ...] = ()       # the first is what an export writes
    KEYS: KeyMap
    # What an export needs of our model: (field, value).
    NEEDS = (("positions", "learned"), ("post_norm", True), ("norm", "layernorm"))

    def keys(self, model) -> KeyMap:
        return self.KEYS

    @staticmethod
    def hf_name(name: str) -> str:
        """Old files' spellings: LayerNorm gamma/beta, the decoder's copy of the bias."""
        if name == "cls.predictions.decoder.bias":
            return "cls.predictions.bias"
        for old, new in ((".gamma", ".weight"), (".beta", ".bias")):
            if "LayerNorm" in name and name.endswith(old):
                return name[:-len(old)] + new
        return name

    def model_from_hf(self, hf: dict) -> dict:
        """The `config.model` overrides for a BERT `config.json`."""
        act = hf.get("hidden_act", "gelu")
        if act not in GELU:
            raise BadInput(f"hidden_act={act!r}: not supported (known: {', '.join(GELU)})")
        for key, wanted in (("position_embedding_type", "absolute"), ("is_decoder", False),
                            ("add_cross_attention", False)):
            if hf.get(key, wanted) != wanted:
                raise BadInput(f"{key}={hf[key]!r}: only {wanted!r} maps onto model "
                               f"{self.MODEL_NAME!r}")
        d, inner = hf["hidden_size"], hf["intermediate_size"]
        return dict(vocab_size=hf["vocab_size"], num_layers=hf["num_hidden_layers"],
                    num_heads=hf["num_attention_heads"], embed_dim=d, mlp_ratio=4,
                    mlp_dim=0 if inner == 4 * d else inner,
                    context_length=hf["max_position_embeddings"],
                    type_vocab_size=hf.get("type_vocab_size", 2), positions="learned",
                    norm="layernorm", norm_eps=float(hf.get("layer_norm_eps", 1e-12)),
                    post_norm=True, use_bias=True, approximate_gelu=GELU[act])

    def claims(self, model) -> bool:
        return True                  # the only architecture of its model

    def hf_from_model(self, model) -> dict:
        """HF's BERT `config.json` for our model; refuses options BERT lacks."""
        for key, wanted in self.NEEDS:
            # Runs saved before a key existed have its default (post_norm: pre-norm).
            value = model.get(key, False if key == "post_norm" else None)
            if value != wanted:
                raise BadInput(f"model.{key}={value!r} has no Hugging Face BERT counterpart "
                               f"(BERT needs {wanted!r})")
        return {"model_type": "bert", "architectures": [self.HF_ARCHITECTURES[0]],
                "vocab_size": model.vocab_size, "hidden_size": model.embed_dim,
                "num_hidden_layers": model.num_layers,
                "num_attention_heads": model.num_heads,
                "intermediate_size": model.get("mlp_dim") or model.mlp_ratio * model.embed_dim,
                "hidden_act": "gelu_new" if model.approximate_gelu else "gelu",
                "max_position_embeddings": model.context_length,
                "type_vocab_size": model.type_vocab_size,
                "layer_norm_eps": model.get("norm_eps") or 1e-5,
                # Ours drops embeddings, sublayer outputs and the pooled [CLS], as HF's
                # hidden dropout does; attention weights are never dropped here.
                "hidden_dropout_prob": model.dropout, "attention_probs_dropout_prob": 0.0,
                "classifier_dropout": None, "is_decoder": False,
                "add_cross_attention": False, "tie_word_embeddings": True,
                # HF's default pad id 0 would freeze token 0's embedding when trained there.
                "pad_token_id": None, "initializer_range": 0.02, "torch_dtype": "float32"}

    def with_hf_options(self, model):
        """The config whose params match HF's one for one: a model without biases is
        BERT with zero biases (export_hf fills them in)."""
        model = model.copy_and_resolve_references()
        model.use_bias = True
        return model

    def dims(self, model) -> dict:
        return {"heads": model.num_heads}

    @staticmethod
    def _tokens(model):
        import jax.numpy as jnp
        t = min(8, model.context_length)
        return jnp.zeros((1, t), jnp.int32), jnp.full((1,), t, jnp.int32)


class _MaskedLM(_Bert):
    """`BertForMaskedLM` (and `BertForPreTraining`, whose next-sentence head and pooler
    are left out) <-> `bert_mlm`: the tied decoder is our `token_embed.attend`."""
    MODEL_NAME, TASK = "bert_mlm", "masked_lm"
    HF_ARCHITECTURES = ("BertForMaskedLM", "BertForPreTraining")
    KEYS = KeyMap(
        [*ENCODER,
         *linear("cls.predictions.transform.dense", "mlm_transform"),
         *layer_norm("cls.predictions.transform.LayerNorm", "mlm_norm"),
         Row("cls.predictions.bias", "mlm_bias")],
        # bert-base-uncased's files hold the pooler and the NSP head too; the decoder
        # weight, when stored, is the tied word embedding.
        ignored_hf=[r"^bert\.pooler\.", r"^cls\.seq_relationship\.",
                    r"^cls\.predictions\.decoder\.weight$", *_BUFFERS])

    def model_from_hf(self, hf: dict) -> dict:
        if not hf.get("tie_word_embeddings", True):
            raise BadInput("tie_word_embeddings=False: only True maps onto model 'bert_mlm' "
                           "(its output layer is the token embedding)")
        return super().model_from_hf(hf)

    def example_inputs(self, model) -> tuple:
        """(tokens, segments, lengths): what BertMLM is called with."""
        tokens, lengths = self._tokens(model)
        return tokens, tokens, lengths


class _Classifier(_Bert):
    """`BertForSequenceClassification` <-> `bert_classifier` with `pooling="pooler"`."""
    MODEL_NAME, TASK = "bert_classifier", "classify"
    HF_ARCHITECTURES = ("BertForSequenceClassification",)
    NEEDS = _Bert.NEEDS + (("pooling", "pooler"),)
    KEYS = KeyMap([*ENCODER, *linear("bert.pooler.dense", "pooler"),
                   *linear("classifier", "classifier")],
                  ignored_hf=[r"^cls\.", *_BUFFERS])      # a pretraining head left in

    def model_from_hf(self, hf: dict) -> dict:
        labels = len(hf["id2label"]) if hf.get("id2label") else hf.get("num_labels", 2)
        kind = hf.get("problem_type") or "single_label_classification"
        if kind != "single_label_classification" or labels < 2:
            raise BadInput(f"problem_type={kind!r}, num_labels={labels}: model "
                           f"'bert_classifier' is single-label classification (2+ labels)")
        return dict(super().model_from_hf(hf), num_classes=labels, pooling="pooler")

    def hf_from_model(self, model) -> dict:
        labels = {str(i): f"LABEL_{i}" for i in range(model.num_classes)}
        return dict(super().hf_from_model(model), id2label=labels,
                    label2id={v: int(k) for k, v in labels.items()})

    def example_inputs(self, model) -> tuple:
        """(tokens, lengths): what BertClassifier is called with."""
        return self._tokens(model)


MASKED_LM = _MaskedLM()
CLASSIFIER = _Classifier()
