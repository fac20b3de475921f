"""The training loop: build or resume the sharded state, step, log, checkpoint, survive preemption.

Resume is exact: the batch at step s is a pure function of (data seed, s), the optimizer state is restored, and
nothing else carries state, so N steps == k steps + kill + resume + (N - k) steps, bitwise on CPU.
"""

from __future__ import annotations

import logging
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from ffnjax.core import rundir
from ffnjax.core.config import ConfigError, decay_start_step
from ffnjax import model as model_lib
from ffnjax.parallel import logical_sharding, make_mesh
from ffnjax.train import checkpoint as ckpt
from ffnjax.train import experiment
from ffnjax.train import mfu as mfu_lib
from ffnjax.train.metrics import MetricsWriter, Progress
from ffnjax.train.optimizer import make_optimizer
from ffnjax.train.runconfig import config_to_dict, init_run_dir
from ffnjax.train.step import loss_fn, make_train_step


class NonFiniteLoss(FloatingPointError):
  pass


class _Preemption:
  """SIGTERM (e.g. TPU preemption) sets a flag; the loop finishes its step, saves and exits cleanly."""

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


def build_state_shardings(model, optimizer, mesh):
  """Abstract train state (ShapeDtypeStructs with shardings) from the logical rules; nothing allocated."""
  shapes, _ = model_lib.param_shapes(model)
  param_sh = model_lib.param_shardings(model, mesh)
  replicated = NamedSharding(mesh, PartitionSpec())
  opt_shapes = jax.eval_shape(optimizer.init, shapes)
  opt_sh = optax.tree_map_params(optimizer, lambda _, sh: sh, opt_shapes, param_sh,
                                 transform_non_params=lambda _: replicated)
  shardings = {"params": param_sh, "opt_state": opt_sh, "step": replicated}
  abstract = {"params": shapes, "opt_state": opt_shapes, "step": jax.ShapeDtypeStruct((), jnp.int32)}
  return abstract, shardings


def _with_shardings(abstract, shardings):
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)


def train(config, workdir: str, *, max_steps: int | None = None, log: bool = True) -> dict:
  """Trains (or resumes) the run in `workdir`; returns a summary. `max_steps` stops early (tests)."""
  from ffnjax.data import ensure_prepared
  from ffnjax.data.pipeline import TrainData

  plan = experiment.validate(config)
  if config.name != plan.name:  # a command-line override (e.g. of the ratio) changed which model this is
    config = config.copy_and_resolve_references()
    config.name = plan.name
  mesh = make_mesh(config.mesh)
  experiment.check_batch(config, mesh)
  is_lead = jax.process_index() == 0
  data_cfg = config.data.copy_and_resolve_references()
  data_cfg.path = ensure_prepared(data_cfg)
  data = TrainData(data_cfg, global_batch=config.train.global_batch, process_index=jax.process_index(),
                   process_count=jax.process_count())
  if data.vocab_size > config.model.vocab_size:
    raise ConfigError(f"model.vocab_size={config.model.vocab_size} is smaller than the tokenizer's "
                      f"{data.vocab_size} ({config.data.tokenizer})")

  model = model_lib.build(config.model, plan)
  optimizer = make_optimizer(config.train)
  abstract, shardings = build_state_shardings(model, optimizer, mesh)
  data_state = None
  with jax.set_mesh(mesh):
    # The resume checks (and the restore) come before the run directory's first change: a refused resume leaves
    # it byte-identical.
    resumed = ckpt.restore_latest(workdir, _with_shardings(abstract, shardings), plan)
    if resumed is None:
      params = model_lib.init_params(model, jax.random.key(config.seed), mesh)
      opt_state = jax.jit(optimizer.init, out_shardings=shardings["opt_state"])(params)
      state = {"params": params, "opt_state": opt_state, "step": jnp.zeros((), jnp.int32)}
      start = 0
    else:
      restored, meta, start = resumed
      state = {**restored, "step": jax.device_put(jnp.asarray(start, jnp.int32), shardings["step"])}
      data_state = meta.get("data_state")
      logging.info("resumed %s from step %d", workdir, start)
    if is_lead:
      init_run_dir(workdir, config, plan)
    mngr = ckpt.manager(workdir, config.train)

    batch_sharding = logical_sharding(("batch", "length"), (config.train.global_batch, data_cfg.seq_len + 1), mesh)
    step_fn = jax.jit(make_train_step(model, optimizer, config.train),
                      in_shardings=(shardings, batch_sharding), out_shardings=(shardings, None),
                      donate_argnums=0)
    eval_fn = jax.jit(lambda p, t: loss_fn(model, p, t), in_shardings=(shardings["params"], batch_sharding))

    total = config.train.steps if max_steps is None else min(config.train.steps, max_steps)
    pre_decay = decay_start_step(config.train) if config.train.schedule == "wsd" else None
    tokens_per_step = config.train.global_batch * data_cfg.seq_len
    flops_per_token = plan.flops_per_token(data_cfg.seq_len)
    peak = mfu_lib.peak_flops_per_device(mesh.devices.flat[0])
    if peak is None and mesh.devices.flat[0].platform == "cpu":
      peak = mfu_lib.measure_matmul_flops()  # MFU-on-CPU: against a large fp32 matmul measured here
    peak_total = peak * mesh.size if peak else None

    writer = MetricsWriter(workdir, enabled=is_lead)
    progress = Progress(total, start)
    iterator = data.iterator(start)
    if data_state is not None:
      iterator.set_state(data_state)
    pending: list[tuple[int, dict]] = []  # device metrics not yet inspected (avoids a host sync per step)
    window_t, window_steps = time.perf_counter(), 0
    last = {}
    step = start
    preempted = False
    profiling = config.train.profile_start >= 0

    def meta_now(s):
      return {"step": s, "config": config_to_dict(config), "plan": plan.to_json(), "data_state": iterator.get_state()}

    def drain():
      """Inspects pending metrics; raises on a non-finite loss (policy stop) before anything is saved."""
      nonlocal last
      for s, m in pending:
        m = jax.device_get(m)
        if not m["finite"] and config.train.nan_policy == "stop":
          raise NonFiniteLoss(f"non-finite loss {float(m['loss'])} (grad norm {float(m['grad_norm'])}) at step "
                              f"{s}; no checkpoint was written after step {s - 1}. Lower train.peak_lr, check the "
                              f"data, or set train.nan_policy=skip")
        last = {"loss": float(m["loss"]), "grad_norm": float(m["grad_norm"]), "lr": float(m["lr"]),
                "skipped": float(not m["finite"])}
      pending.clear()

    with _Preemption() as preemption:
      while step < total:
        if profiling and step == config.train.profile_start:
          jax.profiler.start_trace(rundir.join(workdir, "profile"))
        local = np.asarray(next(iterator), np.int32)
        tokens = jax.make_array_from_process_local_data(batch_sharding, local)
        state, metrics = step_fn(state, tokens)
        step += 1
        pending.append((step, metrics))
        window_steps += 1
        if profiling and step == config.train.profile_start + config.train.profile_steps:
          jax.profiler.stop_trace()
        stop = preemption.agreed()
        if step % config.train.log_every == 0 or step == total or stop:
          drain()
          elapsed = time.perf_counter() - window_t
          last["tokens_per_s"] = tokens_per_step * window_steps / elapsed
          last["step_time_s"] = elapsed / window_steps
          if peak_total:
            last["mfu"] = flops_per_token * last["tokens_per_s"] / peak_total
          if config.train.eval_every and step % config.train.eval_every == 0:
            last["val_loss"] = _validation_loss(eval_fn, state["params"], data_cfg, config, batch_sharding)
          writer.write(step, last)
          if log and is_lead:
            progress.show(step, last)
          window_t, window_steps = time.perf_counter(), 0
        # A WSD run also saves its last step before the decay: a longer budget extends from it (method.md §3).
        if step % config.train.checkpoint_every == 0 or step == total or stop or step == pre_decay:
          drain()
          ckpt.save(mngr, step, state, meta_now(step), force=stop or step == total)
        if stop:
          preempted = True
          break
    mngr.wait_until_finished()
    mngr.close()
    writer.close()
  return {"step": step, "preempted": preempted, **last}


def _validation_loss(eval_fn, params, data_cfg, config, batch_sharding) -> float:
  from ffnjax.data.pipeline import eval_batches

  losses = []
  for local in eval_batches(data_cfg, global_batch=config.train.global_batch, num_batches=config.train.eval_batches,
                            process_index=jax.process_index(), process_count=jax.process_count()):
    tokens = jax.make_array_from_process_local_data(batch_sharding, np.asarray(local, np.int32))
    losses.append(float(eval_fn(params, tokens)))
  return float(np.mean(losses))
