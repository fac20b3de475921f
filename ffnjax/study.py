"""`python -m ffnjax.study --config=configs/study.py:tiny --workdir=DIR`: the placement study, end to end.

Trains the baseline and every grid point, evaluates each, then writes the analysis (report.md, figures).
Resumable and idempotent: a finished run (final checkpoint present) is not retrained, a finished evaluation
(results.json for the final step) is not redone, and an interrupted run resumes from its newest checkpoint.
"""

from __future__ import annotations

import sys
import time

from absl import app, flags, logging
from ml_collections import config_flags

from ffnjax import studygrid
from ffnjax.core import rundir
from ffnjax.train import checkpoint as ckpt
from ffnjax.train.metrics import format_duration


def run_is_trained(run_dir: str, steps: int) -> bool:
  return steps in ckpt.steps(run_dir)


def run_is_evaluated(run_dir: str, steps: int) -> bool:
  return rundir.read_json(rundir.join(run_dir, "eval", "results.json"), default={}).get("step") == steps


class StudyLog:
  """STUDY/study.json: the grid, and per run what was done and how long it took (read by the report)."""

  def __init__(self, workdir: str, study, runs):
    self.path = rundir.join(workdir, "study.json")
    previous = rundir.read_json(self.path, default={}).get("runs", {})
    self.data = {"study": study.to_dict(), "runs": {r.name: previous.get(r.name, {"config": r.config_flag})
                                                    for r in runs}}
    self.save()

  def add(self, name: str, key: str, seconds: float) -> None:
    entry = self.data["runs"][name]
    entry[key] = entry.get(key, 0.0) + seconds  # an interrupted stage adds up across reruns
    self.save()

  def save(self) -> None:
    rundir.write_json(self.path, self.data)


def run_study(study, workdir: str, log=print) -> str:
  """Runs (or finishes) the whole study; returns the path of report.md."""
  from ffnjax import evaluate
  from ffnjax.analysis.report import write_report
  from ffnjax.train.loop import train

  runs = studygrid.expand_grid(study)
  rundir.mkdirs(workdir)
  record = StudyLog(workdir, study, runs)
  start = time.perf_counter()
  done_work = 0  # runs that needed work in this invocation (for the ETA)
  for i, run in enumerate(runs):
    config = studygrid.build_run_config(run)
    run_dir = rundir.join(workdir, run.name)
    steps = config.train.steps
    status = []
    if not run_is_trained(run_dir, steps):
      log(f"[{i + 1}/{len(runs)}] {run.name}: training {steps} steps")
      t = time.perf_counter()
      summary = train(config, run_dir)
      record.add(run.name, "train_wall_time_s", time.perf_counter() - t)
      if summary.get("preempted"):
        sys.exit(f"study interrupted by SIGTERM during {run.name}; rerun the same command to continue")
      status.append("trained")
    if study.evaluate and not run_is_evaluated(run_dir, steps):
      log(f"[{i + 1}/{len(runs)}] {run.name}: evaluating {config.eval.tasks}")
      t = time.perf_counter()
      evaluate.run(run_dir, step=steps, records=rundir.join(run_dir, "eval", "records.jsonl"))
      record.add(run.name, "eval_wall_time_s", time.perf_counter() - t)
      status.append("evaluated")
    if status:
      done_work += 1
      elapsed = time.perf_counter() - start
      remaining = len(runs) - i - 1
      eta = elapsed / done_work * remaining
      log(f"[{i + 1}/{len(runs)}] {run.name}: {' + '.join(status)}; runs done {i + 1}/{len(runs)}, "
          f"elapsed {format_duration(elapsed)}, ETA {format_duration(eta)}")
    else:
      log(f"[{i + 1}/{len(runs)}] {run.name}: already trained and evaluated, skipped")
  if not study.evaluate:
    return ""
  log("analysing")
  return write_report(workdir, tasks=study.analysis_tasks)


_STUDY = config_flags.DEFINE_config_file("config", None, "Study config, e.g. configs/study.py:tiny.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Study directory: one run directory per grid point.")


def main(argv):
  del argv
  logging.set_verbosity(logging.ERROR)  # Orbax warns on every read-only restore; progress is printed
  try:
    report = run_study(_STUDY.value, _WORKDIR.value, log=lambda m: print(m, file=sys.stderr, flush=True))
  except (ValueError, FileNotFoundError, PermissionError) as e:
    sys.exit(f"ffnjax.study: {type(e).__name__}: {e}")
  if report:
    print(f"report: {report}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)
