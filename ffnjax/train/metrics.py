"""Metric writers (one interface: JSONL, the run directory's record; TensorBoard; Weights & Biases) and the progress
line, whose tokens/s and ETA count only the steps after the compile step."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Protocol

from ffnjax.core import rundir
from ffnjax.core.progress import format_duration


class MetricWriter(Protocol):
  def write(self, step: int, scalars: dict) -> None: ...

  def close(self) -> None: ...


class JsonlWriter:
  """RUN/metrics.jsonl: one `{"step": s, ...}` object per line, durable once written."""

  def __init__(self, run_dir: str):
    self._file = rundir.Appender(rundir.join(run_dir, "metrics.jsonl"))

  def write(self, step: int, scalars: dict) -> None:
    self._file.write(json.dumps({"step": step, **{k: float(v) for k, v in scalars.items()}}) + "\n")

  def close(self) -> None:
    self._file.close()


class TensorBoardWriter:
  """RUN/tb/ event files (tensorboardX; local run directories only)."""

  def __init__(self, run_dir: str):
    from tensorboardX import SummaryWriter

    self._tb = SummaryWriter(rundir.join(rundir.local(run_dir), "tb"))

  def write(self, step: int, scalars: dict) -> None:
    for k, v in scalars.items():
      self._tb.add_scalar(k, float(v), step)

  def close(self) -> None:
    self._tb.close()


class WandbWriter:
  """A Weights & Biases run named after the config, in `project` (WANDB_MODE=offline writes it locally only)."""

  def __init__(self, project: str, run_dir: str, config: dict):
    import wandb  # the [wandb] extra; train.validate names it when it is missing

    # A local run directory holds the W&B files too (RUN/wandb/); for a gs:// one W&B uses its default directory.
    self._run = wandb.init(
      project=project,
      name=config.get("name"),
      config=config,
      dir=rundir.local(run_dir),
      settings=wandb.Settings(console="off", quiet=True),
    )

  def write(self, step: int, scalars: dict) -> None:
    self._run.log({k: float(v) for k, v in scalars.items()}, step=step)

  def close(self) -> None:
    self._run.finish()


class MetricWriters:
  """Every enabled writer behind one `write`/`close` (a context manager); disabled (non-lead processes) = none."""

  def __init__(self, writers: list):
    self.writers = writers

  @classmethod
  def for_run(cls, run_dir: str, train_cfg, config: dict, enabled: bool = True) -> MetricWriters:
    if not enabled:
      return cls([])
    writers = [JsonlWriter(run_dir)]
    if rundir.local(run_dir) is None:
      # tensorboardX writes gs:// only through its own GCS client (not etils/gcsfs), appending to an object.
      print(
        f"TensorBoard events are written for local run directories only; {run_dir}/metrics.jsonl has every value",
        file=sys.stderr,
      )
    else:
      try:
        writers.append(TensorBoardWriter(run_dir))
      except ImportError:  # TensorBoard is optional; the JSONL is the record
        pass
    if train_cfg.get("wandb_project"):
      writers.append(WandbWriter(train_cfg.wandb_project, run_dir, config))
    return cls(writers)

  def write(self, step: int, scalars: dict) -> None:
    for w in self.writers:
      w.write(step, scalars)

  def close(self) -> None:
    for w in self.writers:
      w.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


class Pace:
  """Tokens/s and ETA measured from the end of the compile step on, so neither counts compilation.

  `compiled(step)` marks the end of the first (compiling) step of this process; `window(step)` is the throughput
  since the previous window; `eta(step)` extrapolates the post-compile rate to `total`. `clock` is injectable (tests).
  """

  def __init__(self, total: int, tokens_per_step: int, clock: Callable[[], float] = time.perf_counter):
    self.total, self.tokens_per_step, self.clock = total, tokens_per_step, clock
    self._t0 = self._step0 = None
    self._window = None

  def compiled(self, step: int) -> None:
    self._t0, self._step0 = self.clock(), step
    self._window = (self._t0, step)

  def exclude(self, seconds: float) -> None:
    """Leaves `seconds` of other work (a validation pass) out of the current tokens/s window (not out of the ETA)."""
    if self._window is not None:
      self._window = (self._window[0] + seconds, self._window[1])

  def window(self, step: int) -> dict:
    """{tokens_per_s, step_time_s} over the steps since the previous window; {} when none ran after the compile."""
    if self._window is None or step <= self._window[1]:
      return {}
    now = self.clock()
    t, s = self._window
    self._window = (now, step)
    per_step = (now - t) / (step - s)
    return {"tokens_per_s": self.tokens_per_step / per_step, "step_time_s": per_step}

  def eta(self, step: int) -> float:
    """Seconds to `total` at the post-compile rate; NaN until a step has run after the compile."""
    if self._t0 is None or step <= self._step0:
      return float("nan")
    return (self.clock() - self._t0) / (step - self._step0) * (self.total - step)


def progress_line(step: int, total: int, scalars: dict, eta: float) -> str:
  """`step 120/1000 | loss 3.21 | lr 3.00e-04 | 5.2k tok/s | MFU 41% | ETA 3m10s`."""
  parts = [f"step {step}/{total}", f"loss {scalars['loss']:.4f}", f"lr {scalars['lr']:.2e}"]
  if "tokens_per_s" in scalars:
    parts.append(f"{scalars['tokens_per_s'] / 1e3:.1f}k tok/s")
  if scalars.get("mfu"):
    parts.append(f"MFU {100 * scalars['mfu']:.1f}%")
  if "val_loss" in scalars:
    parts.append(f"val loss {scalars['val_loss']:.4f}")
  parts.append(f"ETA {format_duration(eta)}")
  return " | ".join(parts)
