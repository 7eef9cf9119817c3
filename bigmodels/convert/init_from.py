"""`--config.init_from=hf:<dir | hub id>`: fine-tune from a Hugging Face checkpoint in
one step.

The checkpoint is imported once into a cached export (`BIGMODELS_CACHE`, default
~/.cache/bigmodels, keyed by the source's files and the layout), and the run then
starts from that export as from any other `init_from`. The experiment's model takes the
checkpoint's architecture (the fields `model_from_hf` maps: sizes, norms, positions,
...), keeping its own training options (dropout, dtype, remat, scan_layers); its
tokenizer becomes the checkpoint's `tokenizer.json` when there is one, so that ids mean
what the weights learned.
"""

import hashlib
import os

from bigmodels.convert import hf
from bigmodels.errors import BadInput

PREFIX = "hf:"


def cache_root() -> str:
    return os.path.join(os.environ.get("BIGMODELS_CACHE")
                        or os.path.join(os.path.expanduser("~"), ".cache", "bigmodels"),
                        "hf_imports")


def _cache_key(directory: str, scan_layers: bool) -> str:
    """Changes when any file of the source does (path, size, mtime) or the layout does."""
    digest = hashlib.sha256(f"{directory}|{scan_layers}".encode())
    for name in sorted(os.listdir(directory)):
        stat = os.stat(os.path.join(directory, name))
        digest.update(f"|{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def with_architecture(config):
    """(config, HF directory): a copy of `config` whose model has the architecture of its
    `init_from=hf:<source>` and whose tokenizer is the source's (no weights are read);
    `config` itself and None when init_from is not `hf:`."""
    source = str(config.get("init_from", ""))
    if not source.startswith(PREFIX):
        return config, None
    directory = hf.local_dir(source[len(PREFIX):])
    hf_config = hf.read_hf_config(directory)
    arch = hf.architecture(hf_config, directory)
    config = config.copy_and_resolve_references()
    try:
        overrides = arch.model_from_hf(hf_config)
    except KeyError as e:
        raise BadInput(f"init_from={source}: config.json has no {e.args[0]!r}") from None
    for key, value in overrides.items():
        if key not in config.model:
            raise BadInput(f"init_from={source}: model {config.model.get('name')!r} has no "
                           f"field {key!r}, which the {hf_config['model_type']} checkpoint "
                           f"sets (it maps onto model {arch.MODEL_NAME!r})")
        config.model[key] = type(config.model[key])(value)
    if os.path.isfile(os.path.join(directory, hf.HF_TOKENIZER)) and "tokenizer" in config.data:
        config.data.tokenizer = f"hf:{directory}"
    return config, directory


def resolve(config):
    """`with_architecture`, and init_from set to the source's cached export (imported
    on first use). BadInput for a source that does not import or a model with no field
    for what the checkpoint sets."""
    config, directory = with_architecture(config)
    if directory is None:
        return config
    scan_layers = bool(config.model.get("scan_layers", False))
    export = os.path.join(cache_root(), _cache_key(directory, scan_layers))
    if not os.path.isdir(export):
        try:
            hf.import_hf(directory, export, scan_layers=scan_layers)
        except BadInput:
            if not os.path.isdir(export):      # else another process wrote it first
                raise
    config.init_from = export
    return config
