"""Tokenizers, saved as JSON with the run (never pickled): character- and byte-level
ones of our own, any Hugging Face `tokenizers` tokenizer (`hf:<dir, file or hub id>`), kept
as its own `tokenizer.json`, which transformers and the `tokenizers` library load as is,
and any SentencePiece model (`sentencepiece:<model file>`), kept as its model's bytes."""

import base64
import json
import os

import numpy as np

from bigmodels.errors import BadInput


class ByteTokenizer:
    """UTF-8 bytes as tokens: any input, valid UTF-8 or not, encodes losslessly."""
    kind = "byte"
    vocab_size = 256

    def encode(self, data: bytes | str) -> np.ndarray:
        if isinstance(data, str):
            data = data.encode("utf-8")
        return np.frombuffer(data, dtype=np.uint8).astype(np.int32)

    def decode(self, ids) -> str:
        return bytes(np.asarray(ids, dtype=np.uint8).tolist()).decode("utf-8", errors="replace")

    def to_json(self) -> dict:
        return {"kind": self.kind}


def _byte_symbols() -> list[str]:
    """GPT-2's printable stand-in for each byte value: printable Latin-1 bytes stand for
    themselves, the other 68 take the code points from 256 up, in byte order."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    others = iter(range(256, 512))
    return [chr(b) if b in kept else chr(next(others)) for b in range(256)]


def hf_byte_tokenizer():
    """The byte tokenizer as a Hugging Face `tokenizers.Tokenizer`: a byte-level BPE with
    no merges whose ids are the byte values, so that transformers' pipelines read a model
    trained here on bytes. Encodes every string as `ByteTokenizer` does."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    vocab = {symbol: b for b, symbol in enumerate(_byte_symbols())}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


class CharTokenizer:
    """One token per Unicode character of a vocabulary built from the corpus."""
    kind = "char"

    def __init__(self, chars: str):
        self.chars = chars
        self._codes = np.array([ord(c) for c in chars], dtype=np.uint32)  # sorted
        self.vocab_size = len(chars)

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        return cls("".join(sorted(set(text))))

    def encode(self, text: bytes | str) -> np.ndarray:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        ids = np.searchsorted(self._codes, codes)
        ok = (ids < len(self._codes)) & (self._codes[np.minimum(ids, len(self._codes) - 1)] == codes)
        if not ok.all():
            bad = sorted({chr(c) for c in codes[~ok]})[:10]
            raise BadInput(f"characters not in the tokenizer's vocabulary: {bad!r}")
        return ids.astype(np.int32)

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in np.asarray(ids).tolist())

    def to_json(self) -> dict:
        return {"kind": self.kind, "chars": self.chars}


class HFTokenizer:
    """A Hugging Face `tokenizers.Tokenizer` (BPE, WordPiece, Unigram, ...)."""
    kind = "hf"

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.vocab_size = tokenizer.get_vocab_size()

    @classmethod
    def from_file(cls, path: str) -> "HFTokenizer":
        """From a tokenizer.json, a directory holding one, or a hub id (`org/name`,
        fetched once into the Hugging Face cache)."""
        from tokenizers import Tokenizer
        if os.path.isdir(path):
            path = os.path.join(path, "tokenizer.json")
        elif not os.path.exists(path) and _is_hub_id(path):
            path = _hub_tokenizer(path)
        try:
            return cls(Tokenizer.from_file(path))
        except Exception as e:            # the Rust side raises plain Exceptions
            raise BadInput(f"data.tokenizer: {path}: not a readable tokenizer.json "
                           f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None

    def encode(self, text: bytes | str) -> np.ndarray:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        return np.asarray(self.tokenizer.encode(text, add_special_tokens=False).ids, np.int32)

    def decode(self, ids) -> str:
        return self.tokenizer.decode(np.asarray(ids).tolist(), skip_special_tokens=False)

    def to_json(self) -> dict:
        return json.loads(self.tokenizer.to_str())


def _is_hub_id(text: str) -> bool:
    return text.count("/") == 1 and not text.startswith((".", "/", "~"))


def _hub_tokenizer(repo_id: str) -> str:
    from huggingface_hub import hf_hub_download
    try:
        return hf_hub_download(repo_id, "tokenizer.json")
    except Exception as e:            # offline, unknown or gated repo: one line each
        raise BadInput(f"data.tokenizer: hf:{repo_id}: not a local path, and the hub "
                       f"download failed ({type(e).__name__}: "
                       f"{str(e).splitlines()[0][:200] if str(e) else ''})") from None


class SentencePieceTokenizer:
    """A SentencePiece model (unigram or BPE, as trained), held as its serialized model
    proto: the very bytes of its .model file, so that a saved run encodes as it did."""
    kind = "sentencepiece"

    def __init__(self, model: bytes):
        import sentencepiece
        self.model = model
        # LoadFromSerializedProto, not the model_proto= argument, which takes b"" for none.
        self.processor = sentencepiece.SentencePieceProcessor()
        try:
            self.processor.LoadFromSerializedProto(model)
        except RuntimeError:              # the C++ side's one error type
            raise BadInput("tokenizer: not a SentencePiece model") from None
        self.vocab_size = self.processor.get_piece_size()

    @classmethod
    def from_file(cls, path: str) -> "SentencePieceTokenizer":
        try:
            with open(path, "rb") as f:
                return cls(f.read())
        except OSError as e:
            raise BadInput(f"data.tokenizer: {path}: not readable "
                           f"({e.strerror or type(e).__name__})") from None
        except BadInput:
            raise BadInput(f"data.tokenizer: {path}: not a SentencePiece model file") from None

    def encode(self, text: bytes | str) -> np.ndarray:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        return np.asarray(self.processor.encode(text), np.int32)

    def decode(self, ids) -> str:
        return self.processor.decode(np.asarray(ids, np.int32).tolist())

    def to_json(self) -> dict:
        return {"kind": self.kind, "model": base64.b64encode(self.model).decode("ascii")}


def is_hf_json(spec: dict) -> bool:
    """An HF tokenizer.json (not one of ours, which has "kind")."""
    return "kind" not in spec and "model" in spec


# Our special tokens' names, and what a Hugging Face tokenizer may call the same token.
SPECIAL_ALIASES = {"<eos>": ("<eos>", "</s>"), "<bos>": ("<bos>", "<s>")}


def own_specials(base, names) -> dict[str, int]:
    """{name: id} of the `names` that `base` (a Hugging Face tokenizer) already has as
    special tokens: BERT's [CLS], [SEP], [PAD] and [MASK], T5's <pad> and </s>, under
    the ids its pretrained model learned them at."""
    if not isinstance(base, HFTokenizer):
        return {}
    special = {t.content: i for i, t in base.tokenizer.get_added_tokens_decoder().items()
               if t.special}
    own = {}
    for name in names:
        found = [special[a] for a in SPECIAL_ALIASES.get(name, (name,)) if a in special]
        if found:
            own[name] = found[0]
    return own


class WithSpecials:
    """A tokenizer plus named special tokens ("[PAD]", "[MASK]", "<eos>", ...). Those the
    base has as its own special tokens (an HF tokenizer's [CLS], `own`) keep their ids;
    the others follow the base vocabulary, so a text can never encode to one by accident."""

    def __init__(self, base, specials: tuple[str, ...], own: dict[str, int] | None = None):
        self.base, self.specials = base, tuple(specials)
        self.kind = base.kind
        self.base_vocab_size = base.vocab_size
        self.own = dict(own_specials(base, self.specials) if own is None else own)
        self._ids = dict(self.own)
        for name in self.specials:
            if name not in self._ids:
                self._ids[name] = base.vocab_size + len(self._ids) - len(self.own)
        self._names = {i: name for name, i in self._ids.items()}
        self.vocab_size = base.vocab_size + len(self.specials) - len(self.own)

    def id(self, name: str) -> int:
        return self._ids[name]

    def is_special(self, ids) -> np.ndarray:
        """Booleans: which of `ids` are one of the specials."""
        return np.isin(ids, list(self._names))

    def encode(self, text) -> np.ndarray:
        return self.base.encode(text)

    def decode(self, ids, skip_specials: bool = True) -> str:
        """Text of `ids`; specials are dropped, or written as their names."""
        out, run = [], []
        for i in np.asarray(ids).tolist():
            if i not in self._names:
                run.append(i)
                continue
            out.append(self.base.decode(run))
            run = []
            if not skip_specials:
                out.append(self._names[i])
        return "".join(out + [self.base.decode(run)])

    def to_json(self) -> dict:
        # The own ids are saved: a resumed run must not depend on re-deriving them.
        return {**self.base.to_json(), "specials": list(self.specials),
                "own_specials": self.own}


def from_json(spec: dict):
    if spec.get("specials"):             # ours, on top of any base (an HF one too)
        base = from_json({k: v for k, v in spec.items()
                          if k not in ("specials", "own_specials")})
        # Runs saved before own specials existed appended every special.
        return WithSpecials(base, tuple(spec["specials"]), spec.get("own_specials", {}))
    if is_hf_json(spec):
        from tokenizers import Tokenizer
        return HFTokenizer(Tokenizer.from_str(json.dumps(spec)))
    if spec.get("kind") == "byte":
        return ByteTokenizer()
    if spec.get("kind") == "char":
        return CharTokenizer(spec["chars"])
    if spec.get("kind") == "sentencepiece":
        return SentencePieceTokenizer(base64.b64decode(spec["model"], validate=True))
    raise BadInput(f"tokenizer: unknown kind {spec.get('kind')!r} (byte | char | "
                   f"sentencepiece | an HF tokenizer.json)")


# Special tokens that end a text, by the names tokenizers give them.
END_OF_TEXT = ("<eos>", "</s>", "<|endoftext|>", "<|end_of_text|>")


def end_of_text_id(tokenizer) -> int | None:
    """The id of `tokenizer`'s end-of-text token (our <eos>, an HF tokenizer's special
    </s> or <|endoftext|>, a SentencePiece model's eos), or None if it has none."""
    if isinstance(tokenizer, WithSpecials):
        if "<eos>" in tokenizer.specials:
            return tokenizer.id("<eos>")
        return end_of_text_id(tokenizer.base)
    if isinstance(tokenizer, HFTokenizer):
        special = {t.content: i for i, t in
                   tokenizer.tokenizer.get_added_tokens_decoder().items() if t.special}
        return next((special[name] for name in END_OF_TEXT if name in special), None)
    if isinstance(tokenizer, SentencePieceTokenizer):
        eos = tokenizer.processor.eos_id()
        return eos if eos >= 0 else None
    return None


def save(tokenizer, path: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(tokenizer.to_json(), f, ensure_ascii=False)
    os.replace(tmp, path)   # atomic: a crash never leaves half a tokenizer


def load(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return from_json(json.load(f))
    except (OSError, ValueError) as e:
        raise BadInput(f"tokenizer file {path}: {e}") from None


def train_bpe(corpus: bytes, vocab_size: int) -> HFTokenizer:
    """A byte-level BPE (GPT-2's scheme) of `vocab_size` tokens learnt from `corpus` with
    the `tokenizers` library: the 256 byte symbols, then merges by frequency."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet):
        raise BadInput(f"data.tokenizer=bpe:{vocab_size}: the vocabulary needs at least the "
                       f"{len(alphabet)} byte symbols")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=alphabet,
                                  show_progress=False)
    text = corpus.decode("utf-8", errors="replace")
    step = 1 << 20                    # the trainer counts words chunk by chunk, in parallel
    tokenizer.train_from_iterator((text[i:i + step] for i in range(0, len(text), step)),
                                  trainer)
    return HFTokenizer(tokenizer)


def _bpe_size(kind: str) -> int:
    try:
        return int(kind[len("bpe:"):])
    except ValueError:
        raise BadInput(f"data.tokenizer={kind!r}: expected bpe:<vocabulary size>") from None


def build(kind: str, corpus: bytes, specials: tuple[str, ...] = (), heldout: bytes = b""):
    """A tokenizer of `kind` for `corpus`, with `specials` (if any) after its vocabulary.
    `heldout` text only widens a char vocabulary (so that it encodes the eval split); a
    BPE learns from `corpus` alone."""
    if specials:
        return WithSpecials(build(kind, corpus, heldout=heldout), specials)
    if kind == "byte":
        return ByteTokenizer()
    if kind == "char":
        return CharTokenizer.from_text((corpus + heldout).decode("utf-8", errors="replace"))
    if kind.startswith("hf:"):
        return HFTokenizer.from_file(kind[len("hf:"):])
    if kind.startswith("bpe:"):
        return train_bpe(corpus, _bpe_size(kind))
    if kind.startswith("sentencepiece:"):
        return SentencePieceTokenizer.from_file(kind[len("sentencepiece:"):])
    raise BadInput(f"data.tokenizer: unknown tokenizer {kind!r} "
                   f"(byte | char | bpe:<vocabulary size> | hf:<path> | "
                   f"sentencepiece:<model file>)")
