"""SIGTERM means preemption: save the last completed step, then exit with EXIT_PREEMPTED.

Schedulers (SLURM, Kubernetes, TPU maintenance events) send SIGTERM some seconds before
they kill a job. Once a step has finished since the start or the restore, the handler
only raises a flag; the loop checks it after every step and every eval batch, saves
synchronously and raises `Preempted`. Before that (data warm-up, restoring, the first
compile) there is nothing new to save, so the handler raises `Preempted` at once
(Python runs it as soon as the main thread is back from C++, e.g. after a compile).
"""

import signal
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
        self.deferred = False       # True once a step has finished that is worth saving
        self.saved_step = None      # the step already on disk, reported on an early exit
        self._previous = None

    def _handle(self, signum, frame):
        # Only set a flag (and maybe raise): printing here could re-enter a stderr write.
        self.received = True
        if not self.deferred:
            raise Preempted(self.saved_step, self.workdir)

    def agreed(self) -> bool:
        """Whether any process received SIGTERM. With several processes all of them
        must stop at the same step (they share collectives), so they compare flags."""
        import jax
        if jax.process_count() == 1:
            return self.received
        from jax.experimental import multihost_utils
        return bool(multihost_utils.process_allgather(self.received).any())

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
        return False
