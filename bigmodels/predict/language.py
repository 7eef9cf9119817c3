"""Language models (task causal_lm: GPT, LSTM/GRU): one prompt per line -> its
continuation, by `bigmodels.generate.generate_text_batch` (a KV cache, ragged prompts
in one batch) with the sampling options of `bigmodels.sample`.

Prompts go in batches of `batch_size`; the rows of batch k sample from seed + k *
batch_size (each row from its own key), so a run is reproducible for a given batch
size. Without `max_new_tokens` a continuation is as long as fits in the context beside
the longest prompt of its batch, at most DEFAULT_NEW_TOKENS.
"""

import os

import jax

from bigmodels.data import tokenizers
from bigmodels.errors import BadInput
from bigmodels.generate import generate_text_batch
from bigmodels.names import TOKENIZER_FILE
from bigmodels.predict import inputs

DEFAULT_NEW_TOKENS = 200


class LanguageModel:
    input_kind = "text"
    options = ("max_new_tokens", "temperature", "top_k", "top_p", "seed", "stop")

    def __init__(self, loaded, batcher):
        # On the default device once: generate_text_batch places its own batches.
        self.model, self.params = loaded.model, jax.device_put(loaded.params)
        self.tokenizer = tokenizers.load(os.path.join(loaded.run_dir, TOKENIZER_FILE))
        self.batch_size = batcher.batch_size

    def read(self, path: str) -> list[str]:
        return inputs.lines(path, "a language model")

    def predict(self, prompts, max_new_tokens: int | None = None, temperature: float = 0.8,
                top_k: int = 0, top_p: float = 1.0, seed: int = 0, stop=()) -> list[dict]:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        for i, p in enumerate(prompts):
            if not isinstance(p, str) or not p:
                raise BadInput(f"input {i}: a language model takes non-empty strings, "
                               f"got {p!r:.40}")
        out = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start:start + self.batch_size]
            new = max_new_tokens
            if new is None:
                longest = max(len(self.tokenizer.encode(p)) for p in chunk)
                new = max(0, min(DEFAULT_NEW_TOKENS, self.model.context_length - longest))
            out += generate_text_batch(self.model, self.params, self.tokenizer, chunk, new,
                                       seed=seed + start, temperature=temperature,
                                       top_k=top_k, top_p=top_p, stop=stop)
        return [{"input": p, "output": o} for p, o in zip(prompts, out)]
