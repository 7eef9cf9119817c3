"""SIGTERM means preemption: save the last completed step, then exit with EXIT_PREEMPTED.

Schedulers (SLURM, Kubernetes, TPU maintenance events) send SIGTERM some seconds before
they kill a job. Once a step has finished since the start or the restore, the handler
only raises a flag; the loop checks it, saves synchronously and raises `Preempted`.
One process reads its own flag after every step and eval batch, for free. Several
processes must stop at the same step, so they compare flags (a cross-host collective)
only every `check_every` steps or eval batches and at every checkpoint: a plain step
does no cross-process communication. Before that (data warm-up, restoring, the first
compile) there is nothing new to save, so the handler raises `Preempted` at once
(Python runs it as soon as the main thread is back from C++, e.g. after a compile).
"""

import signal
import threading

EXIT_PREEMPTED = 75    # EX_TEMPFAIL: "try again"; rerunning the same command resumes


def process_count() -> int:
    import jax
    return jax.process_count()


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

    def __init__(self, workdir: str, check_every: int = 1):
        self.workdir = workdir
        self.check_every = max(1, check_every)   # steps between cross-process checks
        self.received = False
        self.deferred = False       # True once a step has finished that is worth saving
        self.saved_step = None      # the step already on disk, reported on an early exit
        self._previous = None

    def _handle(self, signum, frame):
        # Only set a flag (and maybe raise): printing here could re-enter a stderr write.
        self.received = True
        if not self.deferred:
            raise Preempted(self.saved_step, self.workdir)

    def poll(self, index: int, force: bool = False) -> bool:
        """Whether to stop now, at step or eval batch `index`. With several processes
        the flags are compared only when `force` or every `check_every`-th index, the
        same indices on every process."""
        if process_count() == 1:
            return self.received
        if force or index % self.check_every == 0:
            return self.agreed()
        return False

    def agreed(self) -> bool:
        """Whether any process received SIGTERM. With several processes all of them
        must stop at the same step (they share collectives), so they compare flags."""
        if process_count() == 1:
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
