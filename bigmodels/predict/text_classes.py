"""Text classifiers (bert_classify, gpt_classify, lstm_classify): one text per line ->
its label and the probability of every class.

Each text is tokenized as the run's training passages were: cut to the passage length
(`data.seq_len`, or the model's context), inside [CLS] ... [SEP] when the tokenizer has
BERT's specials, padded, with its length given.
"""

import os

import jax.numpy as jnp
import numpy as np

from bigmodels.data import tokenizers
from bigmodels.data.tfds_classes import encode_row
from bigmodels.errors import BadInput, first_line
from bigmodels.names import TOKENIZER_FILE
from bigmodels.predict import base, inputs
from bigmodels.predict.loading import check_model_state


class TextClassifier:
    input_kind = "text"
    options = ()

    def __init__(self, loaded, batcher):
        config, model = loaded.config, loaded.model
        self.task = config.task
        self.tokenizer = tokenizers.load(os.path.join(loaded.run_dir, TOKENIZER_FILE))
        self.seq_len = config.data.get("seq_len", 0) or config.model.context_length
        specials = getattr(self.tokenizer, "specials", ())
        self.pad_id = self.tokenizer.id("[PAD]") if "[PAD]" in specials else 0
        self.names = base.with_default_names(base.saved_class_names(loaded.run_dir),
                                             base.output_count(self.task, config))
        check_model_state(loaded, lambda rng: model.init(
            rng, jnp.zeros((1, self.seq_len), jnp.int32), jnp.ones((1,), jnp.int32)))
        self.batcher = batcher
        self.consts, self.forward = base.classifier_forward(loaded, batcher)

    def read(self, path: str) -> list[str]:
        return inputs.lines(path, "a text classifier")

    def encode(self, texts: list[str]) -> dict:
        """The batch arrays of `texts`: tokens (N x seq_len) and lengths."""
        tokens = np.full((len(texts), self.seq_len), self.pad_id, np.int32)
        lengths = np.zeros(len(texts), np.int32)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise BadInput(f"input {i}: a text classifier takes strings, got "
                               f"{type(text).__name__}")
            try:
                ids = encode_row(text, self.tokenizer, self.seq_len)
            except BadInput as e:
                raise BadInput(f"input {i} ({text[:40]!r}): {first_line(e)}") from None
            tokens[i, :len(ids)], lengths[i] = ids, max(len(ids), 1)
        return {"tokens": tokens, "lengths": lengths}

    def predict(self, texts) -> list[dict]:
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            return []
        logits = self.batcher.map(self.forward, self.consts, self.encode(texts))
        return [{"input": t, **r}
                for t, r in zip(texts, base.score_records(self.task, logits, self.names))]
