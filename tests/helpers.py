"""Shared test helpers: tiny configs and reading a run's metrics."""

import importlib.util
import json
import os
import pathlib

from bigmodels.config import base_config
from bigmodels.models.gpt import gpt_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"


def experiment_config(name: str, arg: str = "tiny", **top):
    """`get_config(arg)` of experiments/<name>.py, with top-level keys overridden."""
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(arg)
    config.update(top)
    return config


def tiny_lm_config(corpus: str, **top):
    c = base_config()
    c.total_steps, c.batch_size, c.log_every, c.eval_every, c.ckpt_every = 5, 8, 1, 100, 100
    c.model = gpt_config(num_layers=2, num_heads=4, embed_dim=32, context_length=16)
    c.optim.update(name="adamw", lr=3e-3, weight_decay=0.1, clip_norm=1.0)
    c.data.path = corpus
    c.data.tokenizer = "char"
    c.data.eval_batches = 2
    for key, value in top.items():
        c[key] = value
    return c


def read_metrics(workdir: str, key: str = "train/loss") -> dict[int, float]:
    out = {}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            if key in row:
                out[row["step"]] = row[key]
    return out
