"""Tasks: each turns (model, batch) into a loss and metrics. `Task` (tasks/base.py)
is the protocol, with the optional capabilities declared; `build` picks one by name."""

from bigmodels.errors import BadInput
from bigmodels.registry import load
from bigmodels.tasks.base import Task

# config.task -> "module:Class", imported only when used; each Class is built by its
# `from_config(config, model, data)` (Task's default: Class(model, seq_len=...)).
TASKS = {
    "autoencode": "bigmodels.tasks.autoencode:Autoencode",
    "vae": "bigmodels.tasks.autoencode:VariationalAutoencode",
    "causal_lm": "bigmodels.tasks.causal_lm:CausalLM",
    "classify": "bigmodels.tasks.classify:Classify",
    "seq2seq": "bigmodels.tasks.seq2seq:Seq2Seq",
    "ctc": "bigmodels.tasks.ctc:CTC",
    "masked_lm": "bigmodels.tasks.masked_lm:MaskedLM",
    "binary_classify": "bigmodels.tasks.binary:BinaryClassify",
    "regress": "bigmodels.tasks.regression:Regress",
    "gan": "bigmodels.tasks.gan:GAN",
}


def build(config, model, data=None):
    if config.task not in TASKS:
        raise BadInput(f"task: unknown task {config.task!r} (known: {', '.join(TASKS)})")
    return load(TASKS[config.task]).from_config(config, model, data)


__all__ = ["TASKS", "Task", "build"]
