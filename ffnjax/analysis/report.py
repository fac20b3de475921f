"""`analyze()` (RI, seeds, importance in one object) and `write_report()` (report.md + figures/)."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import re
from collections.abc import Mapping, Sequence

from ffnjax.analysis import figures, report_tables, runs
from ffnjax.analysis import uncertainty as uncertainty_lib
from ffnjax.analysis.importance import ImportanceSummary, importance_by_family
from ffnjax.analysis.results import AnalysisError, load_results
from ffnjax.analysis.results_table import ResultsTable, load_study, run_dirs
from ffnjax.analysis.ri import (
  ConfigRI,
  ModelRI,
  TaskMetric,
  check_chance_rule,
  compute_ri,
  family_exclusions,
  parse_task_set,
  summarize_seeds,
)
from ffnjax.core import bootstrap, rundir


@dataclasses.dataclass
class Analysis:
  table: ResultsTable
  tasks: tuple[TaskMetric, ...]
  ris: list[ModelRI]  # one per experimental model and seed
  configs: list[ConfigRI]  # one per configuration, over seeds
  importance: dict[str, ImportanceSummary]  # per family
  importance_error: str | None = None  # why importance could not be computed (e.g. unknown layer layout)
  chance_rule: str = "family"
  family_excluded: dict[str, dict[TaskMetric, str]] = dataclasses.field(default_factory=dict)  # family rule only
  uncertainty: uncertainty_lib.Uncertainty | None = None  # bootstrap intervals, when records were given


def analyze(
  table: ResultsTable,
  tasks: str | Sequence[TaskMetric] = "table1",
  chance_rule: str = "family",
  records: Mapping | None = None,
  resamples: int = bootstrap.RESAMPLES,
  seed: int = bootstrap.SEED,
) -> Analysis:
  """RI, seeds and importance; with per-document `records` ({(model, seed): {task: [record]}}) also bootstrap
  intervals, and tasks without signal (every run within its interval of chance) are left out of the averages."""
  tasks = parse_task_set(tasks)
  check_chance_rule(chance_rule)
  reps = uncertainty_lib.Replicates(table, records, resamples, seed) if records else None
  no_signal = uncertainty_lib.no_signal_pairs(table, reps, tasks, bootstrap.CONFIDENCE) if reps else {}
  ris = compute_ri(table, tasks, chance_rule, also_excluded=no_signal)
  configs = summarize_seeds(ris)
  try:
    importance, error = importance_by_family(ris), None
  except AnalysisError as e:  # RI tables are still useful without it; the report says why it is missing
    importance, error = {}, str(e)
    logging.warning("layer importance not computed: %s", e)
  excluded = family_exclusions(table, tasks) if chance_rule == "family" else {}
  for family, pairs in no_signal.items():
    for pair, why in pairs.items():
      excluded.setdefault(family, {}).setdefault(pair, why)
  analysis = Analysis(table, tasks, ris, configs, importance, error, chance_rule, excluded)
  if reps:
    analysis.uncertainty = uncertainty_lib.compute(analysis, reps, no_signal=no_signal)
  return analysis


def _slug(text: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def write_figures(analysis: Analysis, output_dir: str, study_dir: str | None = None) -> dict[str, list[str]]:
  """figures/<kind>_<family>.png|svg; returns {title: [paths]}."""
  fig_dir = rundir.join(output_dir, "figures")
  unc = analysis.uncertainty
  out = {}
  for family in analysis.table.families:
    fam = [c for c in analysis.configs if c.family == family]
    if fam:
      fig = figures.ri_vs_ratio_figure(fam, analysis.tasks, family, unc=unc)
      out[f"Figure 4: RI vs ratio, {family}"] = figures.save(fig, rundir.join(fig_dir, f"ri_vs_ratio_{_slug(family)}"))
  for family, summary in analysis.importance.items():
    fig = figures.importance_figure(summary, None if unc is None else unc.importance.get(family))
    out[f"Figure 5: layer importance, {family}"] = figures.save(
      fig, rundir.join(fig_dir, f"importance_{_slug(family)}")
    )
  if study_dir:
    curves = {}
    for d in run_dirs(study_dir):
      curve = runs.loss_curve(d)
      if curve:
        curves[os.path.basename(d)] = curve
    if curves:
      out["training loss"] = figures.save(figures.loss_curves_figure(curves), rundir.join(fig_dir, "loss_curves"))
  return out


def _runs_section(study_dir: str, table: ResultsTable) -> list[str]:
  study = runs.read_study_json(study_dir)
  by_run = {m.run: m for m in table.models.values() if m.run}
  rows, configs = [], {}
  study_time_keys = sorted({k for e in study.values() for k in runs.times_in(e)})
  for d in run_dirs(study_dir):
    name = os.path.basename(d)
    m = by_run.get(name)
    train_s, estimated = runs.train_wall_time(d)
    results_path = rundir.join(d, "eval", "results.json")
    eval_s = load_results(results_path).get("wall_time_s") if m is not None else None
    entry = study.get(name, {})
    row = [
      name,
      m.name if m else "",
      m.position if m else "",
      m.ratio if m else None,
      m.seed if m else None,
      f"{m.params_total:,}" if m and m.params_total else "",
      (f"≈{train_s:.0f}" if estimated else f"{train_s:.0f}") if train_s is not None else "",
      f"{eval_s:.0f}" if isinstance(eval_s, (int, float)) else "",
      "evaluated" if m else "no eval/results.json",
    ]
    row += [f"{runs.times_in(entry)[k]:.0f}" if k in runs.times_in(entry) else "" for k in study_time_keys]
    rows.append(row)
    configs[name] = runs.config_summary(runs.read_config(d))
  headers = ["run", "model", "position", "ratio", "seed", "params", "train wall (s)", "eval wall (s)", "status"] + [
    f"study.json {k}" for k in study_time_keys
  ]
  lines = [
    "## Runs",
    "",
    "Train wall time: the last elapsed-time field of metrics.jsonl, or (≈) the sum of "
    "logged step_time_s × steps. Eval wall time: eval/results.json `wall_time_s`.",
    "",
    report_tables.PlainTable(headers, rows).to_markdown(),
    "",
  ]
  lines += _configs_section(configs)
  return lines


def _configs_section(configs: dict[str, dict]) -> list[str]:
  configs = {k: v for k, v in configs.items() if v}
  if not configs:
    return []
  keys = sorted({k for c in configs.values() for k in c})
  common = {
    k: next(iter(configs.values())).get(k) for k in keys if len({repr(c.get(k)) for c in configs.values()}) == 1
  }
  varying = [k for k in keys if k not in common]
  lines = ["## Configs", "", "Shared by every run: " + ", ".join(f"`{k}={v}`" for k, v in common.items()), ""]
  if varying:
    rows = [[name] + [c.get(k) for k in varying] for name, c in configs.items()]
    lines += [report_tables.PlainTable(["run"] + varying, rows, digits=6).to_markdown(), ""]
  return lines


_CHANCE_TEXT = {
  "family": "A (task, metric) pair is left out for every model of a family (the baseline and its placements, "
  "all seeds) when the baseline or any model of the family is not above chance on it (value <= chance; "
  "paper App. E, §5), so every model of a family averages the same task set.",
  "model": "A (task, metric) pair is left out of one model's comparison when that model or its baseline is not "
  "above chance on it (value <= chance); models of a family may average different task sets.",
}


def _exclusions_section(analysis: Analysis) -> list[str]:
  """Every exclusion and why: the family-wide ones, then those of single comparisons (missing values etc.)."""
  rows = [
    [family, report_tables.task_label(t), why]
    for family, pairs in analysis.family_excluded.items()
    for t, why in pairs.items()
  ]
  family_wide = {(f, t) for f, pairs in analysis.family_excluded.items() for t in pairs}
  single = [
    [r.model.name, r.model.seed, report_tables.task_label(t), why]
    for r in analysis.ris
    for t, why in r.excluded.items()
    if (r.model.family, t) not in family_wide
  ]
  lines = ["## Exclusions", "", f"Chance rule: `{analysis.chance_rule}`. " + _CHANCE_TEXT[analysis.chance_rule], ""]
  if not rows and not single:
    return lines + ["No (task, metric) pair was left out of any comparison.", ""]
  if rows:
    lines += [
      "### Left out for a whole family",
      "",
      report_tables.PlainTable(["family", "task", "reason"], rows).to_markdown(),
      "",
    ]
  if single:
    lines += [
      "### Left out of single comparisons",
      "",
      report_tables.PlainTable(["model", "seed", "task", "reason"], single).to_markdown(),
      "",
    ]
  return lines


def _positions_lines(unc: uncertainty_lib.Uncertainty, family: str) -> list[str]:
  """Positions ranked by their mean average RI over ratios, and whether the intervals support each step."""
  ranking = unc.position_ranking(family)
  rows = [
    [k + 1, p, iv.format() + (report_tables.SIGNIFICANT_MARK if iv.excludes(0.0) else "")]
    for k, (p, iv) in enumerate(ranking)
  ]
  lines = [
    "### Ranking of positions",
    "",
    "Mean of the average RI (%) over each position's ratios, with its "
    f"{unc.confidence:.0%} interval; each step of the ranking is tested on the paired difference.",
    "",
    report_tables.PlainTable(["rank", "position", "mean average RI (%)"], rows).to_markdown(),
    "",
  ]
  for (p, _), (q, _) in zip(ranking, ranking[1:]):
    d = unc.position_differences[family][(p, q)]
    verdict = "supported (interval excludes 0)" if d.excludes(0.0) else "not supported (interval covers 0)"
    lines.append(f"- {p} over {q}: difference {d.format()} — {verdict}.")
  return lines + [""]


def _uncertainty_lines(analysis: Analysis) -> list[str]:
  unc = analysis.uncertainty
  if unc is None:
    return ["No per-document records were found (RUN/eval/records.jsonl), so the tables carry no intervals.", ""]
  return [
    f"Uncertainty: RI cells show the point estimate and its {unc.confidence:.0%} paired bootstrap interval "
    f"({unc.resamples} resamples of the evaluation documents, the same resamples for a model and its "
    f"baseline; seed {unc.seed}; with several seeds the seeds are resampled too). "
    f"{report_tables.SIGNIFICANT_MARK.strip()} marks an interval that excludes 0. A task on which every run of a "
    "family is within its interval of chance carries no signal and is left out of that family's averages "
    "(see Exclusions).",
    "",
  ]


def render_report(
  analysis: Analysis,
  figure_paths: dict[str, list[str]],
  output_dir: str,
  top_k: int = 5,
  study_dir: str | None = None,
  title: str | None = None,
  summary: str | None = None,
) -> str:
  t = analysis.table
  task_text = ", ".join(f"{a} {b}" for a, b in analysis.tasks)
  lines = (
    [f"# {title or 'FFN placement study report'}", ""]
    + ([summary.strip(), ""] if summary else [])
    + [
      f"Source: `{t.source}`. Generated {datetime.datetime.now().isoformat(timespec='seconds')}.",
      "",
      f"Task set for the average RI: {task_text}.",
      "",
      "RI(m, T) = s(T) · (metric(m, T) − metric(baseline, T)) / metric(baseline, T) · 100 %, s = +1 for "
      "accuracy-like and −1 for perplexity-like metrics: positive is better. "
      + _CHANCE_TEXT[analysis.chance_rule]
      + " With several seeds: mean ± sample std (ddof=1) over seeds.",
      "",
    ]
  )
  unc = analysis.uncertainty
  lines += _uncertainty_lines(analysis)
  if t.skipped:
    lines += ["Runs not included: " + "; ".join(t.skipped), ""]
  if study_dir:
    lines += _runs_section(study_dir, t)
  lines += _exclusions_section(analysis)
  budgets = report_tables.budget_table(analysis.configs)
  if budgets is not None:
    lines += [
      "## Table 7: average RI (%) per token budget",
      "",
      "One column per token budget (each against the baseline trained on the same budget).",
      "",
      budgets.to_markdown(),
      "",
    ]
  for family in t.families:
    fam = [c for c in analysis.configs if c.family == family]
    lines += [
      f"## {family}",
      "",
      "### Metrics (mean over seeds)",
      "",
      report_tables.metrics_table(t, analysis.tasks, family).to_markdown(),
      "",
    ]
    if fam:
      lines += [
        f"### Table 1: top {top_k} configurations by average RI (%)",
        "",
        report_tables.paper_table(fam, analysis.tasks, k=top_k, unc=unc).to_markdown(),
        "",
        "### Table 2: RI (%) per task and average, every configuration",
        "",
        report_tables.paper_table(fam, analysis.tasks, unc=unc).to_markdown(),
        "",
        "### All configurations by average RI, RI (%)",
        "",
        report_tables.ri_table(fam, analysis.tasks, unc=unc).to_markdown(),
        "",
      ]
    if unc is not None and unc.positions.get(family):
      lines += _positions_lines(unc, family)
    if family in analysis.importance:
      lines += [
        "### Layerwise FFN importance (paper App. H)",
        "",
        "I_(p,r)(l) = −RI(p,r)/|D_(p,r)| for each configuration deactivating layer l; Raw(l) = mean; "
        "score = Raw standardised over layers (population std, ddof=0). Layers never deactivated have "
        "no score. Layers numbered from 1.",
        "",
        report_tables.importance_table(
          analysis.importance[family], None if unc is None else unc.importance.get(family)
        ).to_markdown(),
        "",
      ]
  if analysis.importance_error:
    lines += ["## Layerwise importance not computed", "", analysis.importance_error, ""]
  if figure_paths:
    lines += ["## Figures", ""]
    for name, paths in figure_paths.items():
      png = next(p for p in paths if p.endswith(".png"))
      svg = next(p for p in paths if p.endswith(".svg"))
      rel_png, rel_svg = os.path.relpath(png, output_dir), os.path.relpath(svg, output_dir)
      lines += [f"### {name}", "", f"![{name}]({rel_png})  ([svg]({rel_svg}))", ""]
  return "\n".join(lines)


def write_report(
  study_dir: str | None = None,
  *,
  table: ResultsTable | None = None,
  output_dir: str | None = None,
  tasks: str | Sequence[TaskMetric] = "table1",
  top_k: int = 5,
  chance_rule: str = "family",
  resamples: int = bootstrap.RESAMPLES,
  seed: int = bootstrap.SEED,
  summary: str | None = None,
) -> str:
  """Writes OUTPUT/report.md and OUTPUT/figures/; returns the report path. `summary`: the report's first
  paragraph (a study config's `summary`: what its scale can and cannot show).

  Give a study directory (output defaults to it) or a ResultsTable (e.g. from `load_table`) and an output_dir.
  """
  if (study_dir is None) == (table is None):
    raise AnalysisError("write_report: give exactly one of study_dir or table")
  if table is None:
    table = load_study(study_dir)
  output_dir = output_dir or study_dir
  if not output_dir:
    raise AnalysisError("write_report: output_dir is required when analysing a table")
  if top_k < 1:
    raise AnalysisError(f"top_k={top_k}: must be >= 1")
  rundir.mkdirs(output_dir)
  records = uncertainty_lib.load_study_records(study_dir, table) if study_dir else None
  analysis = analyze(table, tasks, chance_rule, records=records, resamples=resamples, seed=seed)
  figure_paths = write_figures(analysis, output_dir, study_dir)
  text = render_report(
    analysis,
    figure_paths,
    output_dir,
    top_k=top_k,
    study_dir=study_dir,
    summary=summary,
    title=f"Study report: {os.path.basename(os.path.abspath(study_dir))}" if study_dir else None,
  )
  path = rundir.join(output_dir, "report.md")
  rundir.write_text(path, text + "\n")
  return path
