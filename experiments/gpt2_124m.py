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
"""

from bigmodels.config import base_config, check_variant, tiny_run
from bigmodels.data.text_files import stdlib_sources
from bigmodels.models.gpt import gpt_config


VARIANTS = ("tiny",)


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
    if arg == "tiny":
        tiny_run(c)
        c.data.eval_batches, c.data.max_bytes = 2, 200_000
        c.model.update(vocab_size=320, num_layers=1, embed_dim=32, num_heads=2,
                       context_length=32)
    return c
