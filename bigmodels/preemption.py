"""Stop signals: SIGTERM (preemption) and SIGINT (Ctrl-C) save the last finished step.

Schedulers (SLURM, Kubernetes, TPU maintenance events) send SIGTERM some seconds before
they kill a job; a person at a terminal or a notebook's interrupt button sends SIGINT.
Both take the same path. Once a step has finished since the start or the restore, the
handler only raises a flag; the loop checks it, saves synchronously and raises
`Preempted` (SIGTERM, exit 75) or `Interrupted` (SIGINT, a KeyboardInterrupt, exit 130).
One process reads its own flag after every step and eval batch, for free. Several
processes must stop at the same step, so they compare flags (a cross-host collective)
only every `check_every` steps or eval batches and at every checkpoint: a plain step
does no cross-process communication. Before that (data warm-up, restoring, the first
compile) there is nothing new to save, so the handler raises at once (Python runs it
as soon as the main thread is back from C++, e.g. after a compile).

A second Ctrl-C while a stop is under way raises `InterruptedAgain` at once, without
waiting for a save in flight, and names the newest checkpoint known to be committed.
"""

import signal
import threading

EXIT_PREEMPTED = 75      # EX_TEMPFAIL: "try again"; rerunning the same command resumes
EXIT_INTERRUPTED = 130   # 128 + SIGINT, the shell's convention for Ctrl-C
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def process_count() -> int:
    import jax
    return jax.process_count()


def _saved(step: int | None, workdir: str) -> str:
    return f"saved step {step} in {workdir}" if step is not None else "nothing to save yet"


class Preempted(BaseException):
    """The run stopped on SIGTERM; `step` is the checkpointed step (None if none).

    A BaseException, like KeyboardInterrupt, so that no `except Exception` on the way
    (ours or a library's) mistakes it for an ordinary error."""

    def __init__(self, step: int | None, workdir: str):
        super().__init__(f"received SIGTERM: {_saved(step, workdir)}; "
                         "run the same command again to resume")
        self.step = step


class Interrupted(KeyboardInterrupt):
    """The run stopped on Ctrl-C after saving; `step` is the checkpointed step (None if
    none). A KeyboardInterrupt, so notebooks and callers treat it as the interrupt it is."""

    def __init__(self, step: int | None, workdir: str):
        super().__init__(self._message(step, workdir))
        self.step = step

    @staticmethod
    def _message(step, workdir) -> str:
        return (f"interrupted (Ctrl-C): {_saved(step, workdir)}; "
                "run the same command again to resume")


class InterruptedAgain(Interrupted):
    """A second Ctrl-C stopped the run at once; `step` is the newest checkpoint known to
    be on disk (None if none)."""

    @staticmethod
    def _message(step, workdir) -> str:
        newest = (f"step {step} is the newest checkpoint known to be committed in "
                  f"{workdir}" if step is not None
                  else f"no committed checkpoint in {workdir} is known")
        return ("interrupted again (Ctrl-C): stopped at once without waiting for a save; "
                + newest)


class StopSignals:
    """Context manager that turns SIGTERM and SIGINT into a flag (or, early on, an
    exception)."""

    def __init__(self, workdir: str, check_every: int = 1):
        self.workdir = workdir
        self.check_every = max(1, check_every)   # steps between cross-process checks
        self.received = 0           # the first stop signal received, 0 if none
        self.cause = 0              # the signal all processes agreed to stop on
        self.deferred = False       # True once a step has finished that is worth saving
        self.saved_step = None      # the newest step known to be on disk
        self._previous = {}

    def _handle(self, signum, frame):
        # Only set a flag (and maybe raise): printing here could re-enter a stderr write.
        if signum == signal.SIGINT and self.received:
            raise InterruptedAgain(self.saved_step, self.workdir)
        self.received = self.received or signum
        if not self.deferred:
            raise self.stop(self.saved_step, signum)

    def stop(self, step: int | None, signum: int = 0) -> BaseException:
        """The exception to stop with after saving `step`."""
        signum = signum or self.cause or self.received
        cls = Interrupted if signum == signal.SIGINT else Preempted
        return cls(step, self.workdir)

    def poll(self, index: int, force: bool = False) -> bool:
        """Whether to stop now, at step or eval batch `index`. With several processes
        the flags are compared only when `force` or every `check_every`-th index, the
        same indices on every process."""
        if process_count() == 1:
            return bool(self.received)
        if force or index % self.check_every == 0:
            return self.agreed()
        return False

    def agreed(self) -> bool:
        """Whether any process received a stop signal. With several processes all of
        them must stop at the same step (they share collectives), so they compare flags."""
        if process_count() == 1:
            return bool(self.received)
        import numpy as np
        from jax.experimental import multihost_utils
        got = set(multihost_utils.process_allgather(np.int32(self.received)).tolist())
        got.discard(0)
        if got:
            # A scheduler's SIGTERM wins: the job is going away and will be requeued.
            self.cause = signal.SIGTERM if signal.SIGTERM in got else signal.SIGINT
        return bool(got)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc):
        # An enclosing watch (bigmodels.main's) takes over, told first, so that a signal
        # between the two steps is not lost: a Ctrl-C while this stop is still being
        # reported is a second one, and the newest saved step is known to it.
        outer = getattr(self._previous.get(signal.SIGINT), "__self__", None)
        if isinstance(outer, StopSignals):
            outer.received = outer.received or self.received
            if self.saved_step is not None:
                outer.saved_step = self.saved_step
        for signum, previous in self._previous.items():
            if previous is not None:         # None: a handler not set from Python
                signal.signal(signum, previous)
        return False
