"""`ffnjax.plan` prints tokens to train against the data's tokens and warns above one epoch."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _plan(*args):
  return subprocess.run(
    [sys.executable, "-m", "ffnjax.plan", *args], cwd=REPO, capture_output=True, text=True, timeout=120
  )


def test_epochs_and_warning():
  out = _plan("--config=configs/paper.py:baseline_1b_40l")
  assert out.returncode == 0, out.stderr
  assert "train tokens         23,592,960,000   = 20,000 steps x 1152 x 1024" in out.stdout
  assert "FineWeb-Edu sample-10BT (~10 B tokens): 2.36 epochs" in out.stdout
  assert "WARNING: 2.36 epochs of FineWeb-Edu sample-10BT" in out.stderr
  bigger = _plan(
    "--config=configs/paper.py:baseline_1b_40l", "--config.data.input=data/fineweb-edu/sample-100BT", "--json"
  )
  budget = json.loads(bigger.stdout)["data_budget"]
  assert abs(budget["epochs"] - 0.2359296) < 1e-6 and "WARNING" not in bigger.stderr
