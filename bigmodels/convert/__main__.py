"""Converts between Hugging Face model directories and bigmodels runs:

    python -m bigmodels.convert --from_hf=<dir | hub id> --workdir=<new dir> [--scan_layers]
    python -m bigmodels.convert --to_hf=<new dir> --workdir=<run or export> [--step=N]
    python -m bigmodels.convert --to_peft=<new dir> --workdir=<LoRA run> [--step=N]

An import writes a self-contained export (params, config.json, tokenizer.json) that
`bigmodels.sample --workdir`, `--config.init_from` and `bigmodels.checkpoint.load` read.
An export writes config.json, model.safetensors (sharded over 5 GB) and tokenizer.json,
which transformers' Auto classes load. Weights are read without torch; a pickled
pytorch_model.bin is refused.
"""

import os

from absl import flags, logging

from bigmodels.cli import fail, run_main

_FROM_HF = flags.DEFINE_string("from_hf", None, "HF model directory or hub id to import.")
_TO_HF = flags.DEFINE_string("to_hf", None, "Directory to create with the HF model.")
_TO_PEFT = flags.DEFINE_string("to_peft", None, "Directory to create with a LoRA run's "
                                "adapters for the peft library.")
_WORKDIR = flags.DEFINE_string("workdir", None,
                               "Import: the directory to create. Export: a run or export.")
_STEP = flags.DEFINE_integer("step", None, "Export: the step; default the latest committed.")
_SCAN_LAYERS = flags.DEFINE_bool("scan_layers", False,
                                 "Import: write the scanned layout (model.scan_layers=True).")


def _size_mb(path: str) -> float:
    return sum(os.path.getsize(os.path.join(root, f))
               for root, _, files in os.walk(path) for f in files) / 1e6


def main(argv):
    if not _WORKDIR.value:
        fail("--workdir: required")
    if sum(bool(f.value) for f in (_FROM_HF, _TO_HF, _TO_PEFT)) != 1:
        fail("give exactly one of --from_hf (import), --to_hf (export) and --to_peft "
             "(a LoRA run's adapters)")
    logging.set_verbosity(logging.ERROR)
    if _TO_PEFT.value:
        from bigmodels.convert import peft
        out = peft.export_peft(_WORKDIR.value, _TO_PEFT.value, _STEP.value)
        print(f"exported the adapters of {_WORKDIR.value} to {out}: "
              f"{', '.join(sorted(os.listdir(out)))}")
        return
    from bigmodels.convert import hf
    if _FROM_HF.value:
        out = hf.import_hf(_FROM_HF.value, _WORKDIR.value, _SCAN_LAYERS.value)
        print(f"imported {_FROM_HF.value} to {out}: {_size_mb(out):.1f} MB")
    else:
        out = hf.export_hf(_WORKDIR.value, _TO_HF.value, _STEP.value)
        print(f"exported {_WORKDIR.value} to {out}: {_size_mb(out):.1f} MB, "
              f"{', '.join(sorted(os.listdir(out)))}")


if __name__ == "__main__":
    run_main(main)
