"""Eval metrics over the eval batches: outputs stay on device until the last batch
is dispatched, then one transfer brings them all back."""

import jax
import numpy as np


def evaluate(eval_step, state, eval_batches, place, finalize, interrupted=lambda i: False
             ) -> dict | None:
    """{"eval/<metric>": value} from `finalize(sums)` over {metric: (sum, weight)}
    summed over `eval_batches` (host-local batches; `place` makes them global arrays);
    None if `interrupted(i)` turns true before batch i."""
    outputs = []
    for i, local in enumerate(eval_batches):
        if interrupted(i):
            return None
        outputs.append(eval_step(state, place(local)))
    sums = {}
    for out in jax.device_get(outputs):
        for name, (total, weight) in out.items():
            s, w = sums.get(name, (0.0, 0.0))
            sums[name] = (s + np.asarray(total, np.float64), w + float(weight))
    return {f"eval/{k}": float(v) for k, v in finalize(sums).items()}
