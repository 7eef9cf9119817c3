"""Reading and writing Hugging Face weight files without torch.

A checkpoint directory holds either `model.safetensors` or shards listed by
`model.safetensors.index.json` ({"weight_map": {tensor name: shard file}}). Tensors are
read one at a time with `safetensors.numpy`, so peak host memory is the params being
built plus one tensor, never a second copy of the whole file. A pickled
`pytorch_model.bin` is refused and never opened: unpickling runs arbitrary code.
"""

import json
import os
from collections.abc import Iterator

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from bigmodels.errors import BadInput

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
PICKLED = ("pytorch_model.bin", "pytorch_model.bin.index.json")
MAX_SHARD_BYTES = 5 * 10**9             # transformers' default shard size


def shard_files(directory: str) -> dict[str, list[str]]:
    """{shard file: [tensor names]} of the checkpoint in `directory`."""
    index = os.path.join(directory, INDEX_FILE)
    if os.path.isfile(index):
        try:
            with open(index) as f:
                weight_map = json.load(f)["weight_map"]
        except (OSError, ValueError, KeyError) as e:
            raise BadInput(f"{index}: unreadable ({e})") from None
        files: dict[str, list[str]] = {}
        for name, shard in weight_map.items():
            files.setdefault(shard, []).append(name)
        return files
    single = os.path.join(directory, SINGLE_FILE)
    if os.path.isfile(single):
        return {SINGLE_FILE: None}
    if any(os.path.isfile(os.path.join(directory, p)) for p in PICKLED):
        raise BadInput(f"{directory}: holds only a pickled pytorch_model.bin, which is never "
                       f"loaded here; convert it to {SINGLE_FILE} first (transformers: "
                       f"model.save_pretrained(dir, safe_serialization=True))")
    raise BadInput(f"{directory}: no {SINGLE_FILE} or {INDEX_FILE}")


def tensor_names(directory: str) -> list[str]:
    names = []
    for shard, listed in shard_files(directory).items():
        if listed is None:
            with safe_open(os.path.join(directory, shard), framework="np") as f:
                listed = list(f.keys())
        names.extend(listed)
    return names


def read_tensors(directory: str) -> Iterator[tuple[str, np.ndarray]]:
    """(name, array) for every tensor of the checkpoint in `directory`, one at a time."""
    for shard, listed in shard_files(directory).items():
        path = os.path.join(directory, shard)
        try:
            if listed is None:
                with safe_open(path, framework="np") as f:
                    listed = list(f.keys())
            for name in listed:
                # Opened per tensor: the file is memory-mapped, and its pages stay resident
                # while it is open, which doubled the peak memory of an import.
                with safe_open(path, framework="np") as f:
                    array = f.get_tensor(name)
                yield name, array
        except (OSError, ValueError) as e:       # a missing shard, a truncated file
            raise BadInput(f"{path}: unreadable ({e})") from None


def write_tensors(directory: str, tensors: dict[str, np.ndarray],
                  max_shard_bytes: int = MAX_SHARD_BYTES) -> list[str]:
    """Writes `tensors` as `model.safetensors`, or as numbered shards with an index when
    they exceed `max_shard_bytes`; returns the files written."""
    shards, current, size = [], {}, 0
    for name, array in tensors.items():
        if current and size + array.nbytes > max_shard_bytes:
            shards.append(current)
            current, size = {}, 0
        current[name] = np.ascontiguousarray(array)
        size += array.nbytes
    shards.append(current)
    metadata = {"format": "pt"}          # transformers reads "pt" files with torch or numpy
    if len(shards) == 1:
        save_file(shards[0], os.path.join(directory, SINGLE_FILE), metadata=metadata)
        return [SINGLE_FILE]
    names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map = {}
    for name, shard in zip(names, shards):
        save_file(shard, os.path.join(directory, name), metadata=metadata)
        weight_map.update({tensor: name for tensor in shard})
    total = sum(a.nbytes for a in tensors.values())
    with open(os.path.join(directory, INDEX_FILE), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return names + [INDEX_FILE]
