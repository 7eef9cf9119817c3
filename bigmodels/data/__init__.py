"""Data: TFDS datasets read without TensorFlow, grain pipelines and tokenizers.

`build(config, workdir, process_index, process_count)` returns an object with
`train` (grain MapDataset of host-local batches, item i = batch of step i+1),
`eval` (a finite MapDataset of held-out batches) and `save(workdir)`.
"""

from bigmodels.errors import BadInput


def build(config, workdir: str, process_index: int = 0, process_count: int = 1):
    if config.data.kind == "text":
        from bigmodels.data import text_lm
        return text_lm.build(config, workdir, process_index, process_count)
    if config.data.kind == "text_classes":
        from bigmodels.data import text_classes
        return text_classes.build(config, workdir, process_index, process_count)
    raise BadInput(f"data.kind: unknown data kind {config.data.kind!r} "
                   f"(known: text, text_classes)")
