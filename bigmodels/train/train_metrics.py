"""Train metrics: kept on device after each step and fetched only at log, eval and
checkpoint steps (one transfer for all the steps since the last fetch), where the
non-finite policy is applied and the means since the last log line are written."""

import sys
import time

import jax
import numpy as np

from bigmodels import flops
from bigmodels.errors import RunFailed
from bigmodels.train.step import MODULE_GRAD_NORM_PREFIX


class NonFiniteLoss(RunFailed):
    """nan_policy=stop and a step produced a NaN or Inf loss or gradient norm."""


class StepClock:
    """Wall time per train step, over the steps finished since the last restart."""

    def __init__(self):
        self.start, self.steps = None, 0

    def restart(self):
        self.start, self.steps = time.perf_counter(), 0

    def tick(self, steps: int = 1):
        self.steps += steps

    def seconds_per_step(self) -> float | None:
        if self.start is None or self.steps == 0:
            return None
        return (time.perf_counter() - self.start) / self.steps


def non_finite_message(step: int, metrics: dict) -> str:
    norms = ", ".join(f"{k[len(MODULE_GRAD_NORM_PREFIX):]}={float(v):.4g}"
                      for k, v in sorted(metrics.items())
                      if k.startswith(MODULE_GRAD_NORM_PREFIX))
    return (f"non-finite loss or gradient at step {step} (loss={float(metrics['loss']):.4g}, "
            f"grad_norm={float(metrics['grad_norm']):.4g}); the update was not applied; "
            f"per-layer grad norms: {norms}")


class TrainMetrics:
    """The steps' metrics since the last fetch (on device), the finite ones since the
    last log line (on the host), and the log line itself."""

    def __init__(self, config, logger, flops_per_step: float, tokens_per_step: int,
                 window=()):
        self.config, self.logger = config, logger
        self.flops_per_step, self.tokens_per_step = flops_per_step, tokens_per_step
        self.pending = []              # [(step, {name: device scalar})], not yet fetched
        self.window = list(window)     # finite steps' host metrics since the last log line
        self.skipped_in_a_row = 0
        self.clock = StepClock()

    def record(self, step: int, device_metrics: dict) -> None:
        """Keeps a step's metrics on device. Bounds how far the host runs ahead: it
        waits (no transfer) for the step two before, so at most two steps and their
        batches are queued on the devices."""
        self.pending.append((step, device_metrics))
        if len(self.pending) > 2:
            jax.block_until_ready(self.pending[-3][1]["loss"])

    def fetch(self) -> None:
        """Fetches every pending step's metrics in one transfer and applies nan_policy
        to them in step order (raises NonFiniteLoss under `stop`)."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        host = jax.device_get([m for _, m in pending])
        self.clock.tick(len(pending))
        for (step, _), metrics in zip(pending, host):
            if bool(metrics.pop("finite")):
                self.skipped_in_a_row = 0
                self.window.append({f"train/{k}": float(v) for k, v in metrics.items()
                                    if not k.startswith(MODULE_GRAD_NORM_PREFIX)})
                continue
            self._non_finite(step, metrics)

    def _non_finite(self, step: int, metrics: dict) -> None:
        config = self.config
        message = non_finite_message(step, metrics)
        self.logger.write(step, {"train/nonfinite": 1.0})
        self.skipped_in_a_row += 1
        if config.nan_policy == "stop":
            raise NonFiniteLoss(message + "; stopping (nan_policy=stop)")
        if self.skipped_in_a_row > config.nan_skip_limit:
            raise NonFiniteLoss(f"{message}; {self.skipped_in_a_row} steps in a row were "
                                f"non-finite (nan_skip_limit={config.nan_skip_limit})")
        print(f"warning: {message}; going on (nan_policy=skip)", file=sys.stderr, flush=True)

    def log(self, step: int) -> None:
        """Fetches, then writes the means of the finite steps since the last log line
        and the step time, tokens/s, examples/s and MFU over them."""
        self.fetch()
        if not self.window:
            return
        row = {k: float(np.mean([m[k] for m in self.window])) for k in self.window[0]}
        dt = self.clock.seconds_per_step()
        if dt:
            row.update({"perf/step_time_s": dt,
                        "perf/examples_per_s": self.config.batch_size / dt,
                        "perf/mfu": flops.mfu(self.flops_per_step, dt,
                                              self.config.perf.peak_flops_per_device)})
            if self.tokens_per_step:
                row["perf/tokens_per_s"] = self.tokens_per_step / dt
        self.logger.write(step, row)
        self.window.clear()
        self.clock.restart()
