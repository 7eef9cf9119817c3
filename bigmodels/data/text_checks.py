"""Is a corpus text? Checked by streaming its files before any dataset is prepared.

The char, bpe:, hf: and sentencepiece: tokenizers need UTF-8 text: the first byte that
is not refuses the run, named by file and offset, so every byte the corpus uses is read
(as their builds decode them all anyway). The byte tokenizer takes any bytes, but a NUL
byte in the first SNIFF_BYTES of the corpus means it is most likely a binary (an
executable, an image), so it gets one warning line on stderr.
"""

import codecs
import sys

from bigmodels.errors import BadInput

CHUNK_BYTES = 1 << 20
SNIFF_BYTES = 16 << 20     # of a byte corpus: enough to tell a binary from text


def scan(path: str, limit: int, utf8: bool) -> tuple[int | None, int | None, int]:
    """(offset of the first byte that is not UTF-8 or None, offset of the first NUL or
    None, bytes read) of the first `limit` bytes of `path`. A UTF-8 character cut by
    the limit is not an error: the corpus is cut there too."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    bad = nul = None
    pos = 0
    with open(path, "rb") as f:
        while pos < limit:
            chunk = f.read(min(CHUNK_BYTES, limit - pos))
            if not chunk:
                break
            if nul is None and b"\0" in chunk:
                nul = pos + chunk.index(b"\0")
                if not utf8:                      # all a byte corpus needs to know
                    return None, nul, pos + len(chunk)
            if utf8:
                bad = _decode(decoder, chunk, pos)
                if bad is not None:
                    return bad, nul, pos + len(chunk)
            pos += len(chunk)
    if utf8 and pos < limit:                      # the whole file: it must end whole
        bad = _decode(decoder, b"", pos, final=True)
    return bad, nul, pos


def _decode(decoder, chunk: bytes, pos: int, final: bool = False) -> int | None:
    pending = len(decoder.getstate()[0])          # bytes of a character begun earlier
    try:
        decoder.decode(chunk, final)
    except UnicodeDecodeError as e:
        return pos - pending + e.start
    return None


def check_text(paths: list[str], tokenizer: str, max_bytes: int = 0,
               per_file: bool = False) -> None:
    """Refuses a file that is not UTF-8 for a tokenizer of text (char, bpe:, hf:,
    sentencepiece:); warns once about the first one with NUL bytes. Reads only the bytes
    the corpus uses: `max_bytes` of the files joined, or of each file with `per_file`
    (text_classes); of a byte corpus, at most SNIFF_BYTES in all."""
    utf8 = tokenizer == "char" or tokenizer.startswith(("bpe:", "hf:", "sentencepiece:"))  # text
    budget = max_bytes or sys.maxsize
    sniff = sys.maxsize if utf8 else SNIFF_BYTES
    binary = None
    for path in paths:
        bad, nul, read = scan(path, min(budget, sniff), utf8)
        if bad is not None:
            raise BadInput(f"data.path {path}: not UTF-8 text at byte {bad} "
                           f"(data.tokenizer={tokenizer} needs text; use data.tokenizer=byte for "
                           f"arbitrary bytes)")
        if nul is not None and binary is None:
            binary = (path, nul)
        sniff -= read
        if not per_file:
            budget -= read + 1                    # the files are joined by a newline
        if budget <= 0 or sniff <= 0 or (binary and not utf8):
            break
    if binary:
        print(f"warning: data.path {binary[0]} looks binary, not text (a NUL byte at byte "
              f"{binary[1]}); training on its bytes anyway (data.tokenizer={tokenizer})",
              file=sys.stderr, flush=True)
