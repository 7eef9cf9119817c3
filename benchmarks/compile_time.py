"""CPU seconds XLA takes to compile the train step of several `:tiny` experiments on 8
simulated CPU devices, under the XLA flags in the environment. It picks the flags that
tests/conftest.py sets to keep the test suite fast. Run each setting in its own process,
side by side, more than once: one machine's figures drift by 10% or more.

    XLA_FLAGS="--xla_backend_optimization_level=0" python benchmarks/compile_time.py
    XLA_FLAGS="--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false" \\
        python benchmarks/compile_time.py

No step runs and no state is made: the step is compiled ahead of time from abstract
shapes (`bigmodels.dry_run.plan`), the persistent compilation cache off.
"""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ["JAX_PLATFORMS"] = "cpu"

import pathlib  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENTS = ("t5_seq2seq", "speech_ctc", "shakespeare_char", "digits_resnet", "bert_classify")


def main() -> None:
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    from absl import logging
    from helpers import experiment_config   # the tests' own :tiny configs
    from bigmodels import dry_run
    logging.set_verbosity(logging.ERROR)
    print(f"XLA_FLAGS={os.environ['XLA_FLAGS']}")
    total = 0.0
    for name in EXPERIMENTS:
        start = time.process_time()
        dry_run.plan(experiment_config(name))
        seconds = time.process_time() - start
        total += seconds
        print(f"{name:18s} {seconds:6.2f} CPU s")
    print(f"{'total':18s} {total:6.2f} CPU s")


if __name__ == "__main__":
    main()
