"""BERT fine-tuning: which standard-library module a passage of code comes from (the
offline task of lstm_classify.py), with a classification head on [CLS].

Start from a bert_mlm.py run (the encoder is loaded, the head starts fresh):

    python -m bigmodels.main --config=experiments/bert_mlm.py --workdir=runs/bert_mlm
    python -m bigmodels.main --config=experiments/bert_classify.py --workdir=runs/bert_classify \
        --config.init_from=runs/bert_mlm

Options: `--config.optim.freeze='^encoder/'` trains the head alone (a linear probe);
`--config.optim.lr_multipliers='^encoder/=0.1'` gives the encoder a tenth of the head's
rate. Without init_from it trains from scratch, the baseline. Reports eval/accuracy and
eval/f1 (macro).

Online, `--config=experiments/bert_classify.py:imdb` fine-tunes on TFDS imdb_reviews
(downloaded and prepared once into data.tfds_dir; no TensorFlow needed).

The classes' text is part of the stdlib corpus that bert_mlm.py saw, unlabelled, as
pretraining text usually overlaps a downstream task's.
"""

from bigmodels.config import base_config, check_variant, tiny_run
from bigmodels.data.text_classes import STDLIB_CLASSES, stdlib_modules
from bigmodels.models.bert import bert_config


VARIANTS = ("tiny", "imdb")  # imdb: online, TFDS imdb_reviews


def get_config(arg: str = ""):
    check_variant(arg, VARIANTS)
    c = base_config(task="classify", total_steps=300, batch_size=32, log_every=50,
                    eval_every=100, ckpt_every=300)
    # Shaped like bert_mlm.py so its encoder loads; its MLM head is not used.
    c.model = bert_config(name="bert_classifier", num_classes=0, num_layers=4, num_heads=4,
                          embed_dim=128, context_length=128, dropout=0.1, pooling="cls")
    c.init_from_skip = "^classifier/,^mlm_"
    c.optim.update(name="adamw", lr=5e-4, schedule="warmup_cosine", warmup_steps=30,
                   min_lr=5e-5, weight_decay=0.01, clip_norm=1.0)
    c.data.kind = "text_classes"
    c.data.path = stdlib_modules(*STDLIB_CLASSES)
    c.data.tokenizer = "byte"              # bert_mlm.py's, so its embeddings fit
    c.data.specials = "bert"
    c.data.eval_batches = 20
    if arg == "imdb":                      # online: movie-review sentiment from TFDS
        c.data.update(kind="tfds_text_classes", name="imdb_reviews", path="",
                      train_split="train", eval_split="test", eval_batches=50)
        c.total_steps = 2000
    if arg == "tiny":                      # shaped like bert_mlm.py:tiny
        tiny_run(c)
        c.data.eval_batches = 2
        c.model.update(num_layers=1, embed_dim=32, num_heads=2, context_length=32)
    return c
