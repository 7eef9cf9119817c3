"""Shared test helpers: tiny configs and reading a run's metrics."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

from bigmodels.config import base_config
from bigmodels.models.gpt import gpt_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
TENSORFLOW_STUB = ROOT / "tests" / "fixtures" / "tensorflow_stub"


def load_experiment(path):
    """The module of an experiment file (experiments/<name>.py)."""
    path = str(path)
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def experiment_config(name: str, arg: str = "tiny", **top):
    """`get_config(arg)` of experiments/<name>.py, with top-level keys overridden."""
    config = load_experiment(EXPERIMENTS / f"{name}.py").get_config(arg)
    config.update(top)
    return config


def set_dotted(config, dotted: str, value):
    """`config` with `dotted` ("data.val_fraction") set, added if it is not a key."""
    *parents, leaf = dotted.split(".")
    node = config
    for part in parents:
        node = node[part]
    node[leaf] = value
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


def assert_runs_without_tensorflow(code: str, timeout: float = 600) -> None:
    """Runs `code` in a fresh interpreter (tests/ importable, the session's environment)
    in which `import tensorflow` would succeed, from an empty stub package, and fails
    if anything imported it. A pytest process may already hold modules other tests
    imported, and without the stub an uninstalled TensorFlow could not show up."""
    check = ("\nimport sys\n"
             "tf = sys.modules.get('tensorflow')\n"
             "if tf is not None:\n"
             "    sys.exit('tensorflow was imported:\\n' + tf.IMPORTED_FROM)\n"
             "print('tensorflow was not imported')\n")
    path = [str(TENSORFLOW_STUB), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]
    done = subprocess.run([sys.executable, "-c", code + check], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))},
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-5000:]
    assert "tensorflow was not imported" in done.stdout


def train_wide_tiny_quickstart(workdir: str) -> str:
    """quickstart:tiny widened to ~430k params (so file headers do not dominate byte
    ratios), trained 2 steps into `workdir`."""
    from bigmodels import train
    config = experiment_config("quickstart", "tiny", sample_at_end="", total_steps=2,
                               eval_every=2, ckpt_every=2, log_every=1)
    config.model.update(num_layers=2, embed_dim=128, num_heads=4)
    train.run(config, workdir)
    return workdir
