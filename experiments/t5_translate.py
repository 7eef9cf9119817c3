"""A T5 translating Portuguese TED talk transcripts into English (ted_hrlr_translate,
about 52k training pairs), byte-level, read with `tfds.data_source` (array_record, no
TensorFlow). Online: the first run downloads and prepares the dataset under
data.tfds_dir. Eval decodes the validation pairs greedily and reports eval/bleu (corpus
BLEU-4 on bytes, not words) and eval/exact_match.

    python -m bigmodels.main --config=experiments/t5_translate.py --workdir=runs/t5_translate

Another TFDS translation dataset: `--config.data.name=ted_hrlr_translate/ru_to_en
--config.data.source_key=ru`. Offline smoke run on TFDS mock data:
`--config.data.mock_examples=64`.
"""

from bigmodels.config import base_config, check_variant, tiny_run
from bigmodels.models.t5 import t5_config


VARIANTS = ("tiny",)


def get_config(arg: str = ""):
    check_variant(arg, VARIANTS)
    c = base_config(task="seq2seq", total_steps=50_000, batch_size=64, log_every=100,
                    eval_every=2000, ckpt_every=2000)
    c.model = t5_config(num_layers=6, num_decoder_layers=6, num_heads=8, embed_dim=512,
                        mlp_ratio=4, context_length=256, positions="rotary", dropout=0.1)
    c.optim.update(name="adamw", lr=5e-4, schedule="warmup_cosine", warmup_steps=2000,
                   min_lr=1e-5, weight_decay=0.1, clip_norm=1.0)
    c.data.kind = "translation"
    c.data.tokenizer = "byte"
    c.data.name = "ted_hrlr_translate/pt_to_en"
    c.data.source_key = "pt"
    c.data.target_key = "en"
    c.data.train_split = "train"
    c.data.eval_split = "validation"
    c.data.download = True
    c.data.mock_examples = 0            # > 0: random TFDS mock examples, nothing downloaded
    c.data.source_len = 256             # bytes; longer sides are cut
    c.data.target_len = 256
    c.data.eval_batches = 16
    if arg == "tiny":
        tiny_run(c)
        c.data.mock_examples, c.data.eval_batches = 32, 2
        c.data.source_len, c.data.target_len = 24, 24
        c.model.update(num_layers=1, num_decoder_layers=1, embed_dim=32, num_heads=2,
                       context_length=32, dropout=0.0)
    return c
