"""launch/sweep.py: a study -> one job per grid point, distinct run dirs, finished runs skipped."""

import os
import re
import shlex
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LAUNCH = os.path.join(REPO, "launch")
SWEEP = os.path.join(LAUNCH, "sweep.py")
STUDY = "configs/study.py:paper_285m_12l"
NAMES = ["baseline_285m_12l"] + [
  f"{p}_{r}_285m_12l" for p in ("first", "middle", "final") for r in (10, 30, 50, 70, 90)
]


def _dry_run(stubs, root, *args):
  out = stubs.run([sys.executable, SWEEP, f"--study={STUDY}", f"--root={root}", "--dry_run", *args], cwd=REPO)
  assert out.returncode == 0, out.stderr
  return [shlex.split(line) for line in out.stdout.splitlines()], out.stderr


def _flag(cmd, name):
  values = [a.split("=", 1)[1] for a in cmd if a.startswith(f"--{name}=")]
  assert len(values) == 1, (name, cmd)
  return values[0]


def test_dry_run_prints_16_jobs_with_distinct_workdirs(stubs, tmp_path):
  jobs, _ = _dry_run(stubs, tmp_path / "study")
  assert len(jobs) == 16  # baseline + 3 positions x 5 ratios
  workdirs = [_flag(cmd, "workdir") for cmd in jobs]
  assert workdirs == [str(tmp_path / "study" / name) for name in NAMES]
  assert len(set(workdirs)) == 16
  for cmd, name in zip(jobs, NAMES):
    assert cmd[:3] == [sys.executable, "-m", "ffnjax.train"]
    assert _flag(cmd, "config") == f"configs/paper.py:{name}"
    assert "--config.seed=0" in cmd
  assert not os.path.exists(tmp_path / "study")  # a dry run creates nothing


def test_finished_runs_are_skipped(stubs, tmp_path, run_dir_factory):
  root = tmp_path / "study"
  run_dir_factory(root / "baseline_285m_12l", final_step=20000, checkpoint_steps=(19000, 20000))
  run_dir_factory(root / "first_10_285m_12l", final_step=20000, checkpoint_steps=(19000,), tmp_steps=(20000,))
  run_dir_factory(root / "final_90_285m_12l", final_step=20000, checkpoint_steps=(20000,))
  jobs, err = _dry_run(stubs, root)
  names = [os.path.basename(_flag(cmd, "workdir")) for cmd in jobs]
  assert names == [n for n in NAMES if n not in ("baseline_285m_12l", "final_90_285m_12l")]
  assert "skip baseline_285m_12l: finished" in err and "skip final_90_285m_12l: finished" in err


def test_backends_and_trainer_flags(stubs, tmp_path, gcs_bucket):
  jobs, _ = _dry_run(
    stubs,
    tmp_path,
    "--backend=slurm",
    "--launcher_args=--nodes=2 --partition=gpu",
    "--only=^middle_70",
    "--",
    "--config.train.steps=100",
  )
  assert len(jobs) == 1
  assert jobs[0] == [
    os.path.join(LAUNCH, "slurm_gpu.sbatch"),
    "--job_name=middle_70_285m_12l",
    "--nodes=2",
    "--partition=gpu",
    "--config=configs/paper.py:middle_70_285m_12l",
    f"--workdir={tmp_path}/middle_70_285m_12l",
    # the paper study's data overrides travel with every job (configs/study.py:_paper_data)
    "--config.data.input=data/fineweb-edu/sample-10BT",
    "--config.data.path=",
    "--config.eval.data_dir=data/eval",
    "--config.seed=0",
    "--config.train.steps=100",
  ]

  jobs, _ = _dry_run(
    stubs, f"{gcs_bucket}/study", "--backend=tpu", "--launcher_args=--zone=z --spot", "--only=baseline|final_10"
  )
  assert len(jobs) == 2
  cmd = jobs[1]
  assert cmd[1:5] == [
    os.path.join(LAUNCH, "babysit.py"),
    f"--workdir={gcs_bucket}/study/final_10_285m_12l",
    "--max_retries=20",
    "--",
  ]  # TPU jobs are babysat: preempted slices get re-created
  assert cmd[5:9] == [os.path.join(LAUNCH, "tpu_pod.sh"), "run", "--name=ffnjax-final-10-285m-12l", "--zone=z"]
  assert re.fullmatch(r"[a-z][a-z0-9-]*", _flag(cmd, "name"))
  assert cmd[cmd.index("--spot") + 1] == "--"  # trainer flags after --


def test_slurm_submission_goes_through_slurm_gpu_sbatch(stubs, tmp_path):
  stubs.add("sbatch", 'echo "Submitted batch job 42"')
  out = stubs.run(
    [sys.executable, SWEEP, f"--study={STUDY}", f"--root={tmp_path}", "--backend=slurm", "--only=^first_"], cwd=REPO
  )
  assert out.returncode == 0, out.stderr
  calls = stubs.calls()
  assert len(calls) == 5 and all(c.startswith("sbatch --job-name=first_") for c in calls)
  assert out.stdout.count("Submitted batch job") == 5


def test_missing_sbatch_fails_early(stubs, tmp_path):
  out = stubs.run([sys.executable, SWEEP, f"--study={STUDY}", f"--root={tmp_path}", "--backend=slurm"], cwd=REPO)
  assert out.returncode != 0
  assert "sbatch not found on PATH" in out.stderr
  assert stubs.calls() == []


def test_required_arguments_and_bad_study(stubs, tmp_path):
  out = stubs.run([sys.executable, SWEEP, "--dry_run", f"--root={tmp_path}"], cwd=REPO)
  assert out.returncode == 2 and "--study is required" in out.stderr
  out = stubs.run([sys.executable, SWEEP, "--dry_run", f"--study={STUDY}"], cwd=REPO)
  assert out.returncode == 2 and "--root is required" in out.stderr
  out = stubs.run([sys.executable, SWEEP, "--dry_run", "--study=configs/study.py:nope", f"--root={tmp_path}"], cwd=REPO)
  assert out.returncode != 0 and "unknown study" in out.stderr
  out = stubs.run([sys.executable, SWEEP, "--help"], cwd=REPO)
  assert out.returncode == 0 and "--backend" in out.stdout


def test_runs_from_any_directory_and_imports_no_jax(stubs, tmp_path):
  code = (
    f"import sys; sys.argv = ['sweep.py', '--study={STUDY}', '--root={tmp_path}', '--dry_run']; "
    f"sys.path.insert(0, {LAUNCH!r}); import sweep; rc = sweep.main(); "
    "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'flax', 'orbax'));"
    "assert not heavy, heavy; sys.exit(rc)"
  )
  out = subprocess.run(
    [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=stubs.env()
  )
  assert out.returncode == 0, out.stderr
  assert len(out.stdout.splitlines()) == 16


def test_local_backend_trains_unfinished_runs_one_by_one(stubs, tmp_path, run_dir_factory):
  # A stand-in for `python -m ffnjax.train`: records its flags and writes the final checkpoint.
  fake_python = tmp_path / "python"
  fake_python.write_text(
    '#!/usr/bin/env bash\necho "python $*" >> "$STUB_LOG"\n'
    "for a; do [[ $a == --workdir=* ]] && run=${a#*=}; done\n"
    'mkdir -p "$run/checkpoints/20000"\n'
    'printf \'{"train": {"steps": 20000}}\' > "$run/config.json"\n'
  )
  fake_python.chmod(0o755)
  root = tmp_path / "study"
  run_dir_factory(root / "first_30_285m_12l", final_step=20000, checkpoint_steps=(20000,))
  args = [
    sys.executable,
    SWEEP,
    f"--study={STUDY}",
    f"--root={root}",
    "--only=^first_[13]0_",
    f"--python={fake_python}",
  ]
  out = stubs.run(args, cwd=REPO)
  assert out.returncode == 0, out.stderr
  assert [c.split()[:3] for c in stubs.calls()] == [["python", "-m", "ffnjax.train"]]  # first_30 was finished
  assert "--workdir=" + str(root / "first_10_285m_12l") in stubs.calls()[0]
  out = stubs.run(args, cwd=REPO)  # everything finished now: nothing runs
  assert out.returncode == 0 and "nothing to do" in out.stderr and len(stubs.calls()) == 1
