"""Pytrees as flat {"a/b/c": leaf} dicts: how checkpoints are compared and matched."""

import jax

from bigmodels.names import path_name

MAX_LISTED = 8      # names listed in one error line before "(+N more)"




def flatten(tree) -> dict:
    """{"params/block_0/attn/qkv/kernel": leaf, ...}: the same names for a TrainState,
    a nested dict or orbax's metadata tree of either."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {path_name(path): leaf for path, leaf in leaves}


def unflatten(flat: dict) -> dict:
    """The inverse of `flatten` for trees of nested dicts."""
    out = {}
    for name, leaf in flat.items():
        *parents, last = name.split("/")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = leaf
    return out


def listed(names) -> str:
    names = sorted(names)
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" (+{len(names) - MAX_LISTED} more)" if len(names) > MAX_LISTED else "")


def shape_diff(expected: dict, found: dict, expected_label: str = "config",
               found_label: str = "checkpoint") -> str | None:
    """One line naming missing keys, unexpected keys and shape mismatches; None if equal.

    Both arguments map names to anything with `.shape`.
    """
    missing = expected.keys() - found.keys()
    unexpected = found.keys() - expected.keys()
    shapes = [f"{n} {tuple(found[n].shape)} in {found_label} vs "
              f"{tuple(expected[n].shape)} in {expected_label}"
              for n in sorted(expected.keys() & found.keys())
              if tuple(expected[n].shape) != tuple(found[n].shape)]
    parts = []
    if missing:
        parts.append(f"missing from {found_label}: {listed(missing)}")
    if unexpected:
        parts.append(f"not in {expected_label}: {listed(unexpected)}")
    if shapes:
        more = f" (+{len(shapes) - MAX_LISTED} more)" if len(shapes) > MAX_LISTED else ""
        parts.append("shape mismatch: " + "; ".join(shapes[:MAX_LISTED]) + more)
    return "; ".join(parts) or None
