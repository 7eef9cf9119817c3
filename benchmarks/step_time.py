"""ms/step, examples/s, tokens/s (token tasks) and MFU of any experiment, measured
through the real trainer.

    python benchmarks/step_time.py --config=experiments/shakespeare_char.py \
        --config.data.path=../shared/data/tinyshakespeare.txt --steps=300

The timing is the trainer's own `perf/step_time_s` (host data + device step, as a user
sees it), over windows of `--window` steps; the first window (compilation) is dropped.
"""

import json
import os
import statistics
import tempfile

import jax
from absl import flags, logging
from ml_collections import config_flags

from bigmodels.cli import run_main
from bigmodels.names import METRICS_FILE

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_STEPS = flags.DEFINE_integer("steps", 300, "Steps to time (after one warm-up window).")
_WINDOW = flags.DEFINE_integer("window", 50, "Steps per timing window.")


def main(argv):
    logging.set_verbosity(logging.ERROR)
    from bigmodels import host_devices, train
    config = _CONFIG.value
    config.total_steps = _STEPS.value + _WINDOW.value
    config.log_every = _WINDOW.value
    config.eval_every = config.ckpt_every = config.total_steps
    config.sample_at_end = ""
    count = host_devices.split_host_cpus(config)    # as bigmodels.main does
    with tempfile.TemporaryDirectory() as workdir:
        train.run(config, workdir)
        with open(os.path.join(workdir, METRICS_FILE)) as f:
            rows = [json.loads(line) for line in f if "perf/step_time_s" in line]
    step_s = statistics.median(r["perf/step_time_s"] for r in rows)
    examples = statistics.median(r["perf/examples_per_s"] for r in rows)
    tokens = ("" if "perf/tokens_per_s" not in rows[0] else
              f"tokens_per_s={statistics.median(r['perf/tokens_per_s'] for r in rows):.0f} ")
    mfu = statistics.median(r["perf/mfu"] for r in rows)
    name = os.path.basename(flags.FLAGS["config"].config_filename)
    print(f"experiment={name} steps={_STEPS.value} ms_per_step={step_s * 1e3:.1f} "
          f"examples_per_s={examples:.0f} {tokens}mfu={mfu:.3f} devices={jax.device_count()}"
          f"{'' if count else ' (device count set outside)'}")


if __name__ == "__main__":
    run_main(main)
