"""Training regimes. A Task turns (model, batch) into a loss and metrics.

Every task implements the same small interface, which is all the trainer knows:

    init(rng, batch)                                -> variables {"params": ..., <state>: ...}
    loss(params, model_state, batch, rng, train)    -> (loss, (metrics, new_model_state))
    eval_sums(params, model_state, batch)           -> {metric: (sum, weight)}
    train_flops_per_example(params)                 -> FLOPs of one example, fwd + bwd
    tokens_per_example                              -> for perf/tokens_per_s

and may add `finalize_eval(sums) -> {metric: value}` for metrics that are not ratios of
sums (macro-F1 from a confusion matrix), `eval_images(params, model_state, batch)` for
image grids written at each eval, and `update_groups`: top-level modules updated one
after another within a step, each by `loss(..., group=name)` (a GAN).
"""

from bigmodels.errors import BadInput
from bigmodels.models import load

# config.task -> "module:Class". A Class with a `from_config(config, model, data)`
# classmethod reads its own options (and may use the built data, e.g. its fitted
# statistics); the others are built as Class(model, seq_len=data.seq_len).
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
    cls = load(TASKS[config.task])
    if hasattr(cls, "from_config"):
        return cls.from_config(config, model, data)
    return cls(model, seq_len=config.data.get("seq_len", 0))
