"""launch/babysit.py: relaunch until the final checkpoint exists; give up after --max_retries."""

import os
import signal
import subprocess
import sys

BABYSIT = os.path.join(os.path.dirname(__file__), "..", "..", "launch", "babysit.py")

# A stand-in for the trainer: counts its launches; is "preempted" (checkpoints step n and exits with
# PREEMPT_RC, like a killed host) until launch FINISH_ON, which writes the final step-30 checkpoint.
FAKE_TRAIN = """
import json, os, sys
run, finish_on, preempt_rc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(run, exist_ok=True)
count_file = os.path.join(run, "launches")
n = int(open(count_file).read()) + 1 if os.path.exists(count_file) else 1
open(count_file, "w").write(str(n))
json.dump({"train": {"steps": 30}}, open(os.path.join(run, "config.json"), "w"))
step = 30 if n >= finish_on else n
os.makedirs(os.path.join(run, "checkpoints", str(step)), exist_ok=True)
print(f"fake train: launch {n}, checkpoint {step}")
sys.exit(0 if step == 30 else preempt_rc)
"""


def _setup(tmp_path):
  script = tmp_path / "fake_train.py"
  script.write_text(FAKE_TRAIN)
  return script, tmp_path / "run"


def _babysit(*args, timeout=60):
  return subprocess.run([sys.executable, BABYSIT, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def _launches(run):
  return int((run / "launches").read_text())


def test_relaunches_until_the_final_checkpoint_exists(tmp_path):
  script, run = _setup(tmp_path)
  log = tmp_path / "babysit.log"
  out = _babysit(
    f"--workdir={run}", "--max_retries=5", "--backoff=0", f"--log={log}", "--", sys.executable, script, run, 3, 1
  )
  assert out.returncode == 0, out.stderr
  assert _launches(run) == 3  # preempted twice, finished on the third launch, not launched again
  text = log.read_text()
  assert text.count("attempt ") == 6  # a start line and an exit line per attempt
  assert "attempt 1/6 exited 1" in text and "attempt 3/6 exited 0" in text
  assert "finished after 3 attempt(s)" in text
  assert text == out.stderr  # the same log on stderr and in --log


def test_a_clean_exit_without_the_final_checkpoint_is_a_preemption(tmp_path):
  script, run = _setup(tmp_path)  # the trainer exits 0 after its SIGTERM checkpoint
  out = _babysit(f"--workdir={run}", "--max_retries=5", "--backoff=0", "--", sys.executable, script, run, 2, 0)
  assert out.returncode == 0, out.stderr
  assert _launches(run) == 2


def test_max_retries_is_respected(tmp_path):
  script, run = _setup(tmp_path)
  out = _babysit(f"--workdir={run}", "--max-retries=2", "--backoff=0", "--", sys.executable, script, run, 99, 255)
  assert out.returncode == 1
  assert _launches(run) == 3  # the first attempt + 2 retries
  assert "gave up after 3 attempt(s) (--max_retries=2); last exit code 255" in out.stderr
  assert "--max-retries is spelt --max_retries now" in out.stderr  # the old spelling still works, with a warning


def test_already_finished_runs_nothing(tmp_path, run_dir_factory):
  run = run_dir_factory(tmp_path / "run", final_step=30, checkpoint_steps=(30,))
  out = _babysit(f"--workdir={run}", "--", "false")
  assert out.returncode == 0 and "already finished" in out.stderr


def test_final_step_flag_overrides_config(tmp_path):
  script, run = _setup(tmp_path)
  out = _babysit(f"--workdir={run}", "--final_step=2", "--backoff=0", "--", sys.executable, script, run, 99, 1)
  assert out.returncode == 0, out.stderr
  assert _launches(run) == 2  # checkpoint 2 exists after the second launch


def test_dry_run_prints_the_command(tmp_path):
  out = _babysit(f"--workdir={tmp_path}", "--dry_run", "--", "python", "-m", "ffnjax.train", "--config=a b")
  assert out.returncode == 0
  assert out.stdout == "python -m ffnjax.train '--config=a b'\n"


def test_clear_errors(tmp_path):
  out = _babysit("--", "true")
  assert out.returncode == 2 and "--workdir is required" in out.stderr
  out = _babysit(f"--workdir={tmp_path}")
  assert out.returncode == 2 and "no command given" in out.stderr
  out = _babysit(f"--workdir={tmp_path}", "--", "no-such-launcher-xyz")
  assert out.returncode == 1 and "command 'no-such-launcher-xyz' not found" in out.stderr
  out = _babysit("--help")
  assert out.returncode == 0 and "--max_retries" in out.stdout


def test_sigterm_stops_the_child_and_does_not_relaunch(tmp_path):
  child = tmp_path / "child.py"  # checkpoints (exits 0) on SIGTERM, like the trainer
  child.write_text(
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *a: (print('saved', flush=True), sys.exit(0)))\n"
    "print('training', flush=True)\ntime.sleep(30)\n"
  )
  proc = subprocess.Popen(
    [sys.executable, BABYSIT, f"--workdir={tmp_path}", "--backoff=0", "--", sys.executable, child],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  assert proc.stdout.readline() == "training\n"
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=30)
  assert proc.returncode == 128 + signal.SIGTERM
  assert "saved" in out and err.count("attempt 1/11:") == 1 and "not relaunching" in err
