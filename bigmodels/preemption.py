"""SIGTERM means preemption: save the last completed step, then exit with EXIT_PREEMPTED.

Schedulers (SLURM, Kubernetes, TPU maintenance events) send SIGTERM some seconds before
they kill a job. The handler only raises a flag once the train state exists; the loop
checks it after every step and every eval batch, saves synchronously and raises
`Preempted`. Before the state exists (data warm-up) there is nothing to save, so the
handler raises `Preempted` at once. A SIGTERM during the first compile is seen when
the compiled step returns.
"""

import signal
import sys
import threading

EXIT_PREEMPTED = 75    # EX_TEMPFAIL: "try again"; rerunning the same command resumes


class Preempted(BaseException):
    """The run stopped on SIGTERM; `step` is the checkpointed step (None if none).

    A BaseException, like KeyboardInterrupt, so that no `except Exception` on the way
    (ours or a library's) mistakes it for an ordinary error."""

    def __init__(self, step: int | None, workdir: str):
        where = f"saved step {step} in {workdir}" if step is not None else "nothing to save yet"
        super().__init__(f"received SIGTERM: {where}; run the same command again to resume")
        self.step = step


class SigtermWatch:
    """Context manager that turns SIGTERM into a flag (or, early on, an exception)."""

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.received = False
        self.deferred = False       # True once there is a state worth saving
        self._previous = None

    def _handle(self, signum, frame):
        self.received = True
        print("received SIGTERM", file=sys.stderr, flush=True)
        if not self.deferred:
            raise Preempted(None, self.workdir)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
        return False
