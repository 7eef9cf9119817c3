"""Training regimes. A Task turns (model, batch) into a loss and metrics.

Every task implements the same small interface, which is all the trainer knows:

    init(rng, batch)                                -> variables {"params": ..., <state>: ...}
    loss(params, model_state, batch, rng, train)    -> (loss, (metrics, new_model_state))
    eval_sums(params, model_state, batch)           -> {metric: (sum, weight)}
    train_flops_per_example(params)                 -> FLOPs of one example, fwd + bwd
    tokens_per_example                              -> for perf/tokens_per_s

and may add `finalize_eval(sums) -> {metric: value}` for metrics that are not ratios of
sums (macro-F1 from a confusion matrix).
"""

from bigmodels.errors import BadInput


def build(config, model):
    if config.task == "causal_lm":
        from bigmodels.tasks.causal_lm import CausalLM
        return CausalLM(model, seq_len=config.data.get("seq_len", 0))
    if config.task == "classify":
        from bigmodels.tasks.classify import Classify
        return Classify(model, seq_len=config.data.get("seq_len", 0))
    raise BadInput(f"task: unknown task {config.task!r} (known: causal_lm, classify)")
