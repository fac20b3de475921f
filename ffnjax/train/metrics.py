"""Metrics sinks: JSONL (the run directory's record), TensorBoard, and a progress line with ETA."""

from __future__ import annotations

import json
import sys
import time

from ffnjax.core import rundir
from ffnjax.core.progress import format_duration


class MetricsWriter:
  def __init__(self, run_dir: str, enabled: bool = True, tensorboard: bool = True):
    self.enabled = enabled
    self._jsonl = rundir.Appender(rundir.join(run_dir, "metrics.jsonl")) if enabled else None
    self._tb = None
    if enabled and tensorboard and rundir.local(run_dir) is None:
      # tensorboardX writes gs:// only through its own GCS client (not etils/gcsfs), appending to an object.
      print(f"TensorBoard events are written for local run directories only; {run_dir}/metrics.jsonl has every "
            f"value", file=sys.stderr)
    elif enabled and tensorboard:
      try:
        from tensorboardX import SummaryWriter
        self._tb = SummaryWriter(rundir.join(rundir.local(run_dir), "tb"))
      except ImportError:  # TensorBoard is optional; the JSONL is the record
        self._tb = None

  def write(self, step: int, metrics: dict) -> None:
    if not self.enabled:
      return
    row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
    self._jsonl.write(json.dumps(row) + "\n")
    if self._tb:
      for k, v in metrics.items():
        self._tb.add_scalar(k, float(v), step)

  def close(self) -> None:
    if self._jsonl:
      self._jsonl.close()
    if self._tb:
      self._tb.close()


class Progress:
  """`step 120/1000 | loss 3.21 | 5.2k tok/s | MFU 41% | ETA 3m10s` on stderr."""

  def __init__(self, total: int, start: int):
    self.total, self.start, self.t0 = total, start, time.perf_counter()

  def line(self, step: int, metrics: dict) -> str:
    done = step - self.start
    elapsed = time.perf_counter() - self.t0
    eta = elapsed / done * (self.total - step) if done else float("nan")
    parts = [f"step {step}/{self.total}", f"loss {metrics['loss']:.4f}", f"lr {metrics['lr']:.2e}"]
    if "tokens_per_s" in metrics:
      parts.append(f"{metrics['tokens_per_s'] / 1e3:.1f}k tok/s")
    if metrics.get("mfu"):
      parts.append(f"MFU {100 * metrics['mfu']:.1f}%")
    parts.append(f"ETA {format_duration(eta)}")
    return " | ".join(parts)

  def show(self, step: int, metrics: dict) -> None:
    print(self.line(step, metrics), file=sys.stderr, flush=True)
