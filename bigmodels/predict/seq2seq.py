"""Encoder-decoder models (T5): one source text per line -> its output text, by greedy
decoding (as the seq2seq eval) or beam search (`beam_size` > 1), at most
`data.target_len` tokens. Sources are tokenized as training packed them: the text and
<eos>, cut to `data.source_len`."""

import os

import numpy as np

from bigmodels import decoding
from bigmodels.data import tokenizers
from bigmodels.data.seq2seq import pack
from bigmodels.errors import BadInput, first_line
from bigmodels.names import TOKENIZER_FILE
from bigmodels.predict import inputs
from bigmodels.tasks.seq2seq import special_ids


class Seq2SeqPredictor:
    input_kind = "text"
    options = ("beam_size",)

    def __init__(self, loaded, batcher):
        config, self.model = loaded.config, loaded.model
        self.tokenizer = tokenizers.load(os.path.join(loaded.run_dir, TOKENIZER_FILE))
        self.source_len, self.target_len = config.data.source_len, config.data.target_len
        self.pad_id, self.bos_id, self.eos_id = special_ids(self.model.vocab_size)
        self.batcher = batcher
        self.consts = batcher.place({"params": loaded.params})
        self._decoders = {}

    def decoder(self, beam_size: int):
        """The jitted decoding of a batch, one per beam size."""
        if beam_size not in self._decoders:
            model, ids = self.model, (self.bos_id, self.eos_id, self.pad_id)

            def decode(c, batch):
                if beam_size == 1:
                    return decoding.greedy(model, c["params"], batch["inputs"],
                                           batch["input_lengths"], self.target_len, *ids)
                sequences, _ = decoding.beam_search(
                    model, c["params"], batch["inputs"], batch["input_lengths"],
                    self.target_len, beam_size, *ids)
                return sequences[:, 0]                      # the best hypothesis
            self._decoders[beam_size] = self.batcher.jit(decode)
        return self._decoders[beam_size]

    def read(self, path: str) -> list[str]:
        return inputs.lines(path, "a sequence-to-sequence model")

    def encode(self, sources: list[str]) -> dict:
        rows = []
        for i, source in enumerate(sources):
            if not isinstance(source, str):
                raise BadInput(f"input {i}: a sequence-to-sequence model takes strings, "
                               f"got {type(source).__name__}")
            try:
                rows.append(pack([(source, "")], self.tokenizer, self.source_len,
                                 self.target_len, truncate=True))
            except BadInput as e:
                raise BadInput(f"input {i} ({source[:40]!r}): {first_line(e)}") from None
        return {k: np.concatenate([r[k] for r in rows]) for k in ("inputs", "input_lengths")}

    def text(self, ids) -> str:
        """The decoded text up to its <eos>."""
        ids = np.asarray(ids)
        end = np.flatnonzero(ids == self.eos_id)
        return self.tokenizer.decode(ids[:end[0] if len(end) else len(ids)])

    def predict(self, sources, beam_size: int = 1) -> list[dict]:
        if beam_size < 1:
            raise BadInput(f"--beam_size must be positive, got {beam_size}")
        sources = [sources] if isinstance(sources, str) else list(sources)
        if not sources:
            return []
        decoded = self.batcher.map(self.decoder(beam_size), self.consts, self.encode(sources))
        return [{"input": s, "output": self.text(ids)} for s, ids in zip(sources, decoded)]
