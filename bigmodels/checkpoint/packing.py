"""Packed on-disk forms of arrays, pure numpy: what an export stores in fewer bytes than
orbax would, and `load` turns back into the very same arrays.

    int4 values             {"int4_packed": uint8 (ceil(n / 2),), "shape": int64 (ndim,)}
        two values a byte, the first in the low nibble (orbax would spend a byte each)
    sparse arrays (--sparse) {"sparse_mask": uint8 (ceil(n / 8),), "sparse_values":
                              dtype (nnz,), "shape": int64 (ndim,)}
        np.packbits of (x != 0) in C order, then the nonzero values in that order;
        used only where it is smaller than the dense array

A packed array is a dict (a subtree) under the array's own name, so checkpoints and
exports treat it like any other params subtree.
"""

import math

import ml_dtypes
import numpy as np

INT4 = "int4_packed"
MASK = "sparse_mask"
VALUES = "sparse_values"
SHAPE = "shape"
MARKERS = (INT4, MASK)


def is_packed(node) -> bool:
    return isinstance(node, dict) and any(k in node for k in MARKERS)


def pack_int4(x) -> dict:
    flat = np.asarray(x).astype(np.int8).reshape(-1)
    nibbles = (flat.astype(np.uint8) & 0xF)
    if nibbles.size % 2:
        nibbles = np.append(nibbles, np.uint8(0))
    return {INT4: nibbles[0::2] | (nibbles[1::2] << 4),
            SHAPE: np.asarray(np.shape(x), np.int64)}


def unpack_int4(node) -> np.ndarray:
    shape = tuple(int(d) for d in node[SHAPE])
    packed = np.asarray(node[INT4], np.uint8)
    nibbles = np.stack([packed & 0xF, packed >> 4], axis=-1).reshape(-1)[:math.prod(shape)]
    signed = (nibbles.astype(np.int8) ^ 8) - 8          # sign-extend the 4-bit values
    return signed.reshape(shape).astype(ml_dtypes.int4)


def sparse_saves(x) -> bool:
    """Whether the sparse form of `x` is smaller than `x` (and not empty: orbax saves no
    zero-size arrays)."""
    x = np.asarray(x)
    nnz = int(np.count_nonzero(x))
    return x.ndim > 0 and nnz > 0 and math.ceil(x.size / 8) + nnz * x.itemsize < x.nbytes


def pack_sparse(x) -> dict:
    x = np.asarray(x)
    flat = x.reshape(-1)
    nonzero = flat != 0
    return {MASK: np.packbits(nonzero), VALUES: flat[nonzero],
            SHAPE: np.asarray(x.shape, np.int64)}


def unpack_sparse(node) -> np.ndarray:
    shape = tuple(int(d) for d in node[SHAPE])
    values = np.asarray(node[VALUES])
    nonzero = np.unpackbits(np.asarray(node[MASK], np.uint8), count=math.prod(shape))
    flat = np.zeros(math.prod(shape), values.dtype)
    flat[nonzero.astype(bool)] = values
    return flat.reshape(shape)


def unpack(node) -> np.ndarray:
    return unpack_int4(node) if INT4 in node else unpack_sparse(node)


def _is_int4(x) -> bool:
    return getattr(x, "dtype", None) == np.dtype(ml_dtypes.int4)


def pack_tree(tree, sparse: bool = False):
    """`tree` (nested dicts of arrays) with every int4 array packed and, with `sparse`,
    every other array whose sparse form is smaller."""
    if isinstance(tree, dict):
        return {k: pack_tree(v, sparse) for k, v in tree.items()}
    if _is_int4(tree):
        return pack_int4(tree)
    if sparse and sparse_saves(tree):
        return pack_sparse(tree)
    return tree


def unpack_tree(tree):
    """The inverse of `pack_tree`: every packed subtree back to its array."""
    if is_packed(tree):
        return unpack(tree)
    if isinstance(tree, dict):
        return {k: unpack_tree(v) for k, v in tree.items()}
    return tree


def has_packed(names) -> bool:
    """Whether flat checkpoint names (a/b/int4_packed, ...) include a packed array."""
    return any(n.rsplit("/", 1)[-1] in MARKERS for n in names)
