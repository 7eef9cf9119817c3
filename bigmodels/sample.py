"""Sample text from a trained language model:

    python -m bigmodels.sample --workdir=runs/quickstart --prompt="def " \
        [--max_new_tokens=200 --temperature=0.8 --top_k=0 --top_p=1.0 --seed=0]

temperature=0 is greedy decoding. Uses the run's config.json, tokenizer and latest
checkpoint; works on any device count.
"""

import json
import os

import ml_collections
from absl import flags, logging

from bigmodels.cli import fail, run_main
from bigmodels.names import CONFIG_FILE, TOKENIZER_FILE

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run's workdir.")
_PROMPT = flags.DEFINE_string("prompt", "\n", "Text to continue.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 200, "Tokens to generate.")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.8, "Sampling temperature; 0 = greedy.")
_TOP_K = flags.DEFINE_integer("top_k", 0, "Keep the k most likely tokens; 0 = all.")
_TOP_P = flags.DEFINE_float("top_p", 1.0, "Nucleus sampling mass; 1 = off.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")


def main(argv):
    logging.set_verbosity(logging.ERROR)
    workdir = _WORKDIR.value
    config_path = os.path.join(workdir or "", CONFIG_FILE)
    if not workdir or not os.path.isfile(config_path):
        fail(f"--workdir: no trained run at {workdir!r} ({CONFIG_FILE} missing)")
    if not _PROMPT.value:
        fail("--prompt: must not be empty")
    from bigmodels import checkpoint, generate, models
    from bigmodels.data import tokenizers
    with open(config_path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    tokenizer = tokenizers.load(os.path.join(workdir, TOKENIZER_FILE))
    try:
        params = checkpoint.load(workdir)
    except FileNotFoundError as e:
        fail(str(e))
    model = models.build(config.model)
    print(generate.sample_text(model, params, tokenizer, _PROMPT.value, _MAX_NEW.value,
                               _SEED.value, _TEMPERATURE.value, _TOP_K.value, _TOP_P.value))


if __name__ == "__main__":
    run_main(main)
