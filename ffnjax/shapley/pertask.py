"""One Shapley game per task, as arXiv 2409.14381 plays it (its code: llm_dissect `estimate_shapley.py` and
`get_shapley_value_statistics.py`; docs/method.md §6).

Each coalition is evaluated once for all tasks (one forward pass per batch serves every task); its record in the
coalition cache holds every task's value and per-example scores. Task t's game reads its own value, so the
estimators run once per task over the same cached coalitions. The task mean is reported as a labelled summary:
by linearity of every estimator here, the mean of the per-task values equals the value of the task-mean game.

Cornerstones, per task (the paper's reading): player i is a cornerstone of task t when removing it alone drops
the task to chance, v_t(N \\ {i}) <= chance_t + tolerance (at or below chance: a collapsed model may sit under
chance, e.g. always answering the minority class); only defined when the full model is above chance_t +
tolerance. Ours on top: only when the drop's bootstrap interval excludes 0 and v_t(N)'s interval lies above
chance (cornerstones.read_cornerstones); always read from the accuracy game, whatever `--value` the values use.
Shares max(phi_i, 0) / sum_j max(phi_j, 0) are computed per task, then averaged over tasks. Every value, drop and
share carries a bootstrap interval over the task's examples (intervals.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ffnjax.core import bootstrap
from ffnjax.shapley.cache import CHUNK, CoalitionCache
from ffnjax.shapley.cornerstones import read_cornerstones, shares
from ffnjax.shapley.intervals import TaskIntervals
from ffnjax.shapley.players import check_coalition

# The paper's six zero-shot tasks, 1,000 examples each, acc_norm where defined else acc.
PAPER_TASKS = ("boolq", "arc_easy", "arc_challenge", "piqa", "winogrande", "openbookqa")
PAPER_LIMIT = 1000
GAMES = ("per_task", "task_mean")
# acc: the paper's value (acc_norm where defined, else acc). Ours: the mean log-likelihood of the gold continuation
# per example (gold_ll), or per token of it, averaged over examples (gold_ll_norm).
VALUES = ("acc", "gold_ll", "gold_ll_norm")
CACHE_FIELDS = ("tasks", "examples", "gold")  # held in memory: the bootstraps resample the per-example scores

# What one evaluation of a coalition returns per task: (value, per-example scores, gold log-likelihoods or None).
TaskEval = Callable[[list], Sequence[Mapping[str, tuple[float, list, dict | None]]]]

METRIC_NAMES = {
  "acc": "accuracy",
  "acc_norm": "normalised accuracy",
  "-log(word_perplexity)": "−log word perplexity",
  "-log(perplexity)": "−log perplexity",
  "gold_ll": "gold log-likelihood (nats)",
  "gold_ll_norm": "gold log-likelihood per token (nats)",
}


def metric_name(metric: str) -> str:
  return METRIC_NAMES.get(metric, metric)


def gold_scores(per_doc: Sequence[dict]) -> dict | None:
  """Per-example log-likelihood of the gold continuation and its length in tokens ({"ll": [...], "tokens":
  [...]}), for the log-likelihood values; None for a task whose documents have no single gold continuation."""
  if not per_doc or any("gold_ll" not in d for d in per_doc):
    return None
  return {"ll": [float(d["gold_ll"]) for d in per_doc], "tokens": [int(d["gold_tokens"]) for d in per_doc]}


def example_scores(primary_metric: str | None, per_doc: Sequence[dict]) -> list:
  """Per-example scores for later bootstraps: the accuracy metric per document (0/1 as ints), or, for a
  perplexity value, each document's numeric metric inputs (e.g. {"ll", "words"})."""
  if primary_metric:
    out = [d[primary_metric] for d in per_doc]
    return [int(x) if float(x).is_integer() else float(x) for x in out]
  return [
    {k: v for k, v in d.items() if isinstance(v, (int, float)) and k not in ("gold", "prediction")} for d in per_doc
  ]


class TaskGames:
  """Per-task value functions over one coalition cache; `task(name)` and `mean()` are value functions with a
  batch form for the estimators. Missing coalitions are evaluated once, for all tasks together. `metrics` names each
  task's accuracy-game metric (value_metric); `value` picks the value the games play (VALUES)."""

  def __init__(
    self,
    evaluate: TaskEval,
    task_names: Sequence[str],
    cache: CoalitionCache,
    metrics: Mapping[str, str] | None = None,
    value: str = "acc",
    chunk: int = CHUNK,
  ):
    if set(CACHE_FIELDS) - set(cache.fields):
      raise ValueError(f"TaskGames needs a CoalitionCache opened with fields={CACHE_FIELDS}")
    if value not in VALUES:
      raise ValueError(f"--value={value!r}: must be one of {VALUES}")
    self._evaluate, self.task_names, self.cache, self.value = evaluate, list(task_names), cache, value
    self.metrics = dict(metrics or {t: "acc" for t in self.task_names})
    self.chunk = chunk
    self.evaluated = 0

  def ensure(self, coalitions) -> None:
    """Evaluates the coalitions the cache lacks, `chunk` at a time; each chunk is on disk once scored, so an
    interruption loses at most one chunk."""
    coalitions = [check_coalition(c, self.cache.num_players) for c in coalitions]
    missing = [c for c in dict.fromkeys(coalitions) if c not in self.cache]
    for start in range(0, len(missing), self.chunk):
      self._evaluate_chunk(missing[start : start + self.chunk])

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
      gold = {t: per_task[t][2] for t in self.task_names if len(per_task[t]) > 2 and per_task[t][2] is not None}
      if gold:
        extras[c]["gold"] = gold
    self.cache.put_many(values, extras)
    self.evaluated += len(missing)

  def examples(self, task: str, coalitions, value: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-example scores (num [K, n], den [K, n] or None) whose mean (or ratio of sums) is each coalition's
    value: the bootstraps resample their columns."""
    value = value or self.value
    self.ensure(coalitions)
    records = [self.cache.extra(c) for c in coalitions]
    if value == "acc":
      rows = [r["examples"][task] for r in records]
      if rows and rows[0] and isinstance(rows[0][0], Mapping):  # a perplexity value: sum(ll) / sum(words)
        stat = bootstrap.statistic_for(self.metrics[task][len("-log(") : -1])
        pairs = [bootstrap.fields(row, stat) for row in rows]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
      return np.asarray(rows, np.float64), None
    if any(task not in r.get("gold", {}) for r in records):
      raise ValueError(
        f"--value={value}: the coalition cache {self.cache.path} holds no gold log-likelihoods for "
        f"task {task} (the task has no gold continuation, or the cache was written before they were "
        f"recorded; use another --output)"
      )
    ll = np.asarray([r["gold"][task]["ll"] for r in records], np.float64)
    if value == "gold_ll_norm":
      ll = ll / np.asarray([r["gold"][task]["tokens"] for r in records], np.float64)
    return ll, None

  def values(self, task: str, coalitions, value: str | None = None) -> list[float]:
    if (value or self.value) == "acc":
      self.ensure(coalitions)
      return [float(self.cache.extra(c)["tasks"][task]) for c in coalitions]
    return list(map(float, self.examples(task, coalitions, value)[0].mean(axis=1)))

  def metric(self, task: str, value: str | None = None) -> str:
    """The name of the metric task's game plays under `value`."""
    value = value or self.value
    return self.metrics[task] if value == "acc" else value

  def task(self, name: str, value: str | None = None) -> _Game:
    if name not in self.task_names:
      raise ValueError(f"task {name!r} is not in this game's tasks {self.task_names}")
    return _Game(lambda cs: self.values(name, cs, value))

  def mean(self) -> _Game:
    def batch(coalitions):
      self.ensure(coalitions)
      return [self.cache.get(c) for c in coalitions]

    return _Game(batch)


class _Game:
  def __init__(self, batch):
    self.batch = batch

  def __call__(self, coalition) -> float:
    return self.batch([coalition])[0]


def _pairs(intervals) -> list:
  return [[float(i.low), float(i.high)] for i in intervals]


def task_report(
  players: Sequence[str],
  phi,
  ablation,
  ci: TaskIntervals,
  *,
  metric: str,
  chance: float | None,
  tolerance: float,
  corner: tuple | None = None,
  v_empty: float | None = None,
  stderr=None,
) -> dict:
  """One task's entry of shapley.json: values, single-ablation drops, shares, each with its interval (`ci`,
  [low, high]) and whether that covers 0, then the cornerstones. `corner` = (metric, Ablation, TaskIntervals) of
  the accuracy game when the values are of another (a log-likelihood value has no chance level)."""
  phi = np.asarray(phi, dtype=float)
  try:
    task_shares = list(map(float, shares(phi)))
  except ValueError:  # no player adds value (e.g. an untrained model): shares are undefined
    task_shares = None
  out = {
    "metric": metric,
    "num_examples": int(ci.num_examples),
    "chance": chance,
    "v_full": float(ablation.full),
    "values": list(map(float, phi)),
    "v_without": list(map(float, ablation.without)),
    "ablation_drop": list(map(float, ablation.drop)),
    "shares": task_shares,
    "ci": {
      "v_full": [float(ci.full.low), float(ci.full.high)],
      "values": _pairs(ci.phi),
      "v_without": _pairs(ci.without),
      "ablation_drop": _pairs(ci.drop),
      "shares": _pairs(ci.shares) if ci.shares is not None and task_shares is not None else None,
    },
    "covers_zero": {
      "values": [not i.excludes(0.0) for i in ci.phi],
      "ablation_drop": [not i.excludes(0.0) for i in ci.drop],
    },
    "significant_drops": [p for p, i in zip(players, ci.drop) if i.excludes(0.0)],
  }
  c_metric, c_ablation, c_ci = corner or (metric, ablation, ci)
  if corner is not None:
    out["cornerstone_game"] = {
      "metric": c_metric,
      "v_full": float(c_ablation.full),
      "v_without": list(map(float, c_ablation.without)),
      "ablation_drop": list(map(float, c_ablation.drop)),
      "ci": {"v_full": [float(c_ci.full.low), float(c_ci.full.high)], "ablation_drop": _pairs(c_ci.drop)},
      "significant_drops": [p for p, i in zip(players, c_ci.drop) if i.excludes(0.0)],
    }
  reading = read_cornerstones(
    c_ablation.without, c_ablation.full, c_ci.full.low, [i.low for i in c_ci.drop], chance, tolerance
  )
  out.update(
    {
      "cornerstones_defined": reading.defined,
      "cornerstones": [players[i] for i in reading.significant],
      "cornerstones_point_rule": [players[i] for i in reading.point_rule],
      "cornerstones_undefined": reading.reason,
    }
  )
  if v_empty is not None:
    out["v_empty"] = float(v_empty)
    out["efficiency_gap"] = float(phi.sum() - (ablation.full - v_empty))  # 0 for exact and permutation values
  if stderr is not None:
    out["stderr"] = list(map(float, stderr))
  return out


def summarize(
  players: Sequence[str],
  tasks: Mapping[str, dict],
  *,
  game: str,
  tolerance: float,
  ci: Mapping[str, tuple[TaskIntervals, TaskIntervals]],
  resamples: int = bootstrap.RESAMPLES,
  seed: int = bootstrap.SEED,
  confidence: float = bootstrap.CONFIDENCE,
) -> dict:
  """Cross-task reading: shares per task then averaged, cornerstones by task, and the task-mean summary, with
  intervals: tasks are resampled independently, so replicate r of a mean is the mean of the tasks' replicates r.
  ci[task] = (the value game's intervals, the cornerstone game's)."""
  names = list(tasks)
  with_shares = [t for t in names if tasks[t]["shares"] is not None]
  mean_of = lambda key: list(map(float, np.mean([tasks[t][key] for t in names], axis=0)))
  chances = [tasks[t]["chance"] for t in names]
  defined = [t for t in names if tasks[t]["cornerstones_defined"]]

  def reps(what: str, task_names, which: int = 0) -> np.ndarray:  # [R, ...] mean over tasks, equal weights
    return np.mean(
      [
        bootstrap.as_random_draws(
          ci[t][which].replicates[what], ci[t][which].weights, resamples, bootstrap.task_seed(seed, t)
        )
        for t in task_names
      ],
      axis=0,
    )

  uniform = np.full(resamples, 1.0 / resamples)

  def ci_of(point, r) -> list:
    return _pairs(bootstrap.interval(p, r[:, i], uniform, confidence) for i, p in enumerate(point))

  shares_mean = list(map(float, np.mean([tasks[t]["shares"] for t in with_shares], axis=0))) if with_shares else None
  out = {
    "shares_mean": shares_mean,
    "shares_mean_ci": ci_of(shares_mean, reps("shares", with_shares)) if with_shares else None,
    "shares_mean_over": with_shares,
    "cornerstones_by_task": {t: tasks[t]["cornerstones"] for t in names},
    "cornerstones_every_task": (
      [p for p in players if all(p in tasks[t]["cornerstones"] for t in defined)] if defined else []
    ),
    "cornerstones_defined_for": defined,
    "task_mean": {
      "what": "summary: the mean over tasks of each task's values (equal, by linearity, to the values of one "
      "game on the task-mean metric); not the paper's cornerstone reading",
      "tasks": names,
      "v_full": float(np.mean([tasks[t]["v_full"] for t in names])),
      "values": mean_of("values"),
      "ablation_drop": mean_of("ablation_drop"),
      "chance": float(np.mean(chances)) if all(c is not None for c in chances) else None,
    },
  }
  tm = out["task_mean"]
  tm["ci"] = {
    "v_full": ci_of([tm["v_full"]], reps("full", names)[:, None])[0],
    "values": ci_of(tm["values"], reps("phi", names)),
    "ablation_drop": ci_of(tm["ablation_drop"], reps("drop", names)),
  }
  if game == "task_mean":  # our extension: cornerstones and shares read from the task-mean (accuracy) game
    games = [tasks[t].get("cornerstone_game", tasks[t]) for t in names]
    full = float(np.mean([g["v_full"] for g in games]))
    without = np.mean([g["v_without"] for g in games], axis=0)
    full_low = ci_of([full], reps("full", names, 1)[:, None])[0][0]
    drop_low = [lo for lo, _ in ci_of(full - without, reps("drop", names, 1))]
    reading = read_cornerstones(without, full, full_low, drop_low, tm["chance"], tolerance)
    tm.update(
      {
        "cornerstones_defined": reading.defined,
        "cornerstones": [players[i] for i in reading.significant],
        "cornerstones_point_rule": [players[i] for i in reading.point_rule],
        "cornerstones_undefined": reading.reason,
      }
    )
    try:
      tm["shares"] = list(map(float, shares(tm["values"])))
    except ValueError:
      tm["shares"] = None
  return out


def check_game_tasks(prepared_tasks: Sequence, perplexity_value: bool) -> None:
  """Refuses a task without an accuracy metric unless -log(perplexity) values were asked for (our extension)."""
  for task in prepared_tasks:
    if not task.primary_metric and not perplexity_value:
      raise ValueError(
        f"--tasks: {task.name} has no accuracy metric; the paper's games use acc_norm/acc. Pass "
        f"--perplexity_value to play it with -log(perplexity) as the value (our extension, "
        f"docs/method.md)"
      )


def value_metric(task) -> str:
  """The name of the metric a task's game uses."""
  if task.primary_metric:
    return task.primary_metric
  for name in ("word_perplexity", "perplexity"):
    if name in task.higher_is_better:
      return f"-log({name})"
  raise ValueError(f"task {task.name}: no accuracy or perplexity metric to use as a Shapley value")
