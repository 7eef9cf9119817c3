"""Language-model data from local text: TFDS splits -> tokenizer -> grain windows."""

import dataclasses
import os


from bigmodels.data import text_files, tokenizers
from bigmodels.data.windows import window_batches
from bigmodels.errors import BadInput
from bigmodels.names import TOKENIZER_FILE


@dataclasses.dataclass
class LMData:
    tokenizer: object
    train: object          # grain.MapDataset of host-local batches, indexed by step
    eval: object           # grain.MapDataset of the fixed held-out batches
    train_tokens: int
    eval_tokens: int

    def save(self, workdir: str) -> None:
        tokenizers.save(self.tokenizer, os.path.join(workdir, TOKENIZER_FILE))


def build(config, workdir: str, process_index: int = 0, process_count: int = 1) -> LMData:
    d = config.data
    if config.batch_size % process_count:
        raise BadInput(f"batch_size={config.batch_size} cannot be split over "
                       f"{process_count} processes")
    tokenizer_path = os.path.join(workdir, TOKENIZER_FILE)
    resumed = os.path.exists(tokenizer_path)
    splits = text_files.load_splits(d.path, d.val_fraction, d.max_bytes, d.tfds_dir,
                                     d.tokenizer, resumed)
    if resumed:                                  # keep the run's own vocabulary
        tokenizer = tokenizers.load(tokenizer_path)
    else:
        tokenizer = tokenizers.build(d.tokenizer, splits["train"], heldout=splits["validation"])
    train_ids = tokenizer.encode(splits["train"])
    eval_ids = tokenizer.encode(splits["validation"])
    window = (d.seq_len or config.model.context_length) + 1
    common = dict(window=window, global_batch=config.batch_size, sampling=d.sampling,
                  process_index=process_index, process_count=process_count,
                  packing=d.get("packing", ""), eos_id=tokenizers.end_of_text_id(tokenizer))
    train = window_batches(train_ids, seed=config.seed, **common)
    # Eval always sees the same batches, so the eval curve is not sampling noise.
    common["sampling"] = "random"
    eval_ = window_batches(eval_ids, seed=config.seed + 1_000_003,
                           num_batches=d.eval_batches, **common)
    return LMData(tokenizer, train, eval_, len(train_ids), len(eval_ids))
