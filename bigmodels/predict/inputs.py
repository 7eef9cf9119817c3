"""What `--input` names, read for each kind of input: lines of text, files (one, a
directory of them, or a list of paths on stdin) and CSV text. Each refuses input that
is not of its kind with one line (BadInput)."""

import os
import sys

from bigmodels.errors import BadInput

STDIN = "-"


def _read_bytes(path: str) -> bytes:
    if path == STDIN:
        return sys.stdin.buffer.read()
    if os.path.isdir(path):
        raise BadInput(f"--input: {path} is a directory; this model reads a text file")
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise BadInput(f"--input: {path} not found") from None
    except OSError as e:
        raise BadInput(f"--input: {path} is unreadable ({e.strerror})") from None


def text(path: str, what: str) -> str:
    """The UTF-8 text of a file or stdin; `what` names the model in the refusal of
    anything else (an image given to a text model)."""
    data = _read_bytes(path)
    try:
        if b"\0" in data:
            raise UnicodeDecodeError("utf-8", data, 0, 1, "NUL byte")
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"--input: {path} is not a UTF-8 text file; {what} reads text") \
            from None


def lines(path: str, what: str) -> list[str]:
    """One input per line of a text file or stdin; blank lines are skipped."""
    found = [line for line in text(path, what).splitlines() if line.strip()]
    if not found:
        raise BadInput(f"--input: {path} holds no lines of text")
    return found


def files(path: str, extensions: tuple, what: str) -> list[str]:
    """The file `path`, the files of directory `path` whose names end in one of
    `extensions` (sorted), or the paths listed one per line on stdin ("-")."""
    if path == STDIN:
        found = [line.strip() for line in sys.stdin.read().splitlines() if line.strip()]
    elif os.path.isdir(path):
        found = [os.path.join(path, f) for f in sorted(os.listdir(path))
                 if f.lower().endswith(extensions)
                 and os.path.isfile(os.path.join(path, f))]
        if not found:
            raise BadInput(f"--input: {path} holds no {what} files "
                           f"({', '.join(extensions)})")
    else:
        found = [path]
    for f in found:
        if not os.path.isfile(f):
            raise BadInput(f"--input: {f} not found")
    if not found:
        raise BadInput("--input: no file paths on stdin")
    return found
