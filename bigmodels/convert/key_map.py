"""A key map: one table per architecture that converts params in both directions.

Each `Row` names a Hugging Face tensor, the bigmodels param it becomes and how its
array changes on the way in (`to_ours`) and out (`to_hf`). `{i}` in both names stands
for the layer index. One table serves import and export, so the two cannot drift.

Where HF keeps separate tensors that we fuse into one param (Llama's q, k and v into
`qkv`, its gate and up projections into the MLP's `wi`), each row names its `part`:
(index, axis), the slice of our param it is, along that axis.
"""

import dataclasses
import re
from collections.abc import Callable, Iterable

import numpy as np

from bigmodels.checkpoint.tree import listed
from bigmodels.errors import BadInput


def identity(array: np.ndarray, dims: dict) -> np.ndarray:
    return array


@dataclasses.dataclass(frozen=True)
class Row:
    hf: str                                              # "h.{i}.attn.c_attn.weight"
    ours: str                                            # "block_{i}/attn/qkv/kernel"
    to_ours: Callable[[np.ndarray, dict], np.ndarray] = identity
    to_hf: Callable[[np.ndarray, dict], np.ndarray] = identity
    part: tuple[int, int] | None = None                  # (index, axis) in a fused param


def _pattern(template: str) -> re.Pattern:
    """The names a template stands for: `{i}` matches a layer index."""
    return re.compile("^" + re.escape(template).replace(re.escape("{i}"), r"(\d+)") + "$")


class KeyMap:
    def __init__(self, rows: Iterable[Row], ignored_hf: Iterable[str] = ()):
        self.rows = list(rows)
        self._hf = [(_pattern(r.hf), r) for r in self.rows]
        self._ours = [(_pattern(r.ours), r) for r in self.rows]
        self._ignored = [re.compile(p) for p in ignored_hf]

    @staticmethod
    def _find(name: str, patterns) -> list[tuple[Row, str]]:
        """The rows whose template on one side matches `name`, each with the layer index
        (several only for the parts of a fused param)."""
        found = []
        for pattern, row in patterns:
            match = pattern.match(name)
            if match:
                found.append((row, match.group(1) if match.groups() else ""))
        return found

    def to_ours(self, tensors: Iterable[tuple[str, np.ndarray]], dims: dict,
                expected: dict[str, tuple], place=lambda array: array) -> dict:
        """{our param name: array} from HF (name, array) pairs. `expected` gives every
        param's shape; a missing, unexpected or misshapen tensor is BadInput. `place`
        takes each finished param (e.g. onto a device), so that the tensors as read
        need not all be held at once."""
        out, unexpected, parts = {}, [], {}
        for name, array in tensors:
            found = self._find(name, self._hf)
            if not found:
                if not any(p.search(name) for p in self._ignored):
                    unexpected.append(name)
                continue
            row, index = found[0]
            ours = row.ours.replace("{i}", index)
            if ours not in expected:
                unexpected.append(name)
                continue
            shape = list(expected[ours])
            if row.part is not None:             # one slice of a fused param
                del shape[row.part[1]]
            try:
                converted = row.to_ours(array, dims)
            except ValueError:               # a reshape that the tensor's size cannot take
                converted = None
            if converted is None or list(converted.shape) != shape:
                raise BadInput(f"{name}: shape {tuple(array.shape)} does not fit "
                               f"{ours} {tuple(expected[ours])} of the config")
            if row.part is None:
                out[ours] = place(converted)
                continue
            part_index, axis = row.part
            slices = parts.setdefault(ours, {})
            slices[part_index] = converted
            if len(slices) == expected[ours][axis]:     # every part read: fuse them
                out[ours] = place(np.stack([slices.pop(k) for k in sorted(slices)], axis=axis))
        missing = sorted(set(expected) - set(out))
        if missing or unexpected:
            raise BadInput(f"checkpoint does not match the config: missing {_few(missing)}, "
                           f"unexpected {_few(sorted(unexpected))}")
        return out

    def to_hf(self, params: dict[str, np.ndarray], dims: dict) -> dict[str, np.ndarray]:
        """{HF tensor name: array} from our flat {param name: array}; every param must map."""
        out, unmapped = {}, []
        for name, array in params.items():
            found = self._find(name, self._ours)
            if not found:
                unmapped.append(name)
            for row, index in found:
                array = np.asarray(array)
                part = array if row.part is None else np.take(array, row.part[0], row.part[1])
                out[row.hf.replace("{i}", index)] = np.asarray(row.to_hf(part, dims))
        if unmapped:
            raise BadInput(f"params with no Hugging Face counterpart: {_few(unmapped)}")
        return out


def as_read(tensors):
    """`from_hf_tensors` of an architecture whose key map takes HF's tensors as read."""
    return tensors


def as_mapped(tensors: dict, hf_config: dict) -> tuple[dict, dict]:
    """`to_hf_tensors` of an architecture whose key map gives HF's tensors as written."""
    return tensors, hf_config


def layer_norm(hf: str, ours: str) -> list[Row]:
    """A LayerNorm's rows: HF's weight and bias, our scale and bias."""
    return [Row(f"{hf}.weight", f"{ours}/scale"), Row(f"{hf}.bias", f"{ours}/bias")]


def _few(names: list[str]) -> str:
    return listed(names) if names else "none"
