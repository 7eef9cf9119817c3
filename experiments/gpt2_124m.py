"""GPT-2 small (124M parameters: 12 layers, 12 heads, width 768, context 1024) for
throughput and MFU on accelerators: bf16 compute with f32 params, cuDNN attention on
GPUs, AdamW as in nanoGPT's GPT-2 recipe.

    python -m bigmodels.main --config=experiments/gpt2_124m.py --workdir=runs/gpt2_124m
    python -m bigmodels.main --config=experiments/gpt2_124m.py --workdir=/tmp/x \\
        --dry_run --target_devices=64 --config.mesh.fsdp=8

The vocabulary is GPT-2's size padded to a multiple of 64 (50304), so the FLOPs are
GPT-2's; the tokens are bytes of the offline stdlib corpus (ids < 256), which is enough
for timing. On a GPU, benchmarks/step_time.py times it through the real trainer:

    python benchmarks/step_time.py --config=experiments/gpt2_124m.py --steps=200 --window=50

and prints ms/step, tokens/s and MFU (formula in bigmodels/flops.py; H100 dense bf16
peak 989 TFLOP/s).

`:fineweb` is GPT-2 small trained for real, on FineWeb-Edu's 10B-token sample with GPT-2's
tokenizer, in llm.c's recipe: batch 2^19 tokens (512 rows of 1024), 19,073 steps (one
pass over 10B tokens), lr 6e-4 after 700 warmup steps, cosine to 0, AdamW 0.9 / 0.95,
weight decay 0.1, clip 1.0. Prepare the corpus once (streamed from the hub by the
`datasets` library), then train:

    python -m bigmodels.prepare --input=hf:HuggingFaceFW/fineweb-edu:sample-10BT:train \
        --tokenizer=hf:gpt2 --out=data/fineweb_edu_10b --val_fraction=0.001
    python -m bigmodels.main --config=experiments/gpt2_124m.py:fineweb \
        --workdir=runs/gpt2_fineweb --config.data.path=data/fineweb_edu_10b

On 8 GPUs that is 64 rows a GPU a step; on fewer, add `--config.grad_accum_steps=N` so
each micro-batch fits. What to compare against: llm.c's GPT-2 124M on FineWeb's 10B
sample reaches a validation loss of about 3.28 and HellaSwag about 0.29-0.30; llm.c and
modded-nanogpt run it at about 460-470k tokens/s per H100, about 40% MFU
(../shared/REFERENCE_NUMBERS.md).
"""

from bigmodels.config import base_config, check_variant, tiny_run
from bigmodels.data.text_files import stdlib_sources
from bigmodels.models.gpt import gpt_config


VARIANTS = ("tiny", "fineweb")
FINEWEB_DIR = "data/fineweb_edu_10b"     # --config.data.path to put it elsewhere


def get_config(arg: str = ""):
    check_variant(arg, VARIANTS)
    c = base_config(total_steps=1000, batch_size=64, log_every=20, eval_every=500,
                    ckpt_every=1000)
    c.model = gpt_config(vocab_size=50304, num_layers=12, num_heads=12, embed_dim=768,
                         context_length=1024, use_bias=False, dtype="bfloat16",
                         attention_impl="cudnn")
    c.optim.update(name="adamw", lr=6e-4, schedule="warmup_cosine", warmup_steps=100,
                   min_lr=6e-5, b1=0.9, b2=0.95, weight_decay=0.1, clip_norm=1.0)
    c.data.path = stdlib_sources()
    c.data.tokenizer = "byte"
    c.data.eval_batches = 4
    if arg == "fineweb":
        c.total_steps, c.batch_size = 19_073, 512
        c.eval_every, c.ckpt_every, c.log_every = 250, 1000, 10
        c.optim.update(warmup_steps=700, min_lr=0.0)
        c.data.update(kind="tokens", path=FINEWEB_DIR, eval_batches=20)
    if arg == "tiny":
        tiny_run(c)
        c.data.eval_batches, c.data.max_bytes = 2, 200_000
        c.model.update(vocab_size=320, num_layers=1, embed_dim=32, num_heads=2,
                       context_length=32)
    return c
