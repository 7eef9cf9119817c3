"""Hugging Face checkpoints in and out.

Import: HF `config.json` -> our model config (the architecture's own mapping), the
weights through the architecture's key map into our param names and layouts, checked
against the shapes the config gives, and the tokenizer's `tokenizer.json` as the run's
tokenizer. The result is a self-contained export (`bigmodels.checkpoint.exports`):
`bigmodels.sample`, `--config.init_from` and `bigmodels.checkpoint.load` read it.

Export: a run or an export -> `config.json`, `model.safetensors` (sharded with an
index over 5 GB) and the tokenizer files, which transformers' `Auto*` classes load.
"""

import json
import os
import shutil

import jax
import numpy as np

from bigmodels.checkpoint import exports, tree
from bigmodels.config import base_config
from bigmodels.convert import bert, gpt2, llama, safetensors_io, t5, vit
from bigmodels.data import tokenizers
from bigmodels.errors import BadInput
from bigmodels.export import model_params
from bigmodels.names import CONFIG_FILE, TOKENIZER_FILE

# The modules that map an architecture: each has MODEL_TYPES, MODEL_NAME, TASK,
# keys(model), hf_name, model_from_hf, claims(model), hf_from_model, with_hf_options,
# dims, example_inputs, from_hf_tensors and to_hf_tensors (docs/architecture.md,
# "A Hugging Face architecture").
FAMILIES = (gpt2, llama, vit, bert.MASKED_LM, bert.CLASSIFIER, t5)
# model_type in HF's config.json -> the modules that map it. Where there are several
# (BERT's masked LM and classifier), each names HF's classes in HF_ARCHITECTURES.
ARCHITECTURES = {t: tuple(a for a in FAMILIES if t in a.MODEL_TYPES)
                 for arch in FAMILIES for t in arch.MODEL_TYPES}
EXPORTABLE = sorted({arch.MODEL_NAME for arch in FAMILIES})
HF_CONFIG = "config.json"
HF_TOKENIZER = "tokenizer.json"


def local_dir(source: str) -> str:
    """`source` itself when it is a directory; else a hub id, fetched (weights in
    safetensors, config and tokenizer only) into the Hugging Face cache."""
    if os.path.isdir(source):
        return os.path.abspath(source)
    if source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise BadInput(f"--from_hf: {source}: no such directory")
    from huggingface_hub import snapshot_download
    try:
        return snapshot_download(source, allow_patterns=[
            HF_CONFIG, HF_TOKENIZER, "*.safetensors", safetensors_io.INDEX_FILE,
            "tokenizer_config.json", "special_tokens_map.json"])
    except Exception as e:            # offline, unknown repo, gated repo: one line each
        raise BadInput(f"--from_hf: {source}: not a local directory, and the hub download "
                       f"failed ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None


def read_hf_config(directory: str) -> dict:
    path = os.path.join(directory, HF_CONFIG)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise BadInput(f"{path}: not found; not a Hugging Face model directory") from None
    except ValueError as e:
        raise BadInput(f"{path}: not valid JSON ({e})") from None


def architecture(hf_config: dict, path: str):
    model_type = hf_config.get("model_type")
    if model_type not in ARCHITECTURES:
        raise BadInput(f"{path}: model_type {model_type!r} has no mapping here (known: "
                       f"{', '.join(sorted(ARCHITECTURES))})")
    families = ARCHITECTURES[model_type]
    if len(families) == 1:
        return families[0]
    # One model_type, several of our models: HF's class (`architectures`) decides.
    names = hf_config.get("architectures") or [None]
    for arch in families:
        if names[0] in arch.HF_ARCHITECTURES:
            return arch
    known = ", ".join(f"{n} ({a.MODEL_NAME})" for a in families for n in a.HF_ARCHITECTURES)
    raise BadInput(f"{path}: architectures={hf_config.get('architectures')!r} of model_type "
                   f"{model_type!r} has no mapping here (known: {known})")


def run_config(hf_config: dict, directory: str, scan_layers: bool = False):
    """The resolved config an imported model is saved with (`scan_layers`: its blocks as
    one nn.scan, params stacked on a leading layer axis)."""
    from bigmodels.models import model_config
    arch = architecture(hf_config, directory)
    config = base_config()
    config.task = arch.TASK
    try:
        # Only when asked: a model without a scanned layout (BERT) has no such field.
        config.model = model_config(arch.MODEL_NAME, **arch.model_from_hf(hf_config),
                                    **({"scan_layers": True} if scan_layers else {}))
    except KeyError as e:
        raise BadInput(f"{os.path.join(directory, HF_CONFIG)}: no {e.args[0]!r}, which a "
                       f"{hf_config['model_type']} config needs") from None
    if os.path.isfile(os.path.join(directory, HF_TOKENIZER)):
        config.data.tokenizer = f"hf:{directory}"
    return config


def param_shapes(model_config, arch=None) -> dict[str, tuple]:
    """{param name: shape} of the model `model_config` builds, without allocating it;
    `arch.example_inputs` (default: the GPT's) gives the arguments it is called with."""
    from flax import linen as nn
    from bigmodels import models
    model = models.build(model_config)
    inputs = (arch or gpt2).example_inputs(model_config)
    abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), *inputs))["params"]
    return {name: tuple(leaf.shape) for name, leaf in tree.flatten(nn.meta.unbox(abstract)).items()}


def import_hf(source: str, workdir: str, scan_layers: bool = False) -> str:
    """Converts the HF model at `source` (a directory or a hub id) into a new export at
    `workdir`, in the scanned layout with `scan_layers`; returns its absolute path."""
    exports.check_export_out(workdir)
    directory = local_dir(source)
    hf_config = read_hf_config(directory)
    arch = architecture(hf_config, directory)
    safetensors_io.shard_files(directory)        # refuse pickled or absent weights first
    config = run_config(hf_config, directory, scan_layers)
    shapes = param_shapes(arch.with_hf_options(config.model), arch)      # unscanned
    tensors = ((arch.hf_name(n), a) for n, a in safetensors_io.read_tensors(directory))
    tensors = arch.from_hf_tensors(tensors)
    # Each param goes into a jax array as soon as it is complete, and its tensor as read
    # is let go: orbax writes jax arrays without another copy of them all (numpy ones
    # it copies), so the peak stays near the params' own bytes (benchmarks/RESULTS.md).
    flat = arch.keys(config.model).to_ours(
        tensors, arch.dims(config.model), shapes,
        place=lambda a: jax.device_put(np.asarray(a, np.float32)))
    params = tree.unflatten(flat)
    if scan_layers:                              # the key maps name unscanned layers
        from bigmodels.nn.transformer import stack_layers
        params = stack_layers(params, config.model.num_layers)

    def write(tmp: str) -> None:
        exports.save_params(tmp, params, compress=False)    # memory: see save_params
        with open(os.path.join(tmp, CONFIG_FILE), "w") as f:
            f.write(config.to_json(indent=2))
        if os.path.isfile(os.path.join(directory, HF_TOKENIZER)):
            shutil.copyfile(os.path.join(directory, HF_TOKENIZER),
                            os.path.join(tmp, TOKENIZER_FILE))
    return exports.write_atomically(workdir, write)


def export_family(model_config):
    """The architecture a model config exports to: the first family of its model that
    claims it, else the first one (whose `hf_from_model` names the option that has no
    counterpart)."""
    name = model_config.get("name")
    families = [arch for arch in FAMILIES if arch.MODEL_NAME == name]
    if not families:
        raise BadInput(f"model.name={name!r} has no Hugging Face counterpart here (exportable: "
                       f"{', '.join(EXPORTABLE)})")
    return next((a for a in families if a.claims(model_config)), families[0])


def export_hf(workdir: str, out_dir: str, step: int | None = None) -> str:
    """Writes the run or export at `workdir` as an HF model directory at `out_dir`."""
    exports.check_export_out(out_dir)
    source = exports.run_dir(workdir, step)
    config = exports.read_config(source)
    arch = export_family(config.model)
    hf_config = arch.hf_from_model(config.model)
    params = model_params(workdir, step)       # a LoRA run's adapters merged
    if config.model.get("scan_layers"):
        from bigmodels.nn.transformer import unstack_layers
        params = unstack_layers(params, config.model.num_layers)
    flat = {name: np.asarray(a, np.float32) for name, a in tree.flatten(params).items()}
    # Options that HF expresses with zeros (no biases) get them, at the shapes HF expects.
    for name, shape in param_shapes(arch.with_hf_options(config.model), arch).items():
        if name not in flat and name.endswith("/bias"):
            flat[name] = np.zeros(shape, np.float32)
    tensors = arch.keys(config.model).to_hf(flat, arch.dims(config.model))
    tensors, hf_config = arch.to_hf_tensors(tensors, hf_config)
    tokenizer = os.path.join(source, TOKENIZER_FILE)

    def write(tmp: str) -> None:
        safetensors_io.write_tensors(tmp, tensors)
        with open(os.path.join(tmp, HF_CONFIG), "w") as f:
            json.dump(hf_config, f, indent=2)
        if os.path.isfile(tokenizer):
            with open(tokenizer) as f:
                spec = json.load(f)
            if tokenizers.is_hf_json(spec):
                shutil.copyfile(tokenizer, os.path.join(tmp, HF_TOKENIZER))
            elif spec == {"kind": "byte"}:     # ids are byte values: a merge-free byte BPE
                tokenizers.hf_byte_tokenizer().save(os.path.join(tmp, HF_TOKENIZER))
            # A char tokenizer (or one with specials) is not exported yet: weights only.
    return exports.write_atomically(out_dir, write)
