"""Grain pipelines that cut a token stream into fixed-length training windows.

Global batch `i` is a pure function of (seed, i): every process computes the same
window offsets and keeps only its own rows. So a resumed run, or the same run on a
different number of processes, sees exactly the same data. The grain iterator's
state (the next batch index) is saved inside every checkpoint.

sampling="random":     each row is a window at a uniformly random offset (nanoGPT).
sampling="sequential": non-overlapping windows, reshuffled every epoch (packing).
"""

import grain
import numpy as np

from bigmodels.errors import BadInput

_INFINITE = 2**62


def rows_for_process(global_batch: int, process_index: int, process_count: int) -> slice:
    per_process = global_batch // process_count
    return slice(process_index * per_process, (process_index + 1) * per_process)


def window_batches(tokens: np.ndarray, window: int, global_batch: int, seed: int,
                   sampling: str = "random", process_index: int = 0,
                   process_count: int = 1, num_batches: int = _INFINITE) -> grain.MapDataset:
    """A MapDataset whose item i is this process's rows of global batch i.

    Each row holds `window` tokens (a model's context + 1, for inputs and shifted targets).
    """
    if len(tokens) < window + 1:
        raise BadInput(f"data: a split has {len(tokens)} tokens, too few for windows of "
                       f"{window} (lower model.context_length or use more text)")
    rows = rows_for_process(global_batch, process_index, process_count)

    if sampling == "random":
        def make_batch(index, _):
            offsets = np.random.default_rng((seed, index)).integers(
                0, len(tokens) - window + 1, size=global_batch)[rows]
            return {"tokens": np.stack([tokens[o:o + window] for o in offsets])}
        return grain.MapDataset.range(num_batches).map_with_index(make_batch)

    if sampling == "sequential":
        num_windows = (len(tokens) - 1) // (window - 1)   # consecutive windows share one token
        if num_windows < global_batch:
            raise BadInput(f"data: {num_windows} windows of {window} tokens cannot fill a "
                           f"batch of {global_batch}")
        # Batch before repeating, so no batch straddles two epochs (and repeats a window).
        starts = grain.MapDataset.range(num_windows).shuffle(seed=seed)
        starts = starts.batch(global_batch, drop_remainder=True).repeat()

        def make_seq_batch(window_ids):
            ids = np.asarray(window_ids)[rows] * (window - 1)
            return {"tokens": np.stack([tokens[o:o + window] for o in ids])}
        ds = starts.map(make_seq_batch)
        return ds if num_batches == _INFINITE else ds[:num_batches]

    raise BadInput(f"data.sampling: unknown sampling {sampling!r} (random | sequential)")
