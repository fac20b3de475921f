"""launch/runstate.py: 'finished' means the final step has a committed checkpoint, as Orbax sees it."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import runstate

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_not_a_run_dir_is_not_finished(tmp_path):
  assert runstate.final_step(str(tmp_path)) is None
  assert not runstate.is_finished(str(tmp_path))


def test_final_checkpoint_means_finished(tmp_path, run_dir_factory):
  make = run_dir_factory
  run = make(tmp_path / "r", final_step=300, checkpoint_steps=(100, 200, 300))
  assert runstate.final_step(run) == 300
  assert runstate.is_finished(run)


def test_intermediate_or_uncommitted_checkpoints_are_not_finished(tmp_path, run_dir_factory):
  make = run_dir_factory
  run = make(tmp_path / "r", final_step=300, checkpoint_steps=(100, 200), tmp_steps=(300,))
  assert not runstate.is_finished(run)
  assert runstate.is_finished(run, final=200)  # an explicit final step overrides config.json


def test_bad_config_json_is_a_clear_error(tmp_path):
  (tmp_path / "config.json").write_text(json.dumps({"train": {}}))
  with pytest.raises(runstate.RunStateError, match="train.steps"):
    runstate.final_step(str(tmp_path))


def test_agrees_with_the_real_checkpoint_helper(tmp_path, run_dir_factory):
  """The fake run dirs of these tests and a real Orbax save both read as the trainer's own helper reads them."""
  make = run_dir_factory
  from ffnjax.train import checkpoint as ckpt

  fake = make(tmp_path / "fake", final_step=5, checkpoint_steps=(2, 5), tmp_steps=(7,))
  assert ckpt.steps(fake) == [2, 5]
  assert runstate.is_finished(fake)

  real = make(tmp_path / "real", final_step=4)
  mngr = ckpt.manager(real)
  state = {"params": {"w": np.ones(3, np.float32)}, "opt_state": {"mu": np.zeros(3, np.float32)}}
  ckpt.save(mngr, 3, state, {"step": 3}, force=True)
  mngr.wait_until_finished()
  assert ckpt.steps(real) == [3] and not runstate.is_finished(real)
  ckpt.save(mngr, 4, state, {"step": 4}, force=True)
  mngr.wait_until_finished()
  mngr.close()
  assert ckpt.steps(real) == [3, 4] and runstate.is_finished(real)


def test_gcs_run_dirs_on_the_emulator(gcs_bucket, run_dir_factory):
  make = run_dir_factory
  make(f"{gcs_bucket}/runs/done", final_step=8, checkpoint_steps=(4, 8))
  make(f"{gcs_bucket}/runs/half", final_step=8, checkpoint_steps=(4,), tmp_steps=(8,))
  assert runstate.final_step(f"{gcs_bucket}/runs/done") == 8
  assert runstate.is_finished(f"{gcs_bucket}/runs/done")
  assert not runstate.is_finished(f"{gcs_bucket}/runs/half")
  assert not runstate.is_finished(f"{gcs_bucket}/runs/never-started")


def test_gcs_without_gcsfs_names_the_fix():
  code = (
    "import sys; sys.modules['gcsfs'] = None; sys.path.insert(0, 'launch'); import runstate\n"
    "try:\n  runstate.is_finished('gs://b/runs/x')\nexcept runstate.RunStateError as e:\n  print(e)"
  )
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
  assert out.returncode == 0, out.stderr
  assert out.stdout.startswith("cannot read gs://b/runs/x/config.json: ") and "pip install -e '.[gcs]'" in out.stdout, (
    out.stdout
  )
