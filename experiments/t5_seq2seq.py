"""A small T5 (encoder-decoder) that reads numbers written in English words and writes
them in digits: "nine hundred and twelve thousand three hundred and seven" -> "912307"
(0 to 999,999; offline, generated data). 10% of all numbers, chosen by a hash of their
words, are held out and never trained on; eval decodes them greedily with the KV cache
and reports eval/exact_match and eval/bleu (on characters) besides loss and accuracy.

    python -m bigmodels.main --config=experiments/t5_seq2seq.py --workdir=runs/t5_seq2seq

Measured on the 2-core CPU machine (1000 steps, the whole command): 2m10s wall while
other runs were winding down (load 3.5 -> 0.6), 3m45s while two other training runs
shared it (load 4-5); 3m44s of CPU time (user + sys) both times. Held-out eval at step 250 / 500 / 750 / 1000:
exact_match 0.61 / 0.80 / 0.979 / 0.995, bleu 48.9 / 78.2 / 98.1 / 99.6.

Reversing letter strings is the other offline task:
`--config.data.transduction=reverse --config.data.size=20 --config.data.source_len=21
--config.data.target_len=21`.
"""

from bigmodels.config import base_config, check_variant, tiny_run
from bigmodels.models.t5 import t5_config


VARIANTS = ("tiny",)


def get_config(arg: str = ""):
    check_variant(arg, VARIANTS)
    c = base_config(task="seq2seq", total_steps=1000, batch_size=48, log_every=50,
                    eval_every=250, ckpt_every=1000)
    c.model = t5_config(num_layers=2, num_decoder_layers=2, num_heads=4, embed_dim=96,
                        mlp_ratio=4, context_length=80, positions="learned")
    c.optim.update(name="adamw", lr=2e-3, schedule="warmup_cosine", warmup_steps=100,
                   min_lr=1e-4, weight_decay=0.01, clip_norm=1.0)
    c.data.kind = "transduction"
    c.cpu_devices = 0       # on a CPU host, data-parallel over the cores: 103 vs 112 ms/step on 2
    c.data.tokenizer = "char"
    c.data.transduction = "number_words"   # number_words | reverse
    c.data.size = 6                        # digits (number_words) or letters (reverse)
    c.data.source_len = 80                 # >= the longest source + <eos>
    c.data.target_len = 8                  # >= the longest target + <eos>
    c.data.val_fraction = 0.1              # sources held out for eval (by hash)
    c.data.eval_batches = 16               # 768 held-out numbers
    if arg == "tiny":
        tiny_run(c)
        c.data.eval_batches = 2
        c.data.size = 3
        c.data.source_len, c.data.target_len = 32, 4
        c.model.update(num_layers=1, num_decoder_layers=1, embed_dim=32, num_heads=2,
                       context_length=32)
    return c
