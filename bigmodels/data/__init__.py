"""Data: TFDS datasets read without TensorFlow, grain pipelines and tokenizers.

`build(config, workdir, process_index, process_count)` returns an object with
`train` (grain MapDataset of host-local batches, item i = batch of step i+1),
`eval` (a finite MapDataset of held-out batches) and `save(workdir)`. In a
multi-process run, process 0 builds first (preparing the shared files) and the others
wait for it.
"""

from bigmodels.errors import BadInput
from bigmodels.registry import load

# data.kind -> "module:function" with the signature of `build` below.
KINDS = {
    "text": "bigmodels.data.text_lm:build",
    "tokens": "bigmodels.data.tokens:build",
    "text_classes": "bigmodels.data.text_classes:build",
    "transduction": "bigmodels.data.seq2seq:build",
    "translation": "bigmodels.data.translation:build",
    "synthetic_speech": "bigmodels.data.espeak:build",
    "tfds_speech": "bigmodels.data.speech_tfds:build",
    "text_mlm": "bigmodels.data.masked_lm:build",
    "tfds_text_classes": "bigmodels.data.tfds_classes:build",
    "toy_datasets": "bigmodels.data.sklearn_data:build",
    "image_folder": "bigmodels.data.image_folder:build",
    "tfds_images": "bigmodels.data.tfds_images:build",
}


def build(config, workdir: str, process_index: int = 0, process_count: int = 1):
    if config.data.kind not in KINDS:
        raise BadInput(f"data.kind: unknown data kind {config.data.kind!r} "
                       f"(known: {', '.join(KINDS)})")
    build_kind = load(KINDS[config.data.kind])
    import jax
    if jax.process_count() == 1:
        return build_kind(config, workdir, process_index, process_count)
    # Several processes: process 0 prepares what is shared (TFDS files, synthesis
    # caches) while the others wait, then they only read it. Two processes preparing
    # one dataset at once on a shared file system would collide.
    from jax.experimental import multihost_utils
    data = build_kind(config, workdir, process_index, process_count) if process_index == 0 \
        else None
    multihost_utils.sync_global_devices("bigmodels: data prepared")
    return data or build_kind(config, workdir, process_index, process_count)
