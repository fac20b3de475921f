"""Trainer: exact resume across SIGKILL and mesh changes, SIGTERM, accumulation, WSD extension, bad inputs."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from smoke import SMOKE_FLAGS

from ffnjax.train import checkpoint as ckpt
from ffnjax.train.loop import train

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def params_of(run_dir, step=None):
  params, _, _ = ckpt.restore_params(run_dir, step)
  return jax.tree.map(np.asarray, params)


def metrics_of(run_dir):
  rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
  return {r["step"]: r for r in rows}  # a resumed run re-logs its steps; the last record wins


def assert_trees_equal(a, b, atol=0.0):
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
    if atol:
      np.testing.assert_allclose(x, y, atol=atol, err_msg=jax.tree_util.keystr(path))
    else:
      np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))


def cli(workdir, *overrides):
  return [
    sys.executable,
    "-m",
    "ffnjax.train",
    "--config=configs/tiny.py:middle_50_tiny_4l",
    f"--workdir={workdir}",
    *SMOKE_FLAGS,
    *overrides,
  ]


def env():
  return {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "PYTHONUNBUFFERED": "1"}


def test_sigkill_then_resume_is_bitwise_identical(tmp_path, make_config):
  steps = 12
  flags = (f"--config.train.steps={steps}", "--config.train.checkpoint_every=4")
  reference = str(tmp_path / "reference")  # same process setup as the killed run: bitwise comparable
  done = subprocess.run(cli(reference, *flags), cwd=REPO, env=env(), capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  lines = done.stderr.splitlines()  # what a user sees: building the state, compiling, then steps; no Orbax INFO
  state = (
    "ffnjax.train: middle_50_tiny_4l on mesh data:1,fsdp:1,tensor:1 (1 cpu devices): restoring the newest "
    "checkpoint or initialising the parameters…"
  )
  compiling = "ffnjax.train: compiling the train step of middle_50_tiny_4l on mesh data:1,fsdp:1,tensor:1…"
  assert state in lines and compiling in lines and lines.index(state) < lines.index(compiling), lines
  assert lines[-1].startswith(f"step {steps}/{steps} | loss ") and " tok/s | " in lines[-1], lines[-1]
  assert not [line for line in lines if re.match(r"I\d{4} ", line)], lines  # absl INFO lines (Orbax)

  killed = str(tmp_path / "killed")
  args = cli(killed, *flags)
  proc = subprocess.Popen(args, cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    deadline = time.time() + 120
    while time.time() < deadline and not any(s >= 4 for s in ckpt.steps(killed) if os.path.isdir(killed)):
      time.sleep(0.2)
    assert proc.poll() is None, "training finished before it could be killed; make the run longer"
    proc.send_signal(signal.SIGKILL)
  finally:
    proc.wait(timeout=60)
  saved = ckpt.steps(killed)
  assert saved and max(saved) < steps
  resumed = subprocess.run(args, cwd=REPO, env=env(), capture_output=True, text=True, timeout=300)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert f"(resuming from step {max(saved)})…" in resumed.stderr, resumed.stderr[-2000:]
  assert max(ckpt.steps(killed)) == steps
  assert_trees_equal(params_of(killed), params_of(reference))


def test_resume_onto_another_mesh(tmp_path, make_config):
  # fp32 reductions are reordered by a different sharding: equal to ~1e-6, not bitwise.
  reference = str(tmp_path / "reference")
  train(make_config(steps=8), reference, log=False)
  moved = str(tmp_path / "moved")
  train(make_config(steps=8), moved, max_steps=4, log=False)
  other = make_config(steps=8)
  other.mesh.update(dict(data=2, fsdp=2, tensor=2))
  train(other, moved, log=False)
  assert_trees_equal(params_of(moved), params_of(reference), atol=2e-5)


def test_one_device_and_eight_device_losses_match(tmp_path, make_config):
  one = str(tmp_path / "one")
  train(
    make_config(steps=6, log_every=1, eval_every=3, eval_batches=2, profile_start=2, profile_steps=2), one, log=False
  )
  cfg8 = make_config(steps=6, log_every=1)
  cfg8.mesh.update(dict(data=2, fsdp=2, tensor=2))
  eight = str(tmp_path / "eight")
  train(cfg8, eight, log=False)
  a, b = metrics_of(one), metrics_of(eight)
  assert sorted(a) == sorted(b) == [1, 2, 3, 4, 5, 6]
  for step in a:  # losses agree to fp32 reduction-order noise
    assert abs(a[step]["loss"] - b[step]["loss"]) < 1e-4, step
  assert a[6]["loss"] < a[1]["loss"]
  assert a[3]["val_loss"] > 0 and a[6]["val_loss"] < a[3]["val_loss"]  # held-out loss, every eval_every steps
  assert "val_loss" not in a[2]
  traces = [f for _, _, files in os.walk(os.path.join(one, "profile")) for f in files]
  assert traces, "the profiler window wrote no trace"


def test_sigterm_saves_current_step_and_exits_zero(tmp_path):
  workdir = str(tmp_path / "run")
  proc = subprocess.Popen(
    cli(workdir, "--config.train.steps=100000", "--config.train.checkpoint_every=100000"),
    cwd=REPO,
    env=env(),
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
  )
  try:
    metrics = os.path.join(workdir, "metrics.jsonl")
    deadline = time.time() + 120
    while time.time() < deadline and not (os.path.exists(metrics) and os.path.getsize(metrics) > 0):
      time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
  finally:
    proc.kill()
  assert proc.returncode == 0, err[-2000:]
  last_logged = max(metrics_of(workdir))
  saved = ckpt.steps(workdir)
  assert saved == [last_logged] and 0 < last_logged < 100000


def test_gradient_accumulation_equals_one_big_batch(make_config):
  from ffnjax import model as model_lib
  from ffnjax.core.placement import LayerPlan
  from ffnjax.train.step import make_grad_fn

  config = make_config(global_batch=16)
  plan = LayerPlan.from_config(config)
  model = model_lib.build(config.model, plan)
  params = model_lib.init_params(model, jax.random.key(0))
  tokens = jax.random.randint(jax.random.key(1), (16, 33), 0, config.model.vocab_size)
  loss1, grads1 = jax.jit(make_grad_fn(model, 1))(params, tokens)
  loss4, grads4 = jax.jit(make_grad_fn(model, 4))(params, tokens)
  assert float(loss4) == pytest.approx(float(loss1), rel=1e-6)
  for g4, g1 in zip(jax.tree.leaves(grads4), jax.tree.leaves(grads1)):  # fp32: 1e-6 of the gradient's scale
    np.testing.assert_allclose(g4, g1, atol=1e-6 * float(np.abs(g1).max()) + 1e-9)


def test_wsd_extension_equals_a_longer_run_from_the_start(tmp_path, make_config):
  from ffnjax.core.config import decay_start_step
  from ffnjax.train.optimizer import schedule

  short = make_config(steps=10, schedule="wsd", decay_fraction=0.2, log_every=1)
  long = make_config(steps=20, schedule="wsd", decay_fraction=0.2, log_every=1)
  assert decay_start_step(short.train) == 8
  extended = str(tmp_path / "extended")
  train(short, extended, max_steps=6, log=False)  # a pre-decay checkpoint at step 6
  train(long, extended, log=False)
  scratch = str(tmp_path / "scratch")
  train(long, scratch, log=False)
  lr = schedule(long.train)
  logged = metrics_of(extended)
  for step in range(7, 21):
    assert logged[step]["lr"] == pytest.approx(float(lr(step - 1)), rel=1e-6)
  assert float(lr(20)) == pytest.approx(long.train.peak_lr * long.train.min_lr_ratio, rel=1e-3)
  assert float(lr(15)) == pytest.approx(long.train.peak_lr) and float(lr(19)) < long.train.peak_lr
  assert_trees_equal(params_of(extended), params_of(scratch))


def test_checkpoint_mismatch_names_the_layer(tmp_path, make_config):
  workdir = str(tmp_path / "run")
  train(make_config(steps=2, checkpoint_every=2), workdir, log=False)
  other = make_config("final_50_tiny_4l", steps=4)
  with pytest.raises(
    ckpt.CheckpointMismatch, match=r"layer 2 is expanded \(d_ff.=\d+\) in the checkpoint but deactivated in the config"
  ):
    train(other, workdir, log=False)


def test_bad_inputs_are_clear(tmp_path, make_config):
  with pytest.raises(ValueError, match="not divisible by the data axes"):
    cfg = make_config(global_batch=6)
    cfg.mesh.update(dict(data=4, fsdp=1, tensor=1))
    train(cfg, str(tmp_path / "a"), log=False)
  with pytest.raises(ValueError, match="needs 16 devices but only 8"):
    cfg = make_config()
    cfg.mesh.update(dict(data=4, fsdp=2, tensor=2))
    train(cfg, str(tmp_path / "b"), log=False)
  readonly = tmp_path / "readonly"
  readonly.mkdir()
  readonly.chmod(0o500)
  if os.access(readonly, os.W_OK):  # running as root: permissions do not bind, use a path under a file instead
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = str(blocker / "run")
  else:
    target = str(readonly / "run")
  with pytest.raises(PermissionError, match="not writable"):
    train(make_config(), target, log=False)


def test_non_finite_loss_stops_without_saving(tmp_path, make_config):
  workdir = str(tmp_path / "nan")
  cfg = make_config(steps=4, peak_lr=1e30, warmup_steps=0, grad_clip=0.0, checkpoint_every=1)
  from ffnjax.train.loop import NonFiniteLoss

  with pytest.raises(NonFiniteLoss, match=r"at step \d+"):
    train(cfg, workdir, log=False)
  for step in ckpt.steps(workdir):
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(params_of(workdir, step)))
