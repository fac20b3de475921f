"""Orbax checkpoints of a run directory: `RUN/checkpoints/<step>/{params,opt_state,meta}`.

Parameters and optimizer state are separate items, so the evaluator restores parameters only. `meta` holds
the config, the layer plan and the data-iterator state. Restoring into ShapeDtypeStructs that carry shardings
re-shards onto any mesh.
"""

from __future__ import annotations

import logging

import jax
import orbax.checkpoint as ocp
from absl import logging as absl_logging
from jax.experimental import multihost_utils

from ffnjax import model as model_lib
from ffnjax.core import rundir
from ffnjax.core.errors import CheckpointError
from ffnjax.core.placement import LayerPlan
from ffnjax.train.runconfig import load_config


class CheckpointMismatch(CheckpointError):
  """A checkpoint that does not fit the config (layer plan or shapes)."""


class CheckpointUnreadable(CheckpointError, RuntimeError):
  """No checkpoint of a run restores."""


def manager(run_dir: str, train_cfg=None, read_only: bool = False) -> ocp.CheckpointManager:
  # Orbax warns on every read-only open ("Given directory is read only", options it resets): expected here, so
  # readers (evaluation, Shapley, conversion) stay quiet.
  verbosity = absl_logging.get_verbosity()
  if read_only:
    absl_logging.set_verbosity(absl_logging.ERROR)
  try:
    options = ocp.CheckpointManagerOptions(
      max_to_keep=train_cfg.keep_last if train_cfg else None,
      keep_period=(train_cfg.keep_every or None) if train_cfg else None,
      enable_async_checkpointing=bool(train_cfg.async_checkpoints) if train_cfg else False,
      create=not read_only,
      read_only=read_only,
    )
    # An epath.Path (not a joined string): Orbax then writes gs:// through tensorstore like a local directory.
    return ocp.CheckpointManager(
      rundir.path(run_dir) / "checkpoints", options=options, item_names=("params", "opt_state", "meta")
    )
  finally:
    absl_logging.set_verbosity(verbosity)


def save(mngr: ocp.CheckpointManager, step: int, state, meta: dict, force: bool = False) -> bool:
  return mngr.save(
    step,
    args=ocp.args.Composite(
      params=ocp.args.StandardSave(state["params"]),
      opt_state=ocp.args.StandardSave(state["opt_state"]),
      meta=ocp.args.JsonSave(meta),
    ),
    force=force,
  )


def read_meta(mngr: ocp.CheckpointManager, step: int) -> dict:
  return mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]


def restore(mngr: ocp.CheckpointManager, step: int, abstract_state):
  """abstract_state: {params, opt_state} of ShapeDtypeStructs with target shardings."""
  out = mngr.restore(
    step,
    args=ocp.args.Composite(
      params=ocp.args.StandardRestore(abstract_state["params"]),
      opt_state=ocp.args.StandardRestore(abstract_state["opt_state"]),
      meta=ocp.args.JsonRestore(),
    ),
  )
  return {"params": out["params"], "opt_state": out["opt_state"]}, out["meta"]


def restore_latest(run_dir: str, abstract_state, plan: LayerPlan):
  """The newest checkpoint that restores -> (state, meta, step); None when the run has no checkpoint.

  A checkpoint that fails to restore (e.g. array files cut short by a crash or a full disk) is skipped for the next
  older one; once one restores, the newer broken ones are set aside (renamed, never deleted) with a one-line
  warning each, so the run goes on from there instead of crashing into the same checkpoint at every relaunch.
  Nothing is moved when no checkpoint restores, or when a layer plan differs from `plan` (CheckpointMismatch: the
  config is what is wrong, not the checkpoint).
  """
  available = sorted(steps(run_dir), reverse=True)
  if not available:
    return None
  mngr = manager(run_dir, read_only=True)
  broken: list[tuple[int, Exception]] = []
  try:
    for step in available:
      try:
        meta = read_meta(mngr, step)
      except Exception as e:  # noqa: BLE001  (any failure to read it means: try the previous one)
        broken.append((step, e))
        continue
      check_plan(meta["plan"], plan)
      try:
        state, meta = restore(mngr, step, abstract_state)
      except Exception as e:  # noqa: BLE001 - as above
        broken.append((step, e))
        continue
      break
    else:
      step, e = broken[0]
      raise CheckpointUnreadable(
        f"{run_dir}: no checkpoint restores (steps {available}); the newest, step {step}: {_first_line(e)}"
      ) from e
  finally:
    mngr.close()
  if broken:
    if jax.process_index() == 0:
      for bad, e in broken:
        dst = set_aside(run_dir, bad)
        logging.warning(
          "checkpoint step %d does not restore (%s); set aside as %s; resuming from step %d",
          bad,
          _first_line(e),
          dst,
          step,
        )
    if jax.process_count() > 1:  # no process opens the manager before the broken steps are out of its way
      multihost_utils.sync_global_devices("ffnjax:checkpoints-set-aside")
  return state, meta, step


def set_aside(run_dir: str, step: int) -> str:
  """RUN/checkpoints/<step> -> RUN/set-aside-checkpoint-<step>[-N] (outside Orbax's directory, kept for a look)."""
  dst = rundir.join(run_dir, f"set-aside-checkpoint-{step}")
  n = 1
  while rundir.exists(dst):
    n += 1
    dst = rundir.join(run_dir, f"set-aside-checkpoint-{step}-{n}")
  rundir.rename(rundir.join(run_dir, "checkpoints", str(step)), dst)
  return dst


def _first_line(e: Exception) -> str:
  text = str(e).strip().splitlines()
  return f"{type(e).__name__}: {text[0][:200] if text else ''}"


def check_plan(saved_plan: dict, plan: LayerPlan) -> None:
  """Names the first difference between a checkpoint's layer plan and the config's."""
  want = plan.to_json()
  for key in ("num_layers", "d_model", "num_heads", "num_kv_heads", "vocab_size", "d_ff"):
    if saved_plan.get(key) != want[key]:
      raise CheckpointMismatch(f"checkpoint has {key}={saved_plan.get(key)} but the config has {key}={want[key]}")
  for i, (st, sw, ct, cw) in enumerate(
    zip(saved_plan["layer_types"], saved_plan["widths"], want["layer_types"], want["widths"])
  ):
    if (st, sw) != (ct, cw):
      raise CheckpointMismatch(
        f"layer {i + 1} is {_describe(st, sw)} in the checkpoint but {_describe(ct, cw)} in the config"
      )


def _describe(layer_type: str, width: int) -> str:
  return f"{layer_type} (d_ff'={width})" if layer_type == "expanded" else layer_type


def steps(run_dir: str) -> list[int]:
  if not rundir.isdir(rundir.join(run_dir, "checkpoints")):
    return []
  return list(manager(run_dir, read_only=True).all_steps())


def restore_params(run_dir: str, step: int | None = None, mesh=None):
  """Parameters only (no optimizer state) -> (params, config, plan), placed on `mesh` (or one device)."""
  config = load_config(run_dir)
  plan = LayerPlan.from_config(config)
  available = steps(run_dir)
  if not available:
    raise FileNotFoundError(f"{run_dir}: no checkpoints under {rundir.join(run_dir, 'checkpoints')}")
  step = max(available) if step is None else step
  if step not in available:
    raise FileNotFoundError(f"{run_dir}: checkpoint step {step} does not exist; available steps: {available}")
  mngr = manager(run_dir, read_only=True)
  check_plan(read_meta(mngr, step)["plan"], plan)
  shapes, shardings = model_lib.placed_param_shapes(model_lib.build(config.model, plan), mesh)
  abstract = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, shardings)
  params = mngr.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore(abstract)))["params"]
  return params, config, plan
