"""Relative improvement (method.md §5), chance-level exclusion (§4) and task sets.

RI(m, T) = s(T) * (metric(m, T) - metric(baseline, T)) / metric(baseline, T) * 100, with s = +1 for
higher-is-better metrics and -1 for lower-is-better ones, so a positive RI is always an improvement.

Chance exclusion applies to higher-is-better metrics of tasks with a chance level; a score is "not above
chance" when it is <= chance. The default rule is the paper's (App. E, §5), per *family* (a baseline and all its
placements, every seed): a (task, metric) pair is dropped for every model of the family when the baseline or any
model of it is not above chance, so every model of a family averages the same task set. The `model` rule drops
the pair only from the comparisons of the model concerned (its own value or its baseline's). `ModelRI.excluded`
says which pairs were left out of a comparison and why.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence

import numpy as np

from ffnjax.analysis.results import AnalysisError
from ffnjax.analysis.results_table import ModelInfo, ResultsTable, Row

TaskMetric = tuple[str, str]

# The paper scores every choice task by accuracy (§4.3); `task:acc_norm` stays selectable in a custom set.
# Paper Table 1: WikiText, LAMBADA, HellaSwag, zsRE, ARC-e, PIQA.
TABLE1_TASKS: tuple[TaskMetric, ...] = (
  ("wikitext", "word_perplexity"),
  ("lambada_openai", "acc"),
  ("hellaswag", "acc"),
  ("zsre", "acc"),
  ("arc_easy", "acc"),
  ("piqa", "acc"),
)
# Paper Table 2 (and Table 7): 9 columns in the paper's order.
TABLE2_TASKS: tuple[TaskMetric, ...] = (
  ("wikitext", "word_perplexity"),
  ("lambada_openai", "perplexity"),
  ("lambada_openai", "acc"),
  ("arc_easy", "acc"),
  ("arc_challenge", "acc"),
  ("winogrande", "acc"),
  ("piqa", "acc"),
  ("hellaswag", "acc"),
  ("zsre", "acc"),
)
TASK_SETS = {"table1": TABLE1_TASKS, "table2": TABLE2_TASKS}
# The paper's column names, for tables in its layout.
PAPER_LABELS = {
  ("wikitext", "word_perplexity"): "WikiText PPL",
  ("lambada_openai", "perplexity"): "LAMBADA PPL",
  ("lambada_openai", "acc"): "LAMBADA Acc",
  ("arc_easy", "acc"): "ARC-e",
  ("arc_challenge", "acc"): "ARC-c",
  ("winogrande", "acc"): "WinoG",
  ("piqa", "acc"): "PIQA",
  ("hellaswag", "acc"): "HellaSwag",
  ("zsre", "acc"): "zsRE",
}

CHANCE_RULES = ("family", "model")
EXCLUDED_BELOW_CHANCE = "not above chance"
EXCLUDED_MISSING = "missing"
EXCLUDED_ZERO_BASELINE = "baseline is 0"


def parse_task_set(spec: str | Sequence[TaskMetric]) -> tuple[TaskMetric, ...]:
  """A preset name (`table1`, `table2`), a comma list `task:metric,...`, or already a sequence of pairs."""
  if not isinstance(spec, str):
    pairs = tuple((str(t), str(m)) for t, m in spec)
  elif spec in TASK_SETS:
    pairs = TASK_SETS[spec]
  else:
    pairs = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
      task, sep, metric = item.partition(":")
      if not sep or not task or not metric:
        raise AnalysisError(f"--tasks: {item!r} must be 'task:metric'; or give a preset from {sorted(TASK_SETS)}")
      pairs.append((task, metric))
    pairs = tuple(pairs)
  if not pairs:
    raise AnalysisError(f"--tasks: empty task set; give a preset from {sorted(TASK_SETS)} or 'task:metric,...'")
  if len(set(pairs)) != len(pairs):
    raise AnalysisError(f"--tasks: {list(pairs)} lists a (task, metric) pair twice")
  return pairs


def sign(higher_is_better: bool) -> int:
  return 1 if higher_is_better else -1


def relative_improvement(value: float, baseline: float, higher_is_better: bool) -> float:
  """RI in percent; positive = better than the baseline."""
  if baseline == 0:
    raise AnalysisError("relative improvement: the baseline metric is 0, RI is undefined")
  return sign(higher_is_better) * (value - baseline) / baseline * 100.0


def not_above_chance(row: Row) -> bool:
  """Only accuracy-like (higher-is-better) metrics with a chance level can fail; at chance counts as failing."""
  return row.higher_is_better and row.chance is not None and row.value <= row.chance


def _chance_text(who: str, row: Row) -> str:
  return f"{who} {row.value:.4g} <= {row.chance:.4g}"


def family_exclusions(table: ResultsTable, tasks: Sequence[TaskMetric]) -> dict[str, dict[TaskMetric, str]]:
  """family -> {(task, metric): why} for the pairs where the baseline or any model of the family (any seed) is not
  above chance; the reason names every such model and seed."""
  out: dict[str, dict[TaskMetric, str]] = {}
  for family in table.families:
    members = table.models_in(family)
    for task, metric in tasks:
      low = []
      for m in members:
        row = table.get(m, task, metric)
        if row is not None and not_above_chance(row):
          low.append(_chance_text(f"{m.name} (seed {m.seed})", row))
      if low:
        out.setdefault(family, {})[(task, metric)] = f"{EXCLUDED_BELOW_CHANCE} in family {family}: " + "; ".join(low)
  return out


@dataclasses.dataclass(frozen=True)
class ModelRI:
  """One experimental model (one seed) against its baseline."""

  model: ModelInfo
  baseline: ModelInfo
  per_task: dict[TaskMetric, float]  # RI % of each (task, metric) kept in the comparison
  excluded: dict[TaskMetric, str]  # (task, metric) -> why it was left out

  @property
  def average(self) -> float:
    """Mean RI over the kept pairs; NaN when every pair was excluded."""
    return float(np.mean(list(self.per_task.values()))) if self.per_task else math.nan


def check_task_set(table: ResultsTable, tasks: Sequence[TaskMetric]) -> None:
  have = table.task_metrics
  absent = [f"{t}:{m}" for t, m in tasks if (t, m) not in have]
  if absent:
    known = ", ".join(f"{t}:{m}" for t, m in sorted(have))
    raise AnalysisError(f"{table.source}: task set names {absent}, which no run has; the table has: {known}")


def model_ri(
  table: ResultsTable,
  model: ModelInfo,
  tasks: Sequence[TaskMetric],
  family_excluded: dict[TaskMetric, str] | None = None,
  also_excluded: dict[TaskMetric, str] | None = None,
) -> ModelRI:
  """One comparison; `family_excluded` (from `family_exclusions`) applies the family rule, None the model rule;
  `also_excluded` leaves out more pairs under either rule (e.g. tasks without signal, analysis/uncertainty.py)."""
  base = table.baseline_for(model)
  per_task, excluded = {}, {}
  for task, metric in tasks:
    row, base_row = table.get(model, task, metric), table.get(base, task, metric)
    if row is None or base_row is None:
      excluded[(task, metric)] = EXCLUDED_MISSING + (" for the model" if row is None else " for the baseline")
    elif also_excluded and (task, metric) in also_excluded:
      excluded[(task, metric)] = also_excluded[(task, metric)]
    elif family_excluded is not None and (task, metric) in family_excluded:
      excluded[(task, metric)] = family_excluded[(task, metric)]
    elif family_excluded is None and (not_above_chance(base_row) or not_above_chance(row)):
      who, low = ("baseline", base_row) if not_above_chance(base_row) else ("model", row)
      excluded[(task, metric)] = f"{EXCLUDED_BELOW_CHANCE}: {_chance_text(who, low)}"
    elif base_row.value == 0:
      excluded[(task, metric)] = EXCLUDED_ZERO_BASELINE
    else:
      per_task[(task, metric)] = relative_improvement(row.value, base_row.value, base_row.higher_is_better)
  return ModelRI(model, base, per_task, excluded)


def check_chance_rule(rule: str) -> None:
  if rule not in CHANCE_RULES:
    raise AnalysisError(f"--chance_rule={rule!r}: must be one of {CHANCE_RULES} (family = the paper's rule)")


def compute_ri(
  table: ResultsTable,
  tasks: str | Sequence[TaskMetric] = TABLE1_TASKS,
  chance_rule: str = "family",
  also_excluded: dict[str, dict[TaskMetric, str]] | None = None,
) -> list[ModelRI]:
  """RI of every experimental (non-baseline) model, in family/position/ratio/seed order. `also_excluded`:
  family -> {pair: why} left out on top of the chance rule."""
  tasks = parse_task_set(tasks)
  check_task_set(table, tasks)
  check_chance_rule(chance_rule)
  experimental = [m for f in table.families for m in table.models_in(f) if not m.is_baseline]
  if not experimental:
    raise AnalysisError(f"{table.source}: no experimental model (every model is a baseline)")
  by_family = family_exclusions(table, tasks) if chance_rule == "family" else None
  return [
    model_ri(
      table, m, tasks, None if by_family is None else by_family.get(m.family, {}), (also_excluded or {}).get(m.family)
    )
    for m in experimental
  ]


@dataclasses.dataclass(frozen=True)
class ConfigRI:
  """One configuration (family, position, ratio) over its seeds. Stds are sample stds (ddof=1), NaN for 1 seed."""

  family: str
  name: str
  position: str
  ratio: int
  num_layers: int | None
  layer_types: tuple[str, ...] | None
  seeds: tuple[int, ...]
  average_mean: float
  average_std: float
  per_task_mean: dict[TaskMetric, float]
  per_task_std: dict[TaskMetric, float]
  per_seed: tuple[ModelRI, ...]


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
  values = [v for v in values if not math.isnan(v)]
  if not values:
    return math.nan, math.nan
  std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
  return float(np.mean(values)), std


def summarize_seeds(ris: Iterable[ModelRI]) -> list[ConfigRI]:
  """Groups per-seed RIs by configuration; a task's mean is over the seeds where it was kept."""
  groups: dict[tuple, list[ModelRI]] = {}
  for r in ris:
    groups.setdefault((r.model.family, r.model.name), []).append(r)
  out = []
  for (family, name), members in groups.items():
    m = members[0].model
    keys = sorted({k for r in members for k in r.per_task}, key=str)
    per_task_mean, per_task_std = {}, {}
    for k in keys:
      per_task_mean[k], per_task_std[k] = _mean_std([r.per_task[k] for r in members if k in r.per_task])
    avg_mean, avg_std = _mean_std([r.average for r in members])
    out.append(
      ConfigRI(
        family,
        name,
        m.position,
        m.ratio,
        m.num_layers,
        m.layer_types,
        tuple(sorted(r.model.seed for r in members)),
        avg_mean,
        avg_std,
        per_task_mean,
        per_task_std,
        tuple(sorted(members, key=lambda r: r.model.seed)),
      )
    )
  return out
