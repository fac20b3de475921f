"""Bootstrap intervals for every metric, RI, average RI and importance score of a study (docs/method.md §5.4).

The evaluator's per-document records (RUN/eval/records.jsonl) are resampled by document with
`ffnjax.core.bootstrap`: one count matrix per (family, task), shared by every model of the family, so each RI is a
*paired* comparison with its baseline on the same resampled documents. The average RI and the layerwise importance
are recomputed on every resample from the same per-task replicates, so their intervals carry the correlation
between tasks of one model and between configurations of one family. With several seeds, each replicate also
draws the seeds with replacement (`bootstrap.combine_seeds`), so the seed-to-seed spread is in the interval.

A task carries no signal in a family when every model of it (baseline included, all seeds) has an interval that
covers the chance level; such a task is left out of that family's averages with the reason in the report.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence

import numpy as np

from ffnjax.analysis.importance import importance as layer_importance
from ffnjax.analysis.results import AnalysisError
from ffnjax.analysis.results_table import ResultsTable
from ffnjax.analysis.ri import TaskMetric, sign
from ffnjax.core import bootstrap, rundir

RECORDS_FILE = ("eval", "records.jsonl")
EXCLUDED_NO_SIGNAL = "no signal"

Records = dict[str, list[dict]]  # task -> per-document records of one run
ModelKey = tuple[str, int]  # (model name, seed)


def load_records(run_dir: str) -> Records | None:
  """RUN/eval/records.jsonl grouped by task; None when the run has none."""
  path = rundir.join(run_dir, *RECORDS_FILE)
  if not rundir.exists(path):
    return None
  out: Records = {}
  for n, line in enumerate(rundir.read_text(path).splitlines(), start=1):
    if line.strip():
      try:
        rec = json.loads(line)
        out.setdefault(rec["task"], []).append(rec)
      except (json.JSONDecodeError, KeyError) as e:
        raise AnalysisError(f"{path}:{n}: not a record line ({e})") from None
  return out


def load_study_records(study_dir: str, table: ResultsTable) -> dict[ModelKey, Records]:
  """Records of every run of the table that has them, keyed like the table's models."""
  out = {}
  for model in table.models.values():  # load_study noted each model's run directory: no second results read
    recs = load_records(rundir.join(study_dir, model.run)) if model.run else None
    if recs is not None:
      out[model.key] = recs
  return out


@dataclasses.dataclass
class Uncertainty:
  """Intervals of a study; `None` entries where records are missing."""

  resamples: int
  seed: int
  confidence: float
  metric: dict[ModelKey, dict[TaskMetric, bootstrap.Interval]]  # per run
  ri: dict[tuple[str, str], dict[TaskMetric | str, bootstrap.Interval]]  # (family, config) -> pair | "average"
  importance: dict[str, list[bootstrap.Interval | None]]  # family -> per layer (None: never deactivated)
  no_signal: dict[str, dict[TaskMetric, str]]  # family -> pair -> why
  positions: dict[str, dict[str, bootstrap.Interval]] = dataclasses.field(default_factory=dict)
  position_differences: dict[str, dict[tuple[str, str], bootstrap.Interval]] = dataclasses.field(
    default_factory=dict
  )  # family -> (p, q) -> mean average RI of p minus that of q

  def position_ranking(self, family: str) -> list[tuple[str, bootstrap.Interval]]:
    """Positions by mean average RI over their ratios, best first."""
    return sorted(self.positions.get(family, {}).items(), key=lambda kv: -kv[1].value)

  def ri_interval(self, family: str, name: str, key: TaskMetric | str) -> bootstrap.Interval | None:
    return self.ri.get((family, name), {}).get(key)


class Replicates:
  """Per-(family, task) resamples and per-(model, pair) metric replicates, computed once."""

  def __init__(self, table: ResultsTable, records: Mapping[ModelKey, Records], resamples: int, seed: int):
    self.table, self.records, self.n_resamples, self.seed = table, records, resamples, seed
    self._res: dict[tuple[str, str], tuple[list[int], bootstrap.Resamples]] = {}
    self._cache: dict[tuple[ModelKey, TaskMetric], np.ndarray | None] = {}

  def resamples(self, family: str, task: str) -> tuple[list[int], bootstrap.Resamples] | None:
    key = (family, task)
    if key not in self._res:
      ids = None
      for m in self.table.models_in(family):
        recs = self.records.get(m.key, {}).get(task)
        if recs:
          these = sorted(int(r["doc_id"]) for r in recs)
          if ids is not None and these != ids:
            raise AnalysisError(
              f"family {family}, task {task}: runs were evaluated on different documents "
              f"({m.name} seed {m.seed} differs); evaluate every run with the same data and limit"
            )
          ids = these
      self._res[key] = (
        None
        if ids is None
        else (ids, bootstrap.for_documents(len(ids), self.n_resamples, bootstrap.task_seed(self.seed, task)))
      )
    return self._res[key]

  def metric(self, model, pair: TaskMetric) -> np.ndarray | None:
    """Replicates [R] of one run's metric, or None without records."""
    key = (model.key, pair)
    if key not in self._cache:
      task, metric = pair
      got = self.resamples(model.family, task)
      recs = self.records.get(model.key, {}).get(task)
      if got is None or not recs or metric not in bootstrap.STATISTICS:
        self._cache[key] = None
      else:
        by_id = {int(r["doc_id"]): r for r in recs}
        self._cache[key] = bootstrap.replicates([by_id[i] for i in got[0]], metric, got[1])
    return self._cache[key]

  def weights(self, family: str, task: str) -> np.ndarray:
    return self.resamples(family, task)[1].weights


def metric_interval(table: ResultsTable, reps: Replicates, model, pair: TaskMetric) -> bootstrap.Interval | None:
  r = reps.metric(model, pair)
  row = table.get(model, *pair)
  if r is None or row is None:
    return None
  return bootstrap.interval(row.value, r, reps.weights(model.family, pair[0]))


def no_signal_pairs(
  table: ResultsTable, reps: Replicates, tasks: Sequence[TaskMetric], confidence: float
) -> dict[str, dict[TaskMetric, str]]:
  """family -> {pair: why} for accuracy-like pairs where every model's interval covers chance."""
  out: dict[str, dict[TaskMetric, str]] = {}
  for family in table.families:
    for pair in tasks:
      rows, covers = 0, True
      for m in table.models_in(family):
        row = table.get(m, *pair)
        i = metric_interval(table, reps, m, pair)
        if row is None or i is None or not row.higher_is_better or row.chance is None:
          covers = False
          break
        rows += 1
        covers &= i.low <= row.chance <= i.high
      if rows and covers:
        out.setdefault(family, {})[pair] = (
          f"{EXCLUDED_NO_SIGNAL}: all {rows} runs of family {family} are within "
          f"their {confidence:.0%} interval of chance {row.chance:.3g}"
        )
  return out


def _ri_replicates(reps: Replicates, r, pair: TaskMetric) -> np.ndarray | None:
  m, b = reps.metric(r.model, pair), reps.metric(r.baseline, pair)
  if m is None or b is None:
    return None
  row = reps.table.get(r.baseline, *pair)
  with np.errstate(divide="ignore", invalid="ignore"):
    return np.where(b != 0, sign(row.higher_is_better) * (m - b) / np.where(b != 0, b, 1.0) * 100.0, np.nan)


def compute(
  analysis, reps: Replicates, *, confidence: float = bootstrap.CONFIDENCE, no_signal: dict | None = None
) -> Uncertainty:
  """Intervals for `analysis` (from report.analyze). Tasks are resampled independently of each other; the average
  RI of a replicate is the mean of its per-task replicates (tiny tasks' exact enumerations are redrawn as random
  replicates first, so every replicate weighs the same)."""
  table, resamples, seed = reps.table, reps.n_resamples, reps.seed
  metric = {
    m.key: {p: i for p in analysis.tasks if (i := metric_interval(table, reps, m, p)) is not None}
    for m in table.models.values()
  }
  uniform = np.full(resamples, 1.0 / resamples)
  exact: dict[tuple[ModelKey, TaskMetric], tuple[np.ndarray, np.ndarray]] = {}  # replicates with their weights
  per_model: dict[ModelKey, dict[TaskMetric | str, np.ndarray]] = {}
  for r in analysis.ris:
    got = {}
    for pair in r.per_task:
      x = _ri_replicates(reps, r, pair)
      if x is not None:
        exact[(r.model.key, pair)] = (x, reps.weights(r.model.family, pair[0]))
        got[pair] = bootstrap.as_random_draws(x, exact[(r.model.key, pair)][1], resamples, seed)
    if got and len(got) == len(r.per_task):  # the average needs every kept task
      got["average"] = np.mean(np.stack(list(got.values())), axis=0)
    per_model[r.model.key] = got
  ri: dict[tuple[str, str], dict] = {}
  averages: dict[tuple[str, str], np.ndarray] = {}  # (family, config) -> average-RI replicates over seeds
  for c in analysis.configs:
    out = {}
    for key, point in list(c.per_task_mean.items()) + [("average", c.average_mean)]:
      stack = [per_model[s.model.key][key] for s in c.per_seed if key in per_model.get(s.model.key, {})]
      combined = bootstrap.combine_seeds(np.stack(stack), seed) if stack and len(stack) == len(c.per_seed) else None
      if key == "average" and combined is not None:
        averages[(c.family, c.name)] = combined
      if len(c.per_seed) == 1 and (c.per_seed[0].model.key, key) in exact:  # one seed: the task's own resamples
        out[key] = bootstrap.interval(point, *exact[(c.per_seed[0].model.key, key)], confidence)
      elif combined is not None:
        out[key] = bootstrap.interval(point, combined, uniform, confidence)
    ri[(c.family, c.name)] = out
  positions, differences = _position_intervals(analysis.configs, averages, uniform, confidence)
  return Uncertainty(
    resamples,
    seed,
    confidence,
    metric,
    ri,
    _importance_intervals(analysis, per_model, resamples, seed, confidence),
    dict(no_signal or {}),
    positions,
    differences,
  )


def _position_intervals(configs, averages, uniform, confidence):
  """Per family: each position's mean average RI over its ratios, and every pairwise difference, on the same
  replicates (so a difference's interval is paired too)."""
  positions, differences = {}, {}
  for family in dict.fromkeys(c.family for c in configs):
    reps, points = {}, {}
    for position in dict.fromkeys(c.position for c in configs if c.family == family):
      members = [c for c in configs if c.family == family and c.position == position]
      if members and all((family, c.name) in averages for c in members):
        reps[position] = np.mean([averages[(family, c.name)] for c in members], axis=0)
        points[position] = float(np.mean([c.average_mean for c in members]))
    positions[family] = {p: bootstrap.interval(points[p], reps[p], uniform, confidence) for p in reps}
    differences[family] = {
      (p, q): bootstrap.interval(points[p] - points[q], reps[p] - reps[q], uniform, confidence)
      for p in reps
      for q in reps
      if p != q
    }
  return positions, differences


def _importance_intervals(analysis, per_model, resamples: int, seed: int, confidence: float) -> dict:
  out = {}
  uniform = np.full(resamples, 1.0 / resamples)
  for family, summary in analysis.importance.items():
    seeds = {}
    for s in summary.seeds:
      ris = [r for r in analysis.ris if r.model.family == family and r.model.seed == s]
      if any("average" not in per_model.get(r.model.key, {}) for r in ris if r.model.deactivated):
        seeds = None
        break
      scores = np.full((resamples, summary.num_layers), np.nan)
      for k in range(resamples):
        triples = [
          (r.model.name, r.model.layer_types, float(per_model[r.model.key]["average"][k]))
          for r in ris
          if r.model.deactivated
        ]
        try:
          scores[k] = layer_importance(triples, summary.num_layers).score
        except AnalysisError:
          pass
      seeds[s] = scores
    if not seeds:
      continue
    stack = np.stack(list(seeds.values()))  # [S, R, L]
    intervals = []
    for layer in range(summary.num_layers):
      point = summary.score_mean[layer]
      intervals.append(
        None
        if not np.isfinite(point)
        else bootstrap.interval(point, bootstrap.combine_seeds(stack[:, :, layer], seed), uniform, confidence)
      )
    out[family] = intervals
  return out
