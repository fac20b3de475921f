# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Explore a placement study
#
# Opens a study directory written by `python -m ffnjax.study` (one run directory per grid point, `report.md`,
# `figures/`) and shows what the report shows, as live objects: the results table, relative improvement (RI),
# the top configurations, layerwise FFN importance (paper App. H), the figures, a per-task drill-down and
# per-example records. It then loads the baseline checkpoint with `ffnjax.notebook.InteractiveModel` to score,
# generate and ablate.
#
# The study directory comes from the environment variable `FFNJAX_STUDY_DIR` (default `study/tiny`, relative to
# the repository root). Make one with
#
# ```
# python -m ffnjax.study --config=configs/study.py:tiny --workdir=study/tiny     # ~15 min on a CPU
# python -m ffnjax.study --config=configs/study.py:smoke --workdir=study/smoke   # ~1 min, 3 tiny runs
# ```
#
# Layers are numbered from 1 (layer 1 = closest to the input) in every table and figure. Tables are
# `ffnjax.analysis.report_tables.PlainTable`s: a notebook renders them, `.records()` gives their rows as dicts.

# %% setup
# %matplotlib inline
import json
import math
import os
import pathlib

from absl import logging as absl_logging
from IPython.display import Image, Markdown, display

import ffnjax  # `pip install -e ".[notebooks]"` from the repository root (notebooks/README.md)
from ffnjax.notebook import InteractiveModel, open_study

absl_logging.set_verbosity(absl_logging.ERROR)  # checkpoint restores log read-only warnings otherwise

# A relative FFNJAX_STUDY_DIR is looked up from the working directory (Jupyter's: notebooks/), then the repository's.
STUDY_DIR = os.environ.get("FFNJAX_STUDY_DIR", "study/tiny")
if not os.path.isabs(STUDY_DIR) and not os.path.isdir(STUDY_DIR):
  STUDY_DIR = str(pathlib.Path(ffnjax.__file__).resolve().parents[1] / STUDY_DIR)
if not os.path.isdir(STUDY_DIR):
  raise FileNotFoundError(
    f"no study directory at {STUDY_DIR}; run `python -m ffnjax.study "
    f"--config=configs/study.py:tiny --workdir=study/tiny` or point FFNJAX_STUDY_DIR at a study"
  )

# %% open
study = open_study(STUDY_DIR)
FAMILY = study.families[0]
print("study:   ", study.path)
print("runs:    ", ", ".join(study.runs))
print("families:", ", ".join(study.families))
print("task set of the average RI:", ", ".join(f"{t}:{m}" for t, m in study.tasks))
if study.table.skipped:
  print("not evaluated:", "; ".join(study.table.skipped))

# %% [markdown]
# ## Results table
#
# Raw metric values per model (mean over seeds), baseline first. `study.table.records()` gives every row
# (model, seed, task, metric, value, ...) as dicts.

# %% results
for family in study.families:
  display(Markdown(f"**{family}**"), study.metrics_table(family))

# %% [markdown]
# ## Relative improvement
#
# RI(m, T) = s(T) · (metric(m, T) − metric(baseline, T)) / metric(baseline, T) · 100 %, with s = −1 for
# perplexity-like metrics, so positive is better. `excl.` = left out (below chance, or a zero baseline).

# %% ri
for family in study.families:
  display(Markdown(f"**{family}**: all configurations, best average RI first"), study.ri_table(family))
  excluded = study.exclusions_table(family)
  if excluded.rows:
    display(Markdown("Left out of the comparison:"), excluded)

# %% topk
TOP_K = 5
for family in study.families:
  display(
    Markdown(f"**{family}**: top {TOP_K} configurations by average RI (paper Table 1/2 style)"),
    study.top_k_table(TOP_K, family),
  )

# %% [markdown]
# ## Layerwise FFN importance (paper App. H)
#
# I_(p,r)(l) = −RI(p, r) / |D_(p,r)| for every configuration that deactivates layer l; Raw(l) is their mean and
# the score is Raw standardised over layers. A positive score: removing that layer's FFN hurt more than average.

# %% importance
if not study.importance:
  print("importance not computed:", study.analysis.importance_error)
for family in study.importance:
  display(Markdown(f"**{family}**"), study.importance_table(family))

# %% [markdown]
# ## Figures (as written by the study's report)

# %% figures
if not study.figures:
  print(f"no figures under {STUDY_DIR}/figures; run `python -m ffnjax.analysis --study={STUDY_DIR}`")
for stem, png in study.figures.items():
  display(Markdown(f"**{stem}** (`{os.path.relpath(png, STUDY_DIR)}`)"), Image(filename=png, width=720))

# %% [markdown]
# ## Drill-down: one task across positions and ratios
#
# Change `TASK, METRIC` to any pair of the results table (`study.table.task_metrics`).

# %% drilldown
TASK, METRIC = study.tasks[0]
display(study.drilldown(TASK, METRIC, FAMILY), study.drilldown_figure(TASK, METRIC, FAMILY))

# RI of this task for each configuration (mean over seeds; NaN = excluded for that configuration)
for c in study.ri:
  if c.family == FAMILY:
    ri = c.per_task_mean.get((TASK, METRIC), math.nan)
    print(f"{c.name:<28} RI {ri:+8.2f} %   average RI {c.average_mean:+8.2f} %")

# %% [markdown]
# ## Per-example records
#
# `RUN/eval/records.jsonl`, written by `python -m ffnjax.eval --workdir=RUN --records=RUN/eval/records.jsonl`:
# one line per document with its requests (context, continuation, LL, is_greedy), gold, prediction and metrics.

# %% records
if not study.records:
  print(
    "no run of this study has eval/records.jsonl; write one with\n"
    f"  python -m ffnjax.eval --workdir={study.baseline_run()} "
    f"--records={study.baseline_run()}/eval/records.jsonl"
  )
else:
  RUN = next(iter(study.records))
  records = study.load_records(RUN)
  print(f"{RUN}: {len(records)} records, tasks {sorted({r['task'] for r in records})}")
  for rec in records[:3]:
    print(json.dumps({k: v for k, v in rec.items() if k != "requests"}, ensure_ascii=False)[:300])
    for req in rec.get("requests", [])[:2]:
      print(
        "   ",
        repr(req.get("context", ""))[-60:],
        "->",
        repr(req.get("continuation", ""))[:40],
        "LL",
        round(req.get("ll", math.nan), 3),
        "greedy",
        req.get("is_greedy"),
      )
  if len(study.records) > 1:  # the same documents scored by two runs
    a, b = list(study.records)[:2]
    both = study.compare_records(a, b)
    display(Markdown(f"{a} vs {b}: {len(both.rows)} documents in both; the first 5:"), both.head(5))

# %% [markdown]
# ## The baseline model, interactively
#
# `InteractiveModel` restores a checkpoint's parameters on one device. `score` uses the evaluator's exact
# loglikelihood semantics; `generate` re-runs the full forward pass per token (no KV cache: fine for tiny models,
# slow for paper-scale ones); `drop`/`ablate` remove sub-layers through the model's `keep` mask (one compiled
# program for every mask).

# %% model
model = InteractiveModel.from_run(study.baseline_run(FAMILY))
print(model)
print(model.plan.describe())

# %% score
CONTEXT, CONTINUATION = "To be, or not to be, that is the", " question"
ll, greedy = model.score(CONTEXT, CONTINUATION)
print(f"{model.name}: LL({CONTINUATION!r} | {CONTEXT!r}) = {ll:.3f}, greedy = {greedy}")
print("greedy continuation:", repr(model.generate(CONTEXT, max_new_tokens=16)))
print("sampled (T=0.8):    ", repr(model.generate(CONTEXT, max_new_tokens=16, temperature=0.8, seed=0)))

# %% ablation
# Single-sub-layer ablation on this one line: the LL change when each attention / FFN sub-layer alone is removed.
model.ablation_table(CONTEXT, CONTINUATION)
