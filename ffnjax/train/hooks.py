"""The trainer's hooks: each is a callable on a `StepInfo`, registered with `Trainer.add_hook(hook, every=n)`.

Hooks run in the order they were added, after the step they are given and before `training_steps()` yields it.
"""

from __future__ import annotations

import logging
import signal
import sys
import time

import jax
import numpy as np

from ffnjax.core import rundir
from ffnjax.data.pipeline import eval_batches
from ffnjax.train import checkpoint as ckpt
from ffnjax.train import mfu as mfu_lib
from ffnjax.train.metrics import progress_line
from ffnjax.train.step import loss_fn


class Preemption:
  """SIGTERM (e.g. TPU preemption) sets a flag; the step it arrives in becomes the final one (saved, logged), then
  the loop ends and the process exits cleanly. Add it first, so the hooks after it see `info.final`."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread (e.g. a notebook worker): no handler, nothing to restore
      self._previous = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning("SIGTERM received: finishing the current step, saving a checkpoint, exiting.")
    self.requested = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)

  def agreed(self) -> bool:
    """All processes stop together: one process's signal stops every process."""
    if jax.process_count() == 1:
      return self.requested
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.array([self.requested]))))

  def __call__(self, info) -> None:
    if self.agreed():
      info.stop(preempted=True)


class Profiler:
  """jax.profiler trace of steps (profile_start, profile_start + profile_steps] into RUN/profile (add every=1)."""

  def __init__(self, trainer):
    cfg = trainer.config.train
    self.directory = rundir.join(trainer.workdir, "profile")
    self.first, self.last = cfg.profile_start, cfg.profile_start + cfg.profile_steps
    self.active = False
    if cfg.profile_start >= 0 and trainer.start == self.first:  # the window opens before this process's first step
      self._start()

  def _start(self):
    jax.profiler.start_trace(self.directory)
    self.active = True

  def __call__(self, info) -> None:
    if self.first < 0:
      return
    if info.step == self.first and not info.final:
      self._start()
    elif self.active and (info.step == self.last or info.final):
      jax.profiler.stop_trace()
      self.active = False


class Validation:
  """Held-out loss (train.eval_batches batches of the validation split) into `info.extra["val_loss"]`; its time is
  left out of the tokens/s window. Add it before MetricsLogger, with every=train.eval_every, final=False."""

  def __init__(self, trainer):
    self.trainer = trainer
    self.eval_fn = jax.jit(
      lambda p, t: loss_fn(trainer.model, p, t), in_shardings=(trainer.shardings["params"], trainer.batch_sharding)
    )

  def __call__(self, info) -> None:
    t = time.perf_counter()
    cfg = self.trainer.config.train
    losses = []
    for local in eval_batches(
      self.trainer.data_cfg,
      global_batch=cfg.global_batch,
      num_batches=cfg.eval_batches,
      process_index=jax.process_index(),
      process_count=jax.process_count(),
    ):
      tokens = jax.make_array_from_process_local_data(self.trainer.batch_sharding, np.asarray(local, np.int32))
      losses.append(float(self.eval_fn(info.state["params"], tokens)))
    info.extra["val_loss"] = float(np.mean(losses))
    self.trainer.pace.exclude(time.perf_counter() - t)


class MetricsLogger:
  """Every train.log_every steps, at the final step and whenever a hook added scalars: the step's scalars (a host
  sync; a non-finite loss stops here), tokens/s and MFU of the post-compile steps since the last row, to every
  metric writer, and a progress line with ETA on stderr. Add it with every=1: it decides which steps it logs."""

  def __init__(self, trainer, writers, show: bool):
    self.trainer, self.writers, self.show = trainer, writers, show
    self.log_every = trainer.config.train.log_every
    self.flops_per_token = trainer.plan.flops_per_token(trainer.data_cfg.seq_len)
    device = trainer.mesh.devices.flat[0]
    peak = mfu_lib.peak_flops_per_device(device)
    if peak is None and device.platform == "cpu":
      peak = mfu_lib.measure_matmul_flops()  # MFU-on-CPU: against a large fp32 matmul measured here
    self.peak_total = peak * trainer.mesh.size if peak else None
    self.last: dict = {}

  def __call__(self, info) -> None:
    if not (info.step % self.log_every == 0 or info.final or info.extra):
      return
    scalars = {**info.scalars(), **self.trainer.pace.window(info.step), **info.extra}
    if self.peak_total and "tokens_per_s" in scalars:
      scalars["mfu"] = self.flops_per_token * scalars["tokens_per_s"] / self.peak_total
    self.writers.write(info.step, scalars)
    if self.show:
      print(
        progress_line(info.step, self.trainer.total, scalars, self.trainer.pace.eta(info.step)),
        file=sys.stderr,
        flush=True,
      )
    self.last = scalars


class Checkpointer:
  """Saves RUN/checkpoints/<step> (Orbax; async unless train.async_checkpoints=False) after checking the loss of
  every step since the last check, so a non-finite loss is never saved. The final step's save is forced (kept
  whatever keep_last says). A context manager: leaving it waits for the last save."""

  def __init__(self, trainer):
    self.trainer = trainer
    self.mngr = ckpt.manager(trainer.workdir, trainer.config.train)

  def __call__(self, info) -> None:
    info.scalars()
    ckpt.save(self.mngr, info.step, info.state, self.trainer.meta(info.step), force=info.final)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.mngr.wait_until_finished()
    self.mngr.close()
