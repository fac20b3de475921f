"""A study directory on gs:// (a real GCS API emulator): train, SIGTERM, resume, evaluate, analyze, launchers.

Every command is the one a user types, with `--workdir=gs://...`; the emulator is reached through
STORAGE_EMULATOR_HOST (gcsfs, for ffnjax.core.rundir) and TENSORSTORE_GCS_HTTP_URL (Orbax's array files).
"""

import json
import os
import signal
import subprocess
import sys

from smoke import SMOKE_FLAGS

from ffnjax.core import rundir
from ffnjax.train import checkpoint as ckpt

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TASKS = "wikitext,lambada_openai"


def _env():
  return {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "PYTHONUNBUFFERED": "1"}


def _train(name, workdir, *flags):
  return [
    sys.executable,
    "-m",
    "ffnjax.train",
    f"--config=configs/tiny.py:{name}",
    f"--workdir={workdir}",
    *SMOKE_FLAGS,
    *flags,
  ]


def _run(argv, timeout=300):
  out = subprocess.run(argv, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)
  assert out.returncode == 0, f"{argv[1:4]} exit {out.returncode}:\n{out.stderr[-3000:]}"
  return out


def _steps_logged(workdir):
  text = rundir.read_text(rundir.join(workdir, "metrics.jsonl"), default="")
  return {json.loads(line)["step"] for line in text.splitlines() if line.strip()}


def test_train_sigterm_resume_evaluate_analyze_on_gcs(gcs_bucket, tmp_path):
  study = f"{gcs_bucket}/study"
  run = f"{study}/final_50_tiny_4l"

  # 1. Train on gs://, SIGTERM once metrics arrive: the step in flight finishes, is saved, exit 0.
  proc = subprocess.Popen(
    _train("final_50_tiny_4l", run, "--config.train.steps=100000", "--config.train.checkpoint_every=100000"),
    cwd=REPO,
    env=_env(),
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
  )
  err = []
  try:
    # The progress line of step 1 follows the write of its metrics record: SIGTERM lands mid-run.
    for line in proc.stderr:
      err.append(line)
      if line.startswith("step "):
        break
    proc.send_signal(signal.SIGTERM)
    err.append(proc.communicate(timeout=180)[1])
  finally:
    proc.kill()
  err = "".join(err)
  assert proc.returncode == 0, err[-3000:]
  saved = ckpt.steps(run)
  assert len(saved) == 1 and saved[0] == max(_steps_logged(run)), (saved, _steps_logged(run))
  stopped = saved[0]

  # 2. The same command resumes from that checkpoint (here to a final step 2 further) and finishes.
  out = _run(
    _train("final_50_tiny_4l", run, f"--config.train.steps={stopped + 2}", "--config.train.checkpoint_every=100000")
  )
  assert ckpt.steps(run)[-1] == stopped + 2
  assert f"step {stopped + 1}/{stopped + 2}" in out.stderr  # resumed: the first new step is stopped + 1
  assert {stopped + 1, stopped + 2} <= _steps_logged(run)
  assert "TensorBoard events are written for local run directories only" in out.stderr

  # 3. A baseline beside it, so the analysis has something to compare against.
  _run(_train("baseline_tiny_4l", f"{study}/baseline_tiny_4l", "--config.train.steps=2"))

  # 4. Evaluate both (results into the run directories on gs://), then analyze the study into gs://.
  for name in ("final_50_tiny_4l", "baseline_tiny_4l"):
    _run(
      [
        sys.executable,
        "-m",
        "ffnjax.eval",
        f"--workdir={study}/{name}",
        f"--tasks={TASKS}",
        "--limit=8",
        f"--records={study}/{name}/eval/records.jsonl",
      ]
    )
  out = _run(
    [
      sys.executable,
      "-m",
      "ffnjax.analysis",
      f"--study={study}",
      f"--output={gcs_bucket}/analysis",
      "--tasks=wikitext:word_perplexity,lambada_openai:perplexity",
    ]
  )
  assert out.stdout.strip() == f"{gcs_bucket}/analysis/report.md"
  report = rundir.read_text(f"{gcs_bucket}/analysis/report.md")
  assert "final_50_tiny_4l" in report and "baseline_tiny_4l" in report
  assert rundir.read_json(f"{run}/eval/results.json")["step"] == stopped + 2

  # 5. The launchers see both runs finished on gs:// (and the third smoke run as still to do).
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import runstate

  assert runstate.is_finished(run) and runstate.is_finished(f"{study}/baseline_tiny_4l")
  assert not runstate.is_finished(f"{study}/first_50_tiny_4l")
  out = _run(
    [
      sys.executable,
      os.path.join(REPO, "launch", "sweep.py"),
      "--study=configs/study.py:smoke",
      f"--root={study}",
      "--dry-run",
    ]
  )
  assert [line.split("--workdir=")[1].split()[0] for line in out.stdout.splitlines()] == [f"{study}/first_50_tiny_4l"]
  assert "skip baseline_tiny_4l: finished" in out.stderr and "skip final_50_tiny_4l: finished" in out.stderr

  listing = sorted(rundir.join(gcs_bucket, f) for f in rundir.walk_files(gcs_bucket))
  (tmp_path / "bucket-listing.txt").write_text("\n".join(listing) + "\n")
  print("\n".join(listing))  # the bucket after train -> SIGTERM -> resume -> evaluate -> analyze (pytest -s)
  for want in (
    f"{run}/config.json",
    f"{run}/plan.json",
    f"{run}/metrics.jsonl",
    f"{run}/eval/results.json",
    f"{run}/eval/records.jsonl",
    f"{run}/checkpoints/{stopped + 2}/commit_success.txt",
    f"{gcs_bucket}/analysis/report.md",
  ):
    assert want in listing, want
  assert not any("/tb/" in p or ".tmp-" in p for p in listing)
