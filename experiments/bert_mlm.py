"""BERT masked-LM pretraining on the .py sources of Python's standard library (offline).

Byte-level with BERT's [PAD] [CLS] [SEP] [MASK] tokens; rows are `[CLS] A [SEP] B [SEP]`
of 64 to 128 tokens with 15% of the text tokens masked (80/10/10). Reports eval/loss
and eval/accuracy on the masked tokens of held-out text.

    python -m bigmodels.main --config=experiments/bert_mlm.py --workdir=runs/bert_mlm

Then fine-tune it as a classifier with experiments/bert_classify.py (init_from).
"""

from bigmodels.config import base_config, check_variant, tiny_run
from bigmodels.models.bert import bert_config
from bigmodels.data.text_files import stdlib_sources


VARIANTS = ("tiny",)


def get_config(arg: str = ""):
    check_variant(arg, VARIANTS)
    c = base_config(task="masked_lm", total_steps=800, batch_size=32, log_every=50,
                    eval_every=200, ckpt_every=400)
    c.model = bert_config(name="bert_mlm", num_layers=4, num_heads=4, embed_dim=128,
                          context_length=128, dropout=0.0)
    c.optim.update(name="adamw", lr=1e-3, schedule="warmup_cosine", warmup_steps=80,
                   min_lr=1e-4, b2=0.99, weight_decay=0.01, clip_norm=1.0)
    c.data.kind = "text_mlm"
    c.data.path = stdlib_sources()
    c.data.tokenizer = "byte"
    c.cpu_devices = 0       # on a CPU host, data-parallel over the cores: 348 vs 358 ms/step on 2
    if arg == "tiny":
        tiny_run(c)
        c.data.eval_batches, c.data.max_bytes = 2, 200_000
        c.model.update(num_layers=1, embed_dim=32, num_heads=2, context_length=32)
    return c
