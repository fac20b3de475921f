"""The study runner: a killed study resumes without redoing finished runs; clear errors for empty grids."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from configs import study as study_configs
from ffnjax.core import studygrid

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_grid_has_baseline_and_every_point():
  runs = studygrid.expand_grid(study_configs.get_config("paper_285m_12l"))
  assert len(runs) == 16 and runs[0].name == "baseline_285m_12l"
  assert len({r.name for r in runs}) == 16
  seeded = study_configs.get_config("smoke")
  seeded.seeds = "0,1"
  names = [r.name for r in studygrid.expand_grid(seeded)]
  assert len(names) == 6 and "first_50_tiny_4l_s1" in names


@pytest.mark.parametrize(
  "field,value,needle",
  [
    ("ratios", "", "grid is empty"),
    ("positions", "", "grid is empty"),
    ("positions", "top", "study.positions"),
    ("ratios", "0,50", "study.ratios"),
    ("seeds", "", "study.seeds"),
  ],
)
def test_bad_study_configs(field, value, needle):
  study = study_configs.get_config("smoke")
  study[field] = value
  with pytest.raises(studygrid.StudyError, match=needle):
    studygrid.expand_grid(study)


def test_unknown_override_is_named():
  study = study_configs.get_config("smoke")
  study.overrides.train.stepz = 3
  run = studygrid.expand_grid(study)[0]
  with pytest.raises(studygrid.StudyError, match="train.stepz"):
    studygrid.build_run_config(run)


def _stamp(path):
  return os.stat(path).st_mtime_ns if os.path.exists(path) else None


def test_killed_study_resumes_without_redoing_finished_runs(tmp_path):
  workdir = str(tmp_path / "study")
  args = [sys.executable, "-m", "ffnjax.study", "--config=configs/study.py:smoke", f"--workdir={workdir}"]
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
  first_results = os.path.join(workdir, "baseline_tiny_4l", "eval", "results.json")
  second_metrics = os.path.join(workdir, "first_50_tiny_4l", "metrics.jsonl")
  proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    deadline = time.time() + 240
    while time.time() < deadline and not os.path.exists(second_metrics):  # the 2nd run is training
      assert proc.poll() is None, "the study ended before it could be interrupted"
      time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
  finally:
    proc.wait(timeout=60)
  assert os.path.exists(first_results)
  assert not os.path.exists(os.path.join(workdir, "report.md"))
  before = {p: _stamp(p) for p in (first_results, os.path.join(workdir, "baseline_tiny_4l", "metrics.jsonl"))}

  done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "baseline_tiny_4l: already trained and evaluated, skipped" in done.stderr
  assert {p: _stamp(p) for p in before} == before  # finished run untouched
  for name in ("baseline_tiny_4l", "first_50_tiny_4l", "final_50_tiny_4l"):
    with open(os.path.join(workdir, name, "eval", "results.json")) as f:
      assert json.load(f)["step"] == 6
  assert os.path.exists(os.path.join(workdir, "report.md"))
  for fig in ("loss_curves.png", "ri_vs_ratio_tiny_4l.png", "importance_tiny_4l.png"):
    assert os.path.getsize(os.path.join(workdir, "figures", fig)) > 1000
  rerun = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert rerun.returncode == 0 and rerun.stderr.count("already trained and evaluated, skipped") == 3
