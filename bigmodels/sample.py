"""Sample text from a trained causal language model (task causal_lm: GPT, LSTM/GRU):

    python -m bigmodels.sample --workdir=runs/quickstart --prompt="def " \
        [--max_new_tokens=200 --temperature=0.8 --top_k=0 --top_p=1.0 --seed=0]

temperature=0 is greedy decoding. `--workdir` is a run (its latest checkpoint) or an
export of one (bigmodels.export); either way its config.json, tokenizer and params are
used, on any device count. The text ends at the tokenizer's end-of-text token, if it has
one; a prompt and new tokens within the context are decoded on device in one loop
(bigmodels.generate.generate_batch), longer ones by sliding the window.
"""

import os

from absl import flags, logging

from bigmodels.cli import fail, run_main
from bigmodels.export import model_params
from bigmodels.names import TOKENIZER_FILE


def define_flags() -> None:
    """Only when run as a program, so `sample` imports beside other entry points."""
    flags.DEFINE_string("workdir", None, "A training run's workdir or an export.")
    flags.DEFINE_string("prompt", "\n", "Text to continue.")
    flags.DEFINE_integer("max_new_tokens", 200, "Tokens to generate.")
    flags.DEFINE_float("temperature", 0.8, "Sampling temperature; 0 = greedy.")
    flags.DEFINE_integer("top_k", 0, "Keep the k most likely tokens; 0 = all.")
    flags.DEFINE_float("top_p", 1.0, "Nucleus sampling mass; 1 = off.")
    flags.DEFINE_integer("seed", 0, "Sampling seed.")


# Tasks whose model continues a token sequence (generate.py's KV-cache decoding).
CAUSAL_TASKS = ("causal_lm",)


def sample(workdir: str, prompt: str, max_new_tokens: int = 200, seed: int = 0,
           temperature: float = 0.8, top_k: int = 0, top_p: float = 1.0) -> str:
    """`prompt` and its continuation by the run or export in `workdir`."""
    from bigmodels import checkpoint, generate, models, quant
    from bigmodels.data import tokenizers
    from bigmodels.errors import BadInput
    config = checkpoint.read_config(workdir)
    if config.get("task") not in CAUSAL_TASKS:
        raise BadInput(f"--workdir: {workdir} is not a causal language model (task="
                       f"{config.get('task')}, model={config.model.get('name')}); "
                       f"bigmodels.sample needs a {' or '.join(CAUSAL_TASKS)} run")
    if not prompt:
        raise BadInput("--prompt: must not be empty")
    tokenizer = tokenizers.load(os.path.join(workdir, TOKENIZER_FILE))
    # A LoRA run's adapters merged; a quantized export's weights kept quantized.
    model, params = quant.serving(config, models.build(config.model), model_params(workdir))
    return generate.sample_text(model, params, tokenizer, prompt,
                                max_new_tokens, seed, temperature, top_k, top_p)


def main(argv):
    args = flags.FLAGS
    if not args.workdir:
        fail("--workdir: required (a training run or an export)")
    logging.set_verbosity(logging.ERROR)
    print(sample(args.workdir, args.prompt, args.max_new_tokens, args.seed, args.temperature,
                 args.top_k, args.top_p))


if __name__ == "__main__":
    define_flags()
    run_main(main)
