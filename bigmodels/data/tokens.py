"""`data.kind=tokens`: language-model windows read from a prepared corpus
(`python -m bigmodels.prepare`) by random access, never loaded whole.

The tokenizer comes from the prepared directory. Batches are `windows.window_batches`
over the split's token stream, so batch i is a pure function of (seed, i) as for
`data.kind=text`, and each process reads only its own rows.
"""

import os

from bigmodels.data import token_shards, tokenizers
from bigmodels.data.text_lm import LMData
from bigmodels.data.windows import window_batches
from bigmodels.errors import BadInput
from bigmodels.names import TOKENIZER_FILE


def build(config, workdir: str, process_index: int = 0, process_count: int = 1) -> LMData:
    d = config.data
    if not d.path:
        raise BadInput("data.path: the directory written by python -m bigmodels.prepare")
    if config.batch_size % process_count:
        raise BadInput(f"batch_size={config.batch_size} cannot be split over "
                       f"{process_count} processes")
    # Process 0 checks every shard's sha256 while the others wait (bigmodels.data.build);
    # they read the same files after it.
    meta, splits = token_shards.open_splits(d.path, check=process_index == 0)
    tokenizer = tokenizers.load(os.path.join(d.path, token_shards.TOKENIZER_FILE))
    saved = os.path.join(workdir, TOKENIZER_FILE)
    if os.path.exists(saved) and tokenizers.load(saved).to_json() != tokenizer.to_json():
        raise BadInput(f"data.path={d.path}: its tokenizer is not the one this run was "
                       f"started with ({saved})")
    window = (d.seq_len or config.model.context_length) + 1
    common = dict(window=window, global_batch=config.batch_size, sampling=d.sampling,
                  process_index=process_index, process_count=process_count,
                  packing=d.get("packing", ""), eos_id=meta.get("eos_id"))
    train = window_batches(splits["train"], seed=config.seed, **common)
    common["sampling"] = "random"
    eval_ = window_batches(splits["validation"], seed=config.seed + 1_000_003,
                           num_batches=d.eval_batches, **common)
    return LMData(tokenizer, train, eval_, len(splits["train"]), len(splits["validation"]))
