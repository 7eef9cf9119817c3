"""Pretrained models in and out: Hugging Face checkpoints and tokenizers.

    python -m bigmodels.convert --from_hf=<dir | hub id> --workdir=<new dir>
    python -m bigmodels.convert --to_hf=<new dir> --workdir=<run or export>

Each architecture owns a key map (`key_map.Row`: HF tensor, our param, transform each
way) used in both directions; `hf.py` drives them. Architectures so far: GPT-2.
"""

from bigmodels.convert.hf import export_hf, import_hf

__all__ = ["export_hf", "import_hf"]
