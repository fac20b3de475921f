"""The placement study, end to end (`python -m ffnjax.study --config=configs/study.py:tiny --workdir=DIR`).

Trains the baseline and every grid point, evaluates each, then writes the analysis (report.md, figures).
Resumable and idempotent: a finished run (final checkpoint present) is not retrained, a finished evaluation
(results.json for the final step) is not redone, and an interrupted run resumes from its newest checkpoint.
"""

from __future__ import annotations

import sys
import time

from ffnjax.analysis.report import write_report
from ffnjax.analysis.results import AnalysisError
from ffnjax.analysis.ri import check_chance_rule, parse_task_set
from ffnjax.core import rundir, studygrid
from ffnjax.core.config import decay_start_step
from ffnjax.core.progress import Eta, format_duration
from ffnjax.data import readers, tokenstore
from ffnjax.eval import run as eval_run
from ffnjax.eval import sources
from ffnjax.eval import tasks as tasks_lib
from ffnjax.train import checkpoint as ckpt
from ffnjax.train import experiment
from ffnjax.train.loop import train


def run_is_trained(run_dir: str, steps: int) -> bool:
  return steps in ckpt.steps(run_dir)


def run_is_evaluated(run_dir: str, steps: int) -> bool:
  return rundir.read_json(rundir.join(run_dir, "eval", "results.json"), default={}).get("step") == steps


class StudyLog:
  """STUDY/study.json: the grid, and per run what was done and how long it took (read by the report)."""

  def __init__(self, workdir: str, study, runs):
    self.path = rundir.join(workdir, "study.json")
    previous = rundir.read_json(self.path, default={}).get("runs", {})
    self.data = {
      "study": study.to_dict(),
      "runs": {r.name: previous.get(r.name, {"config": r.config_flag}) for r in runs},
    }
    self.save()

  def add(self, name: str, key: str, seconds: float) -> None:
    entry = self.data["runs"][name]
    entry[key] = entry.get(key, 0.0) + seconds  # an interrupted stage adds up across reruns
    self.save()

  def save(self) -> None:
    rundir.write_json(self.path, self.data)


def _eval_problems(config, data_dir: str) -> list[str]:
  """Every evaluation file of config.eval.tasks that is missing under data_dir (one line each)."""
  if data_dir == "embedded":
    return []  # built on demand from the embedded corpus (experiment.validate refuses it for FineWeb-Edu configs)
  fetch = "write it with `python -m ffnjax.data.fetch --what=eval --output=DIR`"
  if not data_dir:
    return [f"eval.data_dir is empty: give the directory of evaluation files ({fetch})"]
  out = []
  if not rundir.isdir(data_dir):
    out.append(f"eval.data_dir={data_dir}: no such directory ({fetch})")
  for task in tasks_lib.parse_tasks(config.eval.tasks):
    if rundir.isdir(data_dir) and (
      sources.find_file(data_dir, task.stems())
      or (task.tfds is not None and sources.tfds_dir_exists(data_dir, task.tfds))
    ):
      continue
    stem = rundir.join(data_dir, task.stems()[0])
    out.append(f"eval task {task.name}: missing {stem}.jsonl (or .json, .parquet, -*.parquet shards)")
  return out


def _train_data_problems(config) -> list[str]:
  data = config.data
  if data.path:
    return (
      []
      if tokenstore.is_prepared(data.path)
      else [
        f"data.path={data.path}: not prepared data (no {tokenstore.MANIFEST}); write it with "
        "`python -m ffnjax.data.prepare`"
      ]
    )
  if data.source in ("fineweb_edu", "text_files"):
    try:
      readers.resolve_inputs(data.source, data.input)
    except (ValueError, FileNotFoundError) as e:
      hint = (
        " (download: `python -m ffnjax.data.fetch --what=fineweb_edu --subset=sample-10BT --output=data/fineweb-edu`)"
        if data.source == "fineweb_edu"
        else ""
      )
      return [f"training data: data.{str(e).lstrip('-')}{hint}"]
  return []


def preflight(study, runs) -> list[str]:
  """What would make the study fail after training started: bad run configs, an analysis task set that the
  evaluation does not produce, missing evaluation files or training data. Returns one line per problem."""
  problems: list[str] = []
  pairs = ()
  try:
    pairs = parse_task_set(study.analysis_tasks)
    check_chance_rule(study.get("chance_rule", "family"))
  except AnalysisError as e:
    problems.append(f"study.analysis_tasks: {e}")
  checked = set()
  for run in runs:
    try:
      config = studygrid.build_run_config(run)
      experiment.validate(config)
    except ValueError as e:
      problems.append(f"run {run.name}: {e}")
      continue
    key = (config.eval.tasks, config.eval.data_dir, config.data.source, config.data.path, config.data.input)
    if key in checked:
      continue
    checked.add(key)
    if study.evaluate:
      try:
        evaluated = {t.name: t for t in tasks_lib.parse_tasks(config.eval.tasks)}
      except ValueError as e:
        problems.append(f"eval.tasks: {e}")
        continue
      for task, metric in pairs:
        if task not in evaluated:
          problems.append(
            f"study.analysis_tasks needs {task}:{metric}, but eval.tasks={config.eval.tasks!r} does not evaluate {task}"
          )
        elif metric not in evaluated[task].higher_is_better:
          problems.append(
            f"study.analysis_tasks needs {task}:{metric}, but {task} reports only "
            f"{sorted(evaluated[task].higher_is_better)}"
          )
      problems += _eval_problems(config, config.eval.data_dir)
    problems += _train_data_problems(config)
  return list(dict.fromkeys(problems))


def extend_from_shorter_budget(workdir: str, runs, run, run_dir: str) -> str | None:
  """Over-training study (method.md §3): a run without checkpoints starts from the pre-decay checkpoint of the same
  model on the next smaller budget. WSD's learning rate before the decay does not depend on the run length and the
  data order is a function of (seed, step), so this equals training the longer budget from scratch. Returns the
  copied checkpoint's path, or None when there is nothing to extend."""
  shorter = studygrid.shorter_budget_run(runs, run)
  if shorter is None or ckpt.steps(run_dir):
    return None
  shorter_dir = rundir.join(workdir, shorter.name)
  step = decay_start_step(studygrid.build_run_config(shorter).train)
  if step not in ckpt.steps(shorter_dir):
    return None
  source = rundir.join(shorter_dir, "checkpoints", str(step))
  target = rundir.join(run_dir, "checkpoints", str(step))
  for rel in rundir.walk_files(source):
    rundir.copy(rundir.join(source, rel), rundir.join(target, rel))
  return source


def run_study(study, workdir: str, log=print) -> str:
  """Runs (or finishes) the whole study; returns the path of report.md. Checks everything it can first."""
  runs = studygrid.expand_grid(study)
  problems = preflight(study, runs)
  if problems:
    raise studygrid.StudyError(
      f"the study cannot run; nothing was trained. Fix these {len(problems)} problem(s):\n"
      + "\n".join(f"  - {p}" for p in problems)
    )

  rundir.mkdirs(workdir)
  record = StudyLog(workdir, study, runs)
  eta = Eta(len(runs))
  done_work = 0  # runs that needed work in this invocation: the ETA's rate
  for i, run in enumerate(runs):
    config = studygrid.build_run_config(run)
    run_dir = rundir.join(workdir, run.name)
    steps = config.train.steps
    status = []
    if not run_is_trained(run_dir, steps):
      source = extend_from_shorter_budget(workdir, runs, run, run_dir)
      if source:
        log(f"[{i + 1}/{len(runs)}] {run.name}: starts from {source} (pre-decay checkpoint of the shorter budget)")
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
      eval_run.run(run_dir, step=steps, records=rundir.join(run_dir, "eval", "records.jsonl"))
      record.add(run.name, "eval_wall_time_s", time.perf_counter() - t)
      status.append("evaluated")
    if status:
      done_work += 1
      log(
        f"[{i + 1}/{len(runs)}] {run.name}: {' + '.join(status)}; runs done {i + 1}/{len(runs)}, "
        f"elapsed {format_duration(eta.elapsed())}, {eta.text(done_work, remaining=len(runs) - i - 1)}"
      )
    else:
      log(f"[{i + 1}/{len(runs)}] {run.name}: already trained and evaluated, skipped")
  if not study.evaluate:
    return ""
  log("analysing")
  return write_report(
    workdir,
    tasks=study.analysis_tasks,
    chance_rule=study.get("chance_rule", "family"),
    summary=study.get("summary") or None,
  )
