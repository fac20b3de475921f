"""One Shapley game per task, as arXiv 2409.14381 plays it (its code: llm_dissect `estimate_shapley.py` and
`get_shapley_value_statistics.py`; docs/method.md §6).

Each coalition is evaluated once for all tasks (one forward pass per batch serves every task); its record in the
coalition cache holds every task's value and per-example scores. Task t's game reads its own value, so the
estimators run once per task over the same cached coalitions. The task mean is reported as a labelled summary:
by linearity of every estimator here, the mean of the per-task values equals the value of the task-mean game.

Cornerstones, per task (the paper's reading): player i is a cornerstone of task t when removing it alone drops
the task to chance, v_t(N \\ {i}) <= chance_t + tolerance (at or below chance: a collapsed model may sit under
chance, e.g. always answering the minority class); only defined when the full model is above chance_t +
tolerance. Shares max(phi_i, 0) / sum_j max(phi_j, 0) are computed per task, then averaged over tasks.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import numpy as np

from ffnjax.shapley.cache import CHUNK, CoalitionCache
from ffnjax.shapley.cornerstones import find_cornerstones, shares
from ffnjax.shapley.players import check_coalition

# The paper's six zero-shot tasks, 1,000 examples each, acc_norm where defined else acc.
PAPER_TASKS = ("boolq", "arc_easy", "arc_challenge", "piqa", "winogrande", "openbookqa")
PAPER_LIMIT = 1000
GAMES = ("per_task", "task_mean")
CACHE_FIELDS = ("tasks",)  # held in memory; "examples" (per-example scores) stays on disk

# What one evaluation of a coalition returns per task: (value, per-example scores).
TaskEval = Callable[[list], Sequence[Mapping[str, tuple[float, list]]]]

METRIC_NAMES = {"acc": "accuracy", "acc_norm": "normalised accuracy",
                "-log(word_perplexity)": "−log word perplexity", "-log(perplexity)": "−log perplexity"}


def metric_name(metric: str) -> str:
  return METRIC_NAMES.get(metric, metric)


def example_scores(primary_metric: str | None, per_doc: Sequence[dict]) -> list:
  """Per-example scores for later bootstraps: the accuracy metric per document (0/1 as ints), or, for a
  perplexity value, each document's numeric metric inputs (e.g. {"ll", "words"})."""
  if primary_metric:
    out = [d[primary_metric] for d in per_doc]
    return [int(x) if float(x).is_integer() else float(x) for x in out]
  return [{k: v for k, v in d.items() if isinstance(v, (int, float)) and k not in ("gold", "prediction")}
          for d in per_doc]


class TaskGames:
  """Per-task value functions over one coalition cache; `task(name)` and `mean()` are value functions with a
  batch form for the estimators. Missing coalitions are evaluated once, for all tasks together."""

  def __init__(self, evaluate: TaskEval, task_names: Sequence[str], cache: CoalitionCache, chunk: int = CHUNK):
    if "tasks" not in cache.fields:
      raise ValueError("TaskGames needs a CoalitionCache opened with fields=('tasks',)")
    self._evaluate, self.task_names, self.cache, self.chunk = evaluate, list(task_names), cache, chunk
    self.evaluated = 0

  def ensure(self, coalitions) -> None:
    """Evaluates the coalitions the cache lacks, `chunk` at a time; each chunk is on disk once scored, so an
    interruption loses at most one chunk."""
    coalitions = [check_coalition(c, self.cache.num_players) for c in coalitions]
    missing = [c for c in dict.fromkeys(coalitions) if c not in self.cache]
    for start in range(0, len(missing), self.chunk):
      self._evaluate_chunk(missing[start:start + self.chunk])

  def _evaluate_chunk(self, missing: list) -> None:
    results = list(self._evaluate(missing))
    if len(results) != len(missing):
      raise ValueError(f"task evaluation returned {len(results)} results for {len(missing)} coalitions")
    values, extras = {}, {}
    for c, per_task in zip(missing, results):
      if set(per_task) != set(self.task_names):
        raise ValueError(f"task evaluation returned tasks {sorted(per_task)}, expected {sorted(self.task_names)}")
      tasks = {t: float(per_task[t][0]) for t in self.task_names}
      bad = [t for t, v in tasks.items() if math.isnan(v)]
      if bad:
        raise ValueError(f"value of tasks {bad} is NaN for coalition {sorted(c)}")
      values[c] = float(np.mean(list(tasks.values())))
      extras[c] = {"tasks": tasks, "examples": {t: per_task[t][1] for t in self.task_names}}
    self.cache.put_many(values, extras)
    self.evaluated += len(missing)

  def values(self, task: str, coalitions) -> list[float]:
    self.ensure(coalitions)
    return [float(self.cache.extra(c)["tasks"][task]) for c in coalitions]

  def task(self, name: str) -> "_Game":
    if name not in self.task_names:
      raise ValueError(f"task {name!r} is not in this game's tasks {self.task_names}")
    return _Game(lambda cs: self.values(name, cs))

  def mean(self) -> "_Game":
    def batch(coalitions):
      self.ensure(coalitions)
      return [self.cache.get(c) for c in coalitions]

    return _Game(batch)


class _Game:

  def __init__(self, batch):
    self.batch = batch

  def __call__(self, coalition) -> float:
    return self.batch([coalition])[0]


def task_report(players: Sequence[str], phi, ablation, *, metric: str, chance: float | None, num_examples: int,
                tolerance: float, v_empty: float | None = None, stderr=None) -> dict:
  """One task's entry of shapley.json: values, single-ablation drops, cornerstones, shares."""
  phi = np.asarray(phi, dtype=float)
  defined = chance is not None and ablation.full > chance + tolerance
  corner = find_cornerstones(ablation.without, chance, tolerance) if defined else []
  try:
    task_shares = list(map(float, shares(phi)))
  except ValueError:  # no player adds value (e.g. an untrained model): shares are undefined
    task_shares = None
  out = {"metric": metric, "num_examples": int(num_examples), "chance": chance, "v_full": float(ablation.full),
         "values": list(map(float, phi)), "v_without": list(map(float, ablation.without)),
         "ablation_drop": list(map(float, ablation.drop)), "shares": task_shares,
         "cornerstones_defined": bool(defined), "cornerstones": [players[i] for i in corner]}
  if v_empty is not None:
    out["v_empty"] = float(v_empty)
    out["efficiency_gap"] = float(phi.sum() - (ablation.full - v_empty))  # 0 for exact and permutation values
  if stderr is not None:
    out["stderr"] = list(map(float, stderr))
  return out


def summarize(players: Sequence[str], tasks: Mapping[str, dict], *, game: str, tolerance: float) -> dict:
  """Cross-task reading: shares per task then averaged, cornerstones by task, and the task-mean summary."""
  names = list(tasks)
  with_shares = [t for t in names if tasks[t]["shares"] is not None]
  mean_of = lambda key: list(map(float, np.mean([tasks[t][key] for t in names], axis=0)))  # noqa: E731
  chances = [tasks[t]["chance"] for t in names]
  defined = [t for t in names if tasks[t]["cornerstones_defined"]]
  out = {
      "shares_mean": (list(map(float, np.mean([tasks[t]["shares"] for t in with_shares], axis=0)))
                      if with_shares else None),
      "shares_mean_over": with_shares,
      "cornerstones_by_task": {t: tasks[t]["cornerstones"] for t in names},
      "cornerstones_every_task": ([p for p in players if all(p in tasks[t]["cornerstones"] for t in defined)]
                                  if defined else []),
      "cornerstones_defined_for": defined,
      "task_mean": {
          "what": "summary: the mean over tasks of each task's values (equal, by linearity, to the values of one "
                  "game on the task-mean metric); not the paper's cornerstone reading",
          "tasks": names, "v_full": float(np.mean([tasks[t]["v_full"] for t in names])),
          "values": mean_of("values"), "ablation_drop": mean_of("ablation_drop"),
          "chance": float(np.mean(chances)) if all(c is not None for c in chances) else None},
  }
  if game == "task_mean":  # our extension: cornerstones and shares read from the task-mean game
    tm = out["task_mean"]
    without = mean_of("v_without")
    ok = tm["chance"] is not None and tm["v_full"] > tm["chance"] + tolerance
    tm["cornerstones_defined"] = bool(ok)
    tm["cornerstones"] = [players[i] for i in find_cornerstones(without, tm["chance"], tolerance)] if ok else []
    try:
      tm["shares"] = list(map(float, shares(tm["values"])))
    except ValueError:
      tm["shares"] = None
  return out


def check_game_tasks(prepared_tasks: Sequence, perplexity_value: bool) -> None:
  """Refuses a task without an accuracy metric unless -log(perplexity) values were asked for (our extension)."""
  for task in prepared_tasks:
    if not task.primary_metric and not perplexity_value:
      raise ValueError(f"--tasks: {task.name} has no accuracy metric; the paper's games use acc_norm/acc. Pass "
                       f"--perplexity_value to play it with -log(perplexity) as the value (our extension, "
                       f"docs/method.md)")


def value_metric(task) -> str:
  """The name of the metric a task's game uses."""
  if task.primary_metric:
    return task.primary_metric
  for name in ("word_perplexity", "perplexity"):
    if name in task.higher_is_better:
      return f"-log({name})"
  raise ValueError(f"task {task.name}: no accuracy or perplexity metric to use as a Shapley value")

