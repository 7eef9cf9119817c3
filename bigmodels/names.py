"""Names shared across layers: the files a run directory holds, token conventions and
the names of params.

A neutral module: it imports nothing from bigmodels, so every layer may use it.
"""

# Files in a run directory (the workdir).
CONFIG_FILE = "config.json"             # the resolved config
TOKENIZER_FILE = "tokenizer.json"       # the run's tokenizer (JSON, never pickled)
PREPROCESS_FILE = "preprocess.json"     # statistics fitted on the train split
CLASSES_FILE = "classes.json"           # class names of a text classification run
# What a data kind's save(workdir) may write: an export copies these beside the params,
# so a new kind that saves another file must add its name here.
DATA_FILES = (TOKENIZER_FILE, PREPROCESS_FILE, CLASSES_FILE)
METRICS_FILE = "metrics.jsonl"          # one JSON object per logged step
CHECKPOINTS_DIR = "checkpoints"
MODEL_STATE = "model_state"             # a checkpoint's non-param collections (BatchNorm)
IMAGES_DIR = "images"                   # sample and reconstruction grids of generative runs

# Token conventions that the data builds and the tasks rely on.
# Seq2seq tokenizers put these specials, in this order, after the base vocabulary, so
# their ids follow from vocab_size alone.
SEQ2SEQ_SPECIALS = ("<pad>", "<bos>", "<eos>")
# Speech transcripts: the space is id 0 (words are split on it); the blank is the last id.
SPEECH_SPACE_ID = 0


def _key_name(key) -> str:
    """One level of a pytree path: a dict key, an attribute name or a sequence index."""
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def path_name(path) -> str:
    """A param's name, e.g. "encoder/block_0/attn/qkv/kernel"."""
    return "/".join(_key_name(k) for k in path)
