"""Run-directory safety: a refused resume changes nothing, a broken newest checkpoint is set aside, files get the
umask."""

import hashlib
import logging
import os
import stat

import jax
import numpy as np
import pytest

from ffnjax.train import checkpoint as ckpt
from ffnjax.train.loop import train


def snapshot(root):
  """Every file (relative path -> sha256, mode) and every directory under root."""
  out = {}
  for dirpath, dirs, files in os.walk(root):
    for d in dirs:
      out[os.path.relpath(os.path.join(dirpath, d), root) + "/"] = None
    for f in files:
      p = os.path.join(dirpath, f)
      with open(p, "rb") as fh:
        out[os.path.relpath(p, root)] = (hashlib.sha256(fh.read()).hexdigest(), os.stat(p).st_mode)
  return out


def test_refused_resume_leaves_the_run_directory_byte_identical(tmp_path, make_config):
  workdir = str(tmp_path / "run")
  train(make_config(steps=2, checkpoint_every=2), workdir, log=False)
  before = snapshot(workdir)
  assert "config.json" in before and "checkpoints/2/" in before
  other = make_config("final_50_tiny_4l", steps=4)
  with pytest.raises(ckpt.CheckpointMismatch, match="layer 2 is expanded"):
    train(other, workdir, log=False)
  assert snapshot(workdir) == before
  assert ckpt.restore_params(workdir)[2].name == "middle_50_tiny_4l"  # still readable by evaluate & co


def _truncate_array_files(step_dir):
  cut = 0
  for item in ("params", "opt_state"):
    for dirpath, _, files in os.walk(os.path.join(step_dir, item)):
      for f in files:
        p = os.path.join(dirpath, f)
        if os.sep + "d" in dirpath and os.path.getsize(p) > 16:  # the tensorstore data files (ocdbt .../d/<hash>)
          with open(p, "r+b") as fh:
            fh.truncate(os.path.getsize(p) // 2)
          cut += 1
  assert cut, f"no array files found under {step_dir}"


def test_broken_newest_checkpoint_is_set_aside_and_training_resumes_from_the_previous(tmp_path, make_config, caplog):
  workdir = str(tmp_path / "run")
  train(make_config(steps=4, checkpoint_every=2), workdir, log=False)
  assert ckpt.steps(workdir) == [2, 4]
  _truncate_array_files(os.path.join(workdir, "checkpoints", "4"))
  broken = snapshot(os.path.join(workdir, "checkpoints", "4"))
  with caplog.at_level(logging.WARNING):
    summary = train(make_config(steps=6, checkpoint_every=2), workdir, log=False)
  warnings = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
  assert len(warnings) == 1 and "\n" not in warnings[0], warnings
  assert warnings[0].startswith("checkpoint step 4 does not restore (") and warnings[0].endswith(
    f"set aside as {os.path.join(workdir, 'set-aside-checkpoint-4')}; resuming from step 2"
  ), warnings[0]
  assert summary["step"] == 6 and ckpt.steps(workdir)[-2:] == [4, 6]  # a new step 4, saved by this run
  assert snapshot(os.path.join(workdir, "set-aside-checkpoint-4")) == broken  # moved, not deleted or changed
  scratch = str(tmp_path / "scratch")
  train(make_config(steps=6, checkpoint_every=2), scratch, log=False)
  for a, b in zip(jax.tree.leaves(ckpt.restore_params(workdir)[0]), jax.tree.leaves(ckpt.restore_params(scratch)[0])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # resumed from 2: as if 4 had never been saved


def test_no_restorable_checkpoint_is_one_line_and_moves_nothing(tmp_path, make_config):
  workdir = str(tmp_path / "run")
  train(make_config(steps=2, checkpoint_every=2), workdir, log=False)
  _truncate_array_files(os.path.join(workdir, "checkpoints", "2"))
  before = snapshot(workdir)
  with pytest.raises(ckpt.CheckpointUnreadable, match=r"no checkpoint restores \(steps \[2\]\); the newest, step 2: "):
    train(make_config(steps=4, checkpoint_every=2), workdir, log=False)
  assert snapshot(workdir) == before


def test_run_directory_files_follow_the_umask(tmp_path, make_config):
  old = os.umask(0o022)
  try:
    workdir = str(tmp_path / "run")
    train(make_config(steps=2, checkpoint_every=2), workdir, log=False)
  finally:
    os.umask(old)
  for name in ("config.json", "plan.json", "metrics.jsonl"):
    assert stat.S_IMODE(os.stat(os.path.join(workdir, name)).st_mode) == 0o644, name
