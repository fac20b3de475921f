"""One training job per grid point of a study, each in its own run directory ROOT/<run name>.

    python launch/sweep.py --study=configs/study.py:paper_285m_12l --root=DIR --backend=slurm --dry_run
    python launch/sweep.py --study=... --root=gs://BUCKET/study --backend=tpu \\
        --launcher_args="--project=P --zone=Z --accelerator_type=v5p-32 --version=v2-alpha-tpuv5 --spot"
    python launch/sweep.py --study=... --root=DIR --backend=local -- --config.train.steps=200

Backends (each job's command; --dry_run prints them, one per line, and runs nothing):
  local  python -m ffnjax.train ...                   run here, one after another
  slurm  launch/slurm_gpu.sbatch --job_name=RUN ...   submits one Slurm job per run (requeued on preemption)
  tpu    launch/tpu_pod.sh run --name=PREFIX-RUN ...  one TPU slice per run, started in the background,
                                                      wrapped in launch/babysit.py (re-creates preempted slices)
Runs whose final checkpoint exists are skipped (launch/runstate.py). Flags after -- go to every trainer.
Pure Python: imports neither JAX nor the model; the grid comes from ffnjax.core.studygrid.expand_grid.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
if REPO not in sys.path:  # a bare checkout (not pip-installed) still finds ffnjax
  sys.path.insert(1, REPO)

import runstate

from ffnjax.core import (  # JAX-free
  cli,
  rundir,
  studygrid,  # pure Python: placement + ml_collections
)

OLD_SPELLINGS = ("dry_run", "launcher_args", "tpu_prefix", "max_retries", "log_dir")  # were --kebab-case
PROG = "sweep.py"
BACKENDS = ("local", "slurm", "tpu")
_TOOL_HELP = {
  "sbatch": "run on a Slurm login node, or use --backend=local|tpu",
  "gcloud": "install the Google Cloud CLI: https://cloud.google.com/sdk/docs/install",
}


def parse_args(argv):
  parser = cli.ArgumentParser(
    prog=PROG,
    description=__doc__.split("\n\n")[0],
    epilog=__doc__.split("\n\n", 1)[1],
    formatter_class=argparse.RawTextHelpFormatter,
  )
  parser.add_argument("--study", required=False, help="FILE:NAME, e.g. configs/study.py:paper_285m_12l")
  parser.add_argument("--root", required=False, help="study directory; run R trains in ROOT/R (local or gs://)")
  parser.add_argument("--backend", choices=BACKENDS, default="local", help="where jobs run (default local)")
  parser.add_argument("--dry_run", action="store_true", help="print each job's command, one per line; run nothing")
  parser.add_argument("--only", default="", help="regular expression: only runs whose name matches")
  parser.add_argument(
    "--launcher_args",
    default="",
    help="extra arguments for the backend's launcher, one shell-quoted string, "
    'e.g. "--nodes=2 --partition=gpu" (slurm) or "--project=P --zone=Z ..." (tpu)',
  )
  parser.add_argument("--tpu_prefix", default="ffnjax", help="TPU slice name prefix (tpu backend; default ffnjax)")
  parser.add_argument(
    "--babysit",
    action=argparse.BooleanOptionalAction,
    default=None,
    help="wrap each job in launch/babysit.py (default: on for tpu, off otherwise; Slurm requeues by itself)",
  )
  parser.add_argument("--max_retries", type=int, default=20, help="babysit.py --max_retries (default 20)")
  parser.add_argument(
    "--log_dir", default=None, help="tpu backend: launcher logs go to LOG_DIR/<run>.log (default ./logs/sweep)"
  )
  parser.add_argument("--python", default=sys.executable, help="python for local jobs and babysit.py")
  parser.add_argument("trainer_flags", nargs=argparse.REMAINDER, help="after --: flags for every trainer")
  args = parser.parse_args(cli.snake_case_argv(argv, PROG, OLD_SPELLINGS))
  if args.trainer_flags and args.trainer_flags[0] == "--":
    args.trainer_flags = args.trainer_flags[1:]
  if not args.study:
    parser.error("--study is required, e.g. --study=configs/study.py:paper_285m_12l")
  if not args.root:
    parser.error("--root is required: the study directory (each run trains in ROOT/<run name>)")
  if ":" not in args.study:
    parser.error(f"--study={args.study}: expected FILE:NAME, e.g. configs/study.py:paper_285m_12l")
  if args.babysit is None:
    args.babysit = args.backend == "tpu"
  return args


def load_runs(study_flag: str) -> list[studygrid.RunSpec]:
  path, name = study_flag.rsplit(":", 1)
  if not os.path.exists(path) and os.path.exists(os.path.join(REPO, path)):
    path = os.path.join(REPO, path)  # relative to the repository, wherever this is run from
  return studygrid.expand_grid(studygrid.load_config_file(path, name))


def workdir_of(root: str, run: studygrid.RunSpec) -> str:
  return runstate.join(root if rundir.is_remote(root) else os.path.abspath(root), run.name)


def tpu_name(prefix: str, run_name: str) -> str:
  """TPU names: lowercase letters, digits and hyphens, starting with a letter."""
  name = re.sub(r"[^a-z0-9-]+", "-", f"{prefix}-{run_name}".lower()).strip("-")
  return name if name[:1].isalpha() else f"t-{name}"


def job_command(args, run: studygrid.RunSpec, workdir: str) -> list[str]:
  trainer = [f"--config={run.config_flag}", f"--workdir={workdir}", *run.override_flags(), *args.trainer_flags]
  launcher = shlex.split(args.launcher_args)
  if args.backend == "local":
    cmd = [args.python, "-m", "ffnjax.train", *trainer]
  elif args.backend == "slurm":
    cmd = [os.path.join(HERE, "slurm_gpu.sbatch"), f"--job_name={run.name}", *launcher, *trainer]
  else:
    cmd = [
      os.path.join(HERE, "tpu_pod.sh"),
      "run",
      f"--name={tpu_name(args.tpu_prefix, run.name)}",
      *launcher,
      "--",
      *trainer,
    ]
  if args.babysit:
    cmd = [
      args.python,
      os.path.join(HERE, "babysit.py"),
      f"--workdir={workdir}",
      f"--max_retries={args.max_retries}",
      "--",
      *cmd,
    ]
  return cmd


def plan_jobs(args) -> list[tuple[studygrid.RunSpec, str, list[str]]]:
  """(run, workdir, command) for every unfinished run; finished ones are reported on stderr."""
  runs = load_runs(args.study)
  if args.only:
    runs = [r for r in runs if re.search(args.only, r.name)]
  jobs = []
  for run in runs:
    workdir = workdir_of(args.root, run)
    if runstate.is_finished(workdir):
      print(f"{PROG}: skip {run.name}: finished ({workdir} has its final checkpoint)", file=sys.stderr)
      continue
    jobs.append((run, workdir, job_command(args, run, workdir)))
  return jobs


def _require_tools(args) -> None:
  needed = {"slurm": ["sbatch"], "tpu": ["gcloud"], "local": []}[args.backend]
  for tool in needed:
    if shutil.which(tool) is None:
      sys.exit(f"{PROG}: {tool} not found on PATH (--backend={args.backend}); {_TOOL_HELP[tool]}")


def submit(args, jobs) -> int:
  failures = []
  for run, _workdir, cmd in jobs:
    print(f"{PROG}: {run.name}: {shlex.join(cmd)}", file=sys.stderr, flush=True)
    if args.backend == "tpu":
      # Each run holds its own slice for days: start it in the background, in its own session, with a log.
      log_dir = args.log_dir or os.path.join("logs", "sweep")
      os.makedirs(log_dir, exist_ok=True)
      log_path = os.path.join(log_dir, f"{run.name}.log")
      with open(log_path, "a") as log:
        proc = subprocess.Popen(
          cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
      print(f"{PROG}: {run.name}: started pid {proc.pid}, log {log_path}", file=sys.stderr)
      continue
    rc = subprocess.call(cmd, cwd=REPO)  # slurm: sbatch returns at once; local: the run trains here
    if rc != 0:
      failures.append(run.name)
      print(f"{PROG}: {run.name}: exit code {rc}", file=sys.stderr)
  if failures:
    print(f"{PROG}: {len(failures)} of {len(jobs)} jobs failed: {' '.join(failures)}", file=sys.stderr)
    return 1
  return 0


def main(argv=None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  try:
    if not args.dry_run:
      _require_tools(args)
    jobs = plan_jobs(args)
  except (studygrid.StudyError, runstate.RunStateError, ValueError) as e:
    cli.fail(PROG, str(e))
  if args.dry_run:
    for _, _, cmd in jobs:
      print(shlex.join(cmd))
    return 0
  if not jobs:
    print(f"{PROG}: nothing to do: every run is finished", file=sys.stderr)
    return 0
  return submit(args, jobs)


if __name__ == "__main__":
  sys.exit(main())
