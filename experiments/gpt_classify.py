"""A GPT classifier (head on the last token): which standard-library module a passage
of code comes from, the task of lstm_classify.py. Byte-level and shaped like the
quickstart GPT, so it can start from a quickstart run:

    python -m bigmodels.main --config=experiments/gpt_classify.py --workdir=runs/gpt_classify

    # fine-tune the pretrained quickstart LM instead (its LM head is not used; the
    # classifier head starts fresh):
    python -m bigmodels.main --config=experiments/gpt_classify.py --workdir=runs/gpt_classify_ft \
        --config.init_from=runs/quickstart --config.init_from_skip='^classifier/'
"""

from bigmodels.config import base_config, check_variant, tiny_run
from bigmodels.data.text_classes import STDLIB_CLASSES, stdlib_modules
from bigmodels.models.gpt import gpt_config

MODULES = STDLIB_CLASSES


VARIANTS = ("tiny",)


def get_config(arg: str = ""):
    check_variant(arg, VARIANTS)
    c = base_config(task="classify", total_steps=300, batch_size=32, log_every=50,
                    eval_every=100, ckpt_every=300)
    c.model = gpt_config(name="gpt_classifier", num_classes=0, num_layers=4, num_heads=4,
                         embed_dim=128, context_length=128, use_bias=False)
    c.optim.update(name="adamw", lr=1e-3, schedule="warmup_cosine", warmup_steps=30,
                   min_lr=1e-4, weight_decay=0.1, clip_norm=1.0)
    c.data.kind = "text_classes"
    c.data.path = stdlib_modules(*MODULES)
    c.data.tokenizer = "byte"              # the quickstart's, so its embeddings fit
    c.data.eval_batches = 20
    if arg == "tiny":                      # shaped like quickstart.py:tiny
        tiny_run(c)
        c.data.eval_batches = 2
        c.model.update(num_layers=1, embed_dim=32, num_heads=2, context_length=32)
    return c
