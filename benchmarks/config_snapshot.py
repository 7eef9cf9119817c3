"""Dumps every experiment's config, for every variant its file knows, as one JSON
object {"<experiment>:<variant>": config}; a refactor that must not change configs
is checked by diffing two dumps (`diff <(python ... before) <(python ... after)`).

    python benchmarks/config_snapshot.py > /tmp/configs.json
"""

import glob
import importlib.util
import json
import os
import re
import sys


def _variants(source: str) -> list[str]:
    """"" plus every string the file compares `arg` with (arg == "x", arg in (...))."""
    found = set(re.findall(r'arg == "([^"]+)"', source))
    if "TFDS_IMAGES" in source:
        from bigmodels.data.tfds_images import KNOWN
        found |= set(KNOWN)
    return [""] + sorted(found)


def snapshot(root: str) -> dict:
    out = {}
    for path in sorted(glob.glob(os.path.join(root, "experiments", "*.py"))):
        name = os.path.basename(path)[:-3]
        spec = importlib.util.spec_from_file_location(f"experiment_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        with open(path) as f:
            variants = _variants(f.read())
        for arg in variants:
            out[f"{name}:{arg}"] = json.loads(module.get_config(arg).to_json())
    return out


if __name__ == "__main__":
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, root)
    json.dump(snapshot(root), sys.stdout, indent=1, sort_keys=True)
    print()
