"""One process of the 2-process test (tests/test_multiprocess.py); not a test itself.

    python tests/multiprocess_worker.py <process_id> <port> <corpus> <workdir> [<out.npz>]
    python tests/multiprocess_worker.py <process_id> <port> <corpus> <workdir> sigterm

The parent sets XLA_FLAGS to 4 fake CPU devices per process. This process joins the
run through `bigmodels.distributed`, records its own rows of the first digits batches
(their example ids) when given an output file, then trains the tiny GPT on the shared
(data=2, fsdp=4) mesh, resuming if the workdir holds a checkpoint. With `sigterm` it
trains until SIGTERM stops it, and exits with EXIT_PREEMPTED as bigmodels.main does.
"""

import os
import sys

import numpy as np

from bigmodels import data as data_lib, distributed, train
from bigmodels.preemption import EXIT_PREEMPTED, Preempted
from helpers import experiment_config, tiny_lm_config

ID_STEPS = 89      # floor(1437 train digits / 16): one epoch
CHECK_EVERY = 5    # preemption_check_every of the sigterm run


def lm_config(corpus: str):
    config = tiny_lm_config(corpus, total_steps=10, ckpt_every=5, eval_every=5, log_every=1)
    config.mesh.update(data=2, fsdp=4, tensor=1)
    config.batch_size = 16
    return config


def main(process_id: int, port: int, corpus: str, workdir: str, out: str = "") -> None:
    config = lm_config(corpus)
    config.distributed.update(coordinator=f"localhost:{port}", num_processes=2,
                              process_id=process_id)
    assert distributed.initialize(config.distributed)
    if out == "sigterm":
        # Long enough never to finish; SIGTERM stops it. Few syncs of any kind, so
        # the processes agree on the flags only at their periodic check.
        config.update(total_steps=10**6, log_every=1, eval_every=10**6, ckpt_every=10**6,
                      preemption_check_every=CHECK_EVERY)
        try:
            train.run(config, workdir)
        except Preempted as e:
            print(f"preempted at step {e.step}", flush=True)
            sys.exit(EXIT_PREEMPTED)
        return
    if out:
        digits = experiment_config("digits_mlp", batch_size=16)
        scratch = os.path.join(os.path.dirname(out), f"scratch_{process_id}")
        data = data_lib.build(digits, scratch, process_id, 2)
        np.savez(out, ids=np.stack([data.train[i]["id"] for i in range(ID_STEPS)]))
    train.run(config, workdir)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:])
