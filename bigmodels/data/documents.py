"""The documents of a corpus to prepare, cut into units of work that become one shard
each. The plan depends only on the input, never on the number of workers, so a rerun
(after a kill, or with more workers) writes the same shards.

- `.txt` (any file not named below): one document per file, cut at line ends into parts
  of about `part_bytes`; a part that continues a document gets no EOS before it.
A directory contributes its files with these extensions only (`.txt`, `.text`, `.md`,
`.jsonl`, `.parquet`, `.arrow`); files named or globbed are all read.

- `.jsonl`: one document per line, the string at `text_key`; parts of about `part_bytes`
  of lines.
- `.parquet`: one unit per row group, a document per row's `text_key` column.
- `.arrow`: an Arrow IPC file or stream (what `datasets` caches); one unit per file.
"""

import dataclasses
import json
import os

from bigmodels.errors import BadInput

PARQUET = (".parquet",)
ARROW = (".arrow",)
JSONL = (".jsonl",)
TEXT = (".txt", ".text", ".md")
KNOWN = PARQUET + ARROW + JSONL + TEXT


@dataclasses.dataclass(frozen=True)
class Unit:
    """Documents of one file: bytes [start, stop) of a text or jsonl file, or row group
    `start` of a parquet file (stop = start + 1), or a whole arrow file."""
    path: str
    start: int
    stop: int
    continues: bool = False     # a text part that goes on with the previous part's document

    def describe(self) -> dict:
        """What the unit is, down to its file's size and mtime: a changed file is a
        different unit, so a resumed prepare never keeps a shard of its old bytes."""
        st = os.stat(self.path)
        return {"path": os.path.abspath(self.path), "start": self.start, "stop": self.stop,
                "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _kind(path: str) -> str:
    lower = path.lower()
    if lower.endswith(PARQUET):
        return "parquet"
    if lower.endswith(ARROW):
        return "arrow"
    if lower.endswith(JSONL):
        return "jsonl"
    return "text"


def _line_cuts(path: str, part_bytes: int) -> list[int]:
    """Byte offsets that cut the file into parts of about part_bytes, each just after a
    newline (or the file's end)."""
    size = os.path.getsize(path)
    cuts = [0]
    with open(path, "rb") as f:
        while cuts[-1] + part_bytes < size:
            f.seek(cuts[-1] + part_bytes)
            f.readline()                         # to the end of the line we landed in
            cut = f.tell()
            if cut >= size:
                break
            cuts.append(cut)
    return cuts + [size]


def corpus_files(paths: list[str], from_directory: bool) -> list[str]:
    """The files to read: of a directory, only those with a known extension (no
    README, no `dataset_info.json`); files named one by one (or by a glob) all."""
    return [p for p in paths if not from_directory or p.lower().endswith(KNOWN)]


def _clean(text):
    """A document as text the tokenizers take: lone surrogates (which JSON allows)
    become U+FFFD."""
    if isinstance(text, str):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # Through UTF-16, where a lone surrogate fails to decode and is replaced.
            return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def plan(paths: list[str], part_bytes: int) -> list[Unit]:
    units = []
    for path in paths:
        kind = _kind(path)
        if kind == "parquet":
            import pyarrow.parquet as pq
            try:
                groups = pq.ParquetFile(path).metadata.num_row_groups
            except Exception as e:            # pyarrow's own error types
                raise BadInput(f"--input: {path}: not a readable parquet file "
                               f"({str(e).splitlines()[0][:200]})") from None
            units += [Unit(path, g, g + 1) for g in range(groups)]
        elif kind == "arrow":
            units.append(Unit(path, 0, 1))
        else:
            cuts = _line_cuts(path, part_bytes)
            units += [Unit(path, a, b, continues=kind == "text" and i > 0)
                      for i, (a, b) in enumerate(zip(cuts, cuts[1:]))]
    return units


def _text_column(table, path: str, text_key: str) -> list:
    if text_key not in table.column_names:
        raise BadInput(f"--text_key={text_key}: {path} has no such column (columns: "
                       f"{', '.join(table.column_names)})")
    return table.column(text_key).to_pylist()


def _arrow_table(path: str):
    import pyarrow as pa
    with open(path, "rb") as f:
        magic = f.read(6)
    with pa.memory_map(path) as source:
        reader = pa.ipc.open_file(source) if magic == b"ARROW1" else pa.ipc.open_stream(source)
        return reader.read_all()


def documents(unit: Unit, text_key: str):
    """The unit's documents as str (text parts may be raw bytes, decoded by the caller)."""
    kind = _kind(unit.path)
    if kind == "parquet":
        import pyarrow.parquet as pq
        table = pq.ParquetFile(unit.path).read_row_group(unit.start)
        yield from (_clean(t) for t in _text_column(table, unit.path, text_key) if t)
    elif kind == "arrow":
        yield from (_clean(t) for t in _text_column(_arrow_table(unit.path), unit.path,
                                                    text_key) if t)
    else:
        with open(unit.path, "rb") as f:
            f.seek(unit.start)
            data = f.read(unit.stop - unit.start)
        if kind == "text":
            if data:                      # an empty file is no document
                yield data
            return
        for number, line in enumerate(data.splitlines()):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as e:
                raise BadInput(f"--input: {unit.path}: a line after byte {unit.start} "
                               f"(line {number + 1} of its part) is not JSON ({e})") from None
            if not isinstance(record, dict) or text_key not in record:
                raise BadInput(f"--text_key={text_key}: {unit.path} has a record without "
                               f"it (line {number + 1} after byte {unit.start})")
            if record[text_key]:
                yield _clean(record[text_key])
