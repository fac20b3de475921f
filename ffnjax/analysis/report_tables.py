"""Plain-data tables (no pandas) and their markdown rendering: metrics, RI, top-k (paper Tables 1/2), importance."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from ffnjax.analysis.importance import ImportanceSummary
from ffnjax.analysis.results_table import ResultsTable
from ffnjax.analysis.ri import PAPER_LABELS, ConfigRI, TaskMetric


@dataclasses.dataclass
class PlainTable:
  """headers + rows of Python values; `to_markdown()` renders, `records()` gives dicts."""

  headers: list[str]
  rows: list[list]
  digits: int = 2

  def records(self) -> list[dict]:
    return [dict(zip(self.headers, row)) for row in self.rows]

  def to_markdown(self) -> str:
    cells = [[format_cell(v, self.digits) for v in row] for row in self.rows]
    numeric = [
      bool(self.rows) and all(isinstance(r[j], (int, float, np.number)) or r[j] is None for r in self.rows)
      for j in range(len(self.headers))
    ]
    lines = [
      "| " + " | ".join(self.headers) + " |",
      "|" + "|".join("---:" if numeric[j] else "---" for j in range(len(self.headers))) + "|",
    ]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines)

  def head(self, n: int) -> PlainTable:
    """The first n rows."""
    return dataclasses.replace(self, rows=self.rows[:n])

  def _repr_markdown_(self) -> str:  # a notebook renders a table that is a cell's value (or display(table))
    return self.to_markdown()


def format_cell(value, digits: int = 2) -> str:
  if value is None:
    return ""
  if isinstance(value, (bool, np.bool_)):
    return str(bool(value))
  if isinstance(value, (int, np.integer)):
    return str(int(value))
  if isinstance(value, (float, np.floating)):
    return "–" if math.isnan(value) else f"{value:.{digits}f}"
  return str(value).replace("|", "\\|")


def _pm(mean: float, std: float, digits: int = 2) -> str:
  """'m ± s' when several seeds give a std, else just the mean."""
  if math.isnan(mean):
    return "–"
  return f"{mean:+.{digits}f}" if math.isnan(std) else f"{mean:+.{digits}f} ± {std:.{digits}f}"


SIGNIFICANT_MARK = " ✱"  # the 95 % interval excludes 0


def _ri_cell(c: ConfigRI, key, unc) -> str:
  """RI (%) of one configuration: the bootstrap interval when there is one (✱ when it excludes 0), else
  mean ± std over seeds; "excl." when the pair was left out."""
  if key == "average":
    mean, std = c.average_mean, c.average_std
  elif key in c.per_task_mean:
    mean, std = c.per_task_mean[key], c.per_task_std[key]
  else:
    return "excl."
  interval = unc.ri_interval(c.family, c.name, key) if unc is not None else None
  if interval is None:
    return _pm(mean, std)
  return interval.format() + (SIGNIFICANT_MARK if interval.excludes(0.0) else "")


def task_label(task_metric: TaskMetric) -> str:
  task, metric = task_metric
  return f"{task} {metric}"


def metrics_table(table: ResultsTable, tasks: Sequence[TaskMetric], family: str) -> PlainTable:
  """Raw metric values of every model of a family (mean over seeds), baseline first."""
  by_name: dict[str, list] = {}
  for m in table.models_in(family):
    by_name.setdefault(m.name, []).append(m)
  rows = []
  for name, members in by_name.items():
    m0 = members[0]
    row = [name, m0.position, m0.ratio, len(members)]
    for task, metric in tasks:
      vals = [r.value for r in (table.get(m, task, metric) for m in members) if r is not None]
      row.append(float(np.mean(vals)) if vals else None)
    rows.append(row)
  return PlainTable(["model", "position", "ratio", "seeds"] + [task_label(t) for t in tasks], rows, digits=4)


def sort_by_average(configs: Sequence[ConfigRI]) -> list[ConfigRI]:
  """Best average RI first; configurations without a defined average go last."""
  return sorted(
    configs,
    key=lambda c: (math.isnan(c.average_mean), -c.average_mean if not math.isnan(c.average_mean) else 0.0, c.name),
  )


def ri_table(configs: Sequence[ConfigRI], tasks: Sequence[TaskMetric], k: int | None = None, unc=None) -> PlainTable:
  """RI % per task and the average (bootstrap interval with `unc`, else mean ± sample std over seeds), best
  first; the top `k` when given."""
  ranked = sort_by_average(configs)
  if k is not None:
    if k < 1:
      raise ValueError(f"top_k={k}: must be >= 1")
    ranked = ranked[:k]
  rows = []
  for rank, c in enumerate(ranked, start=1):
    row = [rank, c.name, c.position, c.ratio, len(c.seeds)]
    row += [_ri_cell(c, t, unc) for t in tasks] + [_ri_cell(c, "average", unc)]
    row.append(sum(1 for t in tasks if t in c.per_task_mean))
    rows.append(row)
  headers = (
    ["rank", "model", "position", "ratio", "seeds"] + [task_label(t) for t in tasks] + ["average RI", "tasks used"]
  )
  return PlainTable(headers, rows)


def paper_table(configs: Sequence[ConfigRI], tasks: Sequence[TaskMetric], k: int | None = None, unc=None) -> PlainTable:
  """The paper's layout (Tables 1 and 2): model, one RI (%) column per task under the paper's name, Avg; best first.

  A task left out for the configuration (chance rule, missing value) shows "excl."; Avg is over the rest.
  """
  ranked = sort_by_average(configs)[:k] if k is not None else sort_by_average(configs)
  rows = []
  for c in ranked:
    rows.append([c.name] + [_ri_cell(c, t, unc) for t in tasks] + [_ri_cell(c, "average", unc)])
  return PlainTable(["Model"] + [PAPER_LABELS.get(t, task_label(t)) for t in tasks] + ["Avg"], rows)


BUDGET_SEPARATOR = "@"  # family "285m_12l@2x": the 285m_12l baseline's family trained on the 2x token budget


def split_budget(family: str) -> tuple[str, str | None]:
  base, sep, budget = family.partition(BUDGET_SEPARATOR)
  return base, (budget if sep else None)


def _budget_order(budget: str):
  try:
    return (0, float(budget.rstrip("x")), budget)
  except ValueError:
    return (1, 0.0, budget)


def budget_table(configs: Sequence[ConfigRI]) -> PlainTable | None:
  """Paper Table 7: average RI per configuration (rows) and token budget (columns); None without budgets."""
  cells: dict[tuple[str, str], dict[str, ConfigRI]] = {}
  budgets = set()
  for c in configs:
    base, budget = split_budget(c.family)
    if budget is None:
      continue
    budgets.add(budget)
    cells.setdefault((base, f"{c.position}_{c.ratio}"), {})[budget] = c
  if not cells:
    return None
  order = sorted(budgets, key=_budget_order)
  rows = [
    [base, placement] + [_pm(by[b].average_mean, by[b].average_std) if b in by else "" for b in order]
    for (base, placement), by in sorted(cells.items())
  ]
  return PlainTable(["baseline", "placement"] + [f"{b} tokens" for b in order], rows)


def top_k(configs: Sequence[ConfigRI], k: int) -> list[ConfigRI]:
  if k < 1:
    raise ValueError(f"top_k={k}: must be >= 1")
  return sort_by_average(configs)[:k]


def importance_table(summary: ImportanceSummary, intervals=None) -> PlainTable:
  """Layer (1-based), how often deactivated, Raw and the standardised score (mean ± std over seeds), and its
  bootstrap interval when `intervals` (one per layer) are given."""
  counts = np.sum([imp.counts for imp in summary.per_seed.values()], axis=0)
  rows = []
  for i in range(summary.num_layers):
    raw = _pm(summary.raw_mean[i], summary.raw_std[i], 3)
    score = _pm(summary.score_mean[i], summary.score_std[i], 3)
    row = [i + 1, int(counts[i]), raw if raw != "–" else "never deactivated", score]
    if intervals is not None:
      iv = intervals[i]
      row.append("" if iv is None else iv.format(3) + (SIGNIFICANT_MARK if iv.excludes(0.0) else ""))
    rows.append(row)
  headers = ["layer", "times deactivated (all seeds)", "Raw", "standardised score"]
  return PlainTable(headers + (["95 % interval of the score"] if intervals is not None else []), rows)


def exclusions_table(configs: Sequence[ConfigRI]) -> PlainTable:
  rows = []
  for c in configs:
    for r in c.per_seed:
      for (task, metric), why in r.excluded.items():
        rows.append([c.name, r.model.seed, f"{task} {metric}", why])
  return PlainTable(["model", "seed", "task", "reason"], rows)
