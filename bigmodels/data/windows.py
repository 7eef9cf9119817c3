"""Grain pipelines that cut a token stream into fixed-length training windows.

Global batch `i` is a pure function of (seed, i): every process computes the same
window offsets and keeps only its own rows. So a resumed run, or the same run on a
different number of processes, sees exactly the same data. The grain iterator's
state (the next batch index) is saved inside every checkpoint.

sampling="random":     each row is a window at a uniformly random offset (nanoGPT).
sampling="sequential": non-overlapping windows, reshuffled every epoch (packing).

packing="segmented" (a stream whose documents each begin with EOS, as `prepare` writes
them) adds `segments` (a document's number within its row) and `positions` (counted
from its first token) to every batch: the model attends only within a document.
"""

import grain
import numpy as np

from bigmodels.errors import BadInput

_INFINITE = 2**62


def rows_for_process(global_batch: int, process_index: int, process_count: int) -> slice:
    per_process = global_batch // process_count
    return slice(process_index * per_process, (process_index + 1) * per_process)


def segments_of(tokens_BxW: np.ndarray, eos_id: int) -> dict:
    """Each row's documents, split before every EOS: segment ids (0, 1, ... within the
    row) and positions that restart at 0 on each EOS."""
    starts_BxW = tokens_BxW == eos_id
    segments_BxW = np.cumsum(starts_BxW, axis=1, dtype=np.int32)
    index_W = np.arange(tokens_BxW.shape[1], dtype=np.int32)
    # The index of each token's segment start: a running max of the EOS indices.
    start_BxW = np.maximum.accumulate(np.where(starts_BxW, index_W, 0), axis=1)
    return {"segments": segments_BxW, "positions": (index_W - start_BxW).astype(np.int32)}


def window_batches(tokens: np.ndarray, window: int, global_batch: int, seed: int,
                   sampling: str = "random", process_index: int = 0,
                   process_count: int = 1, num_batches: int = _INFINITE,
                   packing: str = "", eos_id: int | None = None) -> grain.MapDataset:
    """A MapDataset whose item i is this process's rows of global batch i.

    Each row holds `window` tokens (a model's context + 1, for inputs and shifted targets).
    """
    if packing not in ("", "segmented"):
        raise BadInput(f"data.packing: unknown packing {packing!r} (\"\" | segmented)")
    if packing and eos_id is None:
        raise BadInput("data.packing=segmented: needs documents separated by an end-of-text "
                       "token (data.kind=tokens, from python -m bigmodels.prepare)")
    ds = _windows(tokens, window, global_batch, seed, sampling, process_index, process_count,
                  num_batches)
    if packing:
        ds = ds.map(lambda batch: {**batch, **segments_of(batch["tokens"], eos_id)})
    return ds


def _windows(tokens, window: int, global_batch: int, seed: int, sampling: str,
             process_index: int, process_count: int, num_batches: int) -> grain.MapDataset:
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
