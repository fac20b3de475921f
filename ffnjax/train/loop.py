"""The training loop: a `Trainer` that builds or resumes the sharded state and yields its steps, and the hooks
(ffnjax/train/hooks.py) that checkpoint, log metrics, validate, profile and survive preemption.

Resume is exact: the batch at step s is a pure function of (data seed, s), the optimizer state is restored, and
nothing else carries state, so N steps == k steps + kill + resume + (N - k) steps, bitwise on CPU.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from ffnjax import model as model_lib
from ffnjax.core import meshspec
from ffnjax.core.config import ConfigError, decay_start_step
from ffnjax.data.pipeline import TrainData
from ffnjax.data.prepare import ensure_prepared
from ffnjax.parallel import logical_sharding, make_mesh
from ffnjax.train import checkpoint as ckpt
from ffnjax.train import experiment, hooks
from ffnjax.train.metrics import MetricWriters, Pace
from ffnjax.train.optimizer import make_optimizer
from ffnjax.train.runconfig import config_to_dict, init_run_dir
from ffnjax.train.step import make_train_step


class NonFiniteLoss(FloatingPointError):
  pass


def build_state_shardings(model, optimizer, mesh):
  """Abstract train state (ShapeDtypeStructs with shardings) from the logical rules; nothing allocated."""
  shapes, _ = model_lib.param_shapes(model)
  param_sh = model_lib.param_shardings(model, mesh)
  replicated = NamedSharding(mesh, PartitionSpec())
  opt_shapes = jax.eval_shape(optimizer.init, shapes)
  opt_sh = optax.tree_map_params(
    optimizer, lambda _, sh: sh, opt_shapes, param_sh, transform_non_params=lambda _: replicated
  )
  shardings = {"params": param_sh, "opt_state": opt_sh, "step": replicated}
  abstract = {"params": shapes, "opt_state": opt_shapes, "step": jax.ShapeDtypeStruct((), jnp.int32)}
  return abstract, shardings


def _with_shardings(abstract, shardings):
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)


@dataclasses.dataclass
class StepInfo:
  """One finished step, as the hooks get it and `Trainer.training_steps()` yields it."""

  step: int  # this step's number (1-based): the count of steps done
  state: dict  # {params, opt_state, step} after the step (device arrays; the previous state was donated)
  tokens: int  # tokens this step trained on, all processes together
  step_time_s: float  # host time of this step; asynchronous dispatch except on the compile step, which is waited for
  compile_step: bool  # the first step of this process: it compiled the train step
  final: bool  # the run's last step here: train.steps, max_steps, or a hook's stop()
  scalars: Callable[[], dict]  # host scalars of this step (a device sync that checks every pending step's loss)
  extra: dict = dataclasses.field(default_factory=dict)  # scalars hooks add for the metric writers (val_loss)
  preempted: bool = False

  @property
  def loss(self) -> float:
    return self.scalars()["loss"]

  def stop(self, preempted: bool = False) -> None:
    """Makes this step the final one: the hooks after the caller see `final`, then the loop ends."""
    self.final, self.preempted = True, self.preempted or preempted


@dataclasses.dataclass
class _Hook:
  fn: Callable[[StepInfo], None]
  every: int
  at: frozenset
  final: bool

  def due(self, info: StepInfo) -> bool:
    return info.step % self.every == 0 or info.step in self.at or (self.final and info.final)


class Trainer:
  """The run in `workdir`, checked, built and initialised or restored (the run directory's first change, config.json,
  comes after every resume check); `training_steps()` runs it, calling the hooks added with `add_hook`."""

  def __init__(self, config, workdir: str, *, max_steps: int | None = None, log: bool = True):
    plan = experiment.validate(config)
    if config.name != plan.name:  # a command-line override (e.g. of the ratio) changed which model this is
      config = config.copy_and_resolve_references()
      config.name = plan.name
    self.config, self.plan, self.workdir = config, plan, workdir
    self.mesh = make_mesh(config.mesh)
    experiment.check_batch(config, self.mesh)
    self.is_lead = jax.process_index() == 0
    self.log = log and self.is_lead
    self.data_cfg = config.data.copy_and_resolve_references()
    self.data_cfg.path = ensure_prepared(self.data_cfg)
    self.data = TrainData(
      self.data_cfg,
      global_batch=config.train.global_batch,
      process_index=jax.process_index(),
      process_count=jax.process_count(),
    )
    if self.data.vocab_size > config.model.vocab_size:
      raise ConfigError(
        f"model.vocab_size={config.model.vocab_size} is smaller than the tokenizer's "
        f"{self.data.vocab_size} ({config.data.tokenizer})"
      )
    self.model = model_lib.build(config.model, plan)
    self.optimizer = make_optimizer(config.train)
    abstract, self.shardings = build_state_shardings(self.model, self.optimizer, self.mesh)
    self.mesh_spec = meshspec.format_spec(self.mesh.shape)
    self.say(
      f"{config.name} on mesh {self.mesh_spec} ({self.mesh.size} {self.mesh.devices.flat[0].platform} "
      f"devices): restoring the newest checkpoint or initialising the parameters…"
    )
    with jax.set_mesh(self.mesh):
      self.state, self.start, data_state = self._init_or_restore(abstract)
    if self.is_lead:
      init_run_dir(workdir, config, plan)
    self._iterator = self.data.iterator(self.start)
    if data_state is not None:
      self._iterator.set_state(data_state)
    self.batch_sharding = logical_sharding(
      ("batch", "length"), (config.train.global_batch, self.data_cfg.seq_len + 1), self.mesh
    )
    self.step_fn = jax.jit(
      make_train_step(self.model, self.optimizer, config.train),
      in_shardings=(self.shardings, self.batch_sharding),
      out_shardings=(self.shardings, None),
      donate_argnums=0,
    )
    self.total = config.train.steps if max_steps is None else min(config.train.steps, max_steps)
    self.tokens_per_step = config.train.global_batch * self.data_cfg.seq_len
    self.pace = Pace(self.total, self.tokens_per_step)
    self._hooks: list[_Hook] = []
    self._pending: list[tuple[int, dict]] = []  # device metrics not yet inspected (avoids a host sync per step)
    self._last: dict = {}

  def _init_or_restore(self, abstract):
    resumed = ckpt.restore_latest(self.workdir, _with_shardings(abstract, self.shardings), self.plan)
    if resumed is None:
      params = model_lib.init_params(self.model, jax.random.key(self.config.seed), self.mesh)
      opt_state = jax.jit(self.optimizer.init, out_shardings=self.shardings["opt_state"])(params)
      return {"params": params, "opt_state": opt_state, "step": jnp.zeros((), jnp.int32)}, 0, None
    restored, meta, start = resumed
    logging.info("resumed %s from step %d", self.workdir, start)
    step = jax.device_put(jnp.asarray(start, jnp.int32), self.shardings["step"])
    return {**restored, "step": step}, start, meta.get("data_state")

  def add_hook(self, fn: Callable[[StepInfo], None], every: int = 1, at=(), final: bool = True) -> None:
    """Calls fn(info) after every `every`-th step, after the steps in `at`, and (unless final=False) after the
    run's final step. Hooks run in the order added."""
    self._hooks.append(_Hook(fn, every, frozenset(at), final))

  def say(self, line: str) -> None:
    if self.log:
      print(f"ffnjax.train: {line}", file=sys.stderr, flush=True)

  def meta(self, step: int) -> dict:
    """What a checkpoint of `step` stores besides the arrays: config, layer plan, data-iterator state."""
    return {
      "step": step,
      "config": config_to_dict(self.config),
      "plan": self.plan.to_json(),
      "data_state": self._iterator.get_state(),
    }

  def _scalars(self) -> dict:
    """Inspects pending metrics; raises on a non-finite loss (policy stop) before anything is saved."""
    for s, m in self._pending:
      m = jax.device_get(m)
      if not m["finite"] and self.config.train.nan_policy == "stop":
        raise NonFiniteLoss(
          f"non-finite loss {float(m['loss'])} (grad norm {float(m['grad_norm'])}) at step {s}; "
          f"no checkpoint was written after step {s - 1}. Lower train.peak_lr, check the data, or "
          f"set train.nan_policy=skip"
        )
      self._last = {
        "loss": float(m["loss"]),
        "grad_norm": float(m["grad_norm"]),
        "lr": float(m["lr"]),
        "skipped": float(not m["finite"]),
      }
    self._pending.clear()
    return dict(self._last)

  def training_steps(self) -> Iterator[StepInfo]:
    """Runs the steps from the restored one to the budget, yielding each after its hooks ran."""
    step = self.start
    if step < self.total:
      resumed = f" (resuming from step {step})" if step else ""
      self.say(f"compiling the train step of {self.config.name} on mesh {self.mesh_spec}{resumed}…")
    while step < self.total:
      t = time.perf_counter()
      local = np.asarray(next(self._iterator), np.int32)
      with jax.set_mesh(self.mesh):
        tokens = jax.make_array_from_process_local_data(self.batch_sharding, local)
        self.state, metrics = self.step_fn(self.state, tokens)
        step += 1
        compile_step = step == self.start + 1
        if compile_step:  # waited for, so tokens/s and the ETA start from the end of compilation
          jax.block_until_ready(metrics)
          self.pace.compiled(step)
          self.say(
            f"step {step} compiled and ran in {time.perf_counter() - t:.1f} s; tokens/s and ETA count the "
            f"steps after it"
          )
        self._pending.append((step, metrics))
        info = StepInfo(
          step=step,
          state=self.state,
          tokens=self.tokens_per_step,
          step_time_s=time.perf_counter() - t,
          compile_step=compile_step,
          final=step == self.total,
          scalars=self._scalars,
        )
        for hook in self._hooks:
          if hook.due(info):
            hook.fn(info)
      yield info
      if info.final:
        return


def train(config, workdir: str, *, max_steps: int | None = None, log: bool = True) -> dict:
  """Trains (or resumes) the run in `workdir`; returns a summary. `max_steps` stops early (tests)."""
  trainer = Trainer(config, workdir, max_steps=max_steps, log=log)
  cfg = trainer.config.train
  writers = MetricWriters.for_run(workdir, cfg, config_to_dict(trainer.config), enabled=trainer.is_lead)
  with hooks.Preemption() as preemption, writers, hooks.Checkpointer(trainer) as checkpointer:
    trainer.add_hook(preemption)  # first: the step a SIGTERM arrives in is final for the hooks after it
    trainer.add_hook(hooks.Profiler(trainer))
    if cfg.eval_every:
      trainer.add_hook(hooks.Validation(trainer), every=cfg.eval_every, final=False)
    logger = hooks.MetricsLogger(trainer, writers, show=trainer.log)
    trainer.add_hook(logger)
    # A WSD run also saves its last step before the decay: a longer budget extends from it (method.md §3).
    pre_decay = [decay_start_step(cfg)] if cfg.schedule == "wsd" else []
    trainer.add_hook(checkpointer, every=cfg.checkpoint_every, at=pre_decay)
    last = None
    for info in trainer.training_steps():
      last = info
  return {"step": last.step if last else trainer.start, "preempted": bool(last and last.preempted), **logger.last}
