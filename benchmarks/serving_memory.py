"""Device memory of the params as served: each run or export (float, bf16, int8, int4)
loaded as `bigmodels.predict`, `sample` and `evaluate` load it, then placed on the
first device.

    python benchmarks/serving_memory.py <export> [<export> ...]

Prints the bytes of the placed arrays, and, where the device reports its memory (GPUs,
TPUs), the growth of its bytes in use: what the allocator really holds, which shows
whether int4 is packed two a byte on that device.
"""

import sys

import jax


def _in_use(device) -> int | None:
    stats = device.memory_stats()
    return None if stats is None else stats.get("bytes_in_use")


def main():
    from bigmodels.predict import load_model
    device = jax.devices()[0]
    print(f"device: {device.device_kind} ({jax.default_backend()})\n")
    print("| export | params | array bytes | device bytes in use (growth) |")
    print("|---|---|---|---|")
    for path in sys.argv[1:]:
        before = _in_use(device)         # the loader may place quantized params itself
        loaded = load_model(path)
        placed = jax.block_until_ready(jax.device_put(loaded.params, device))
        after = _in_use(device)
        leaves = jax.tree.leaves(placed)
        growth = "n/a" if before is None else f"{after - before:,}"
        print(f"| {path} | {sum(x.size for x in leaves):,} | "
              f"{sum(x.nbytes for x in leaves):,} | {growth} |")
        del placed, loaded


if __name__ == "__main__":
    main()
