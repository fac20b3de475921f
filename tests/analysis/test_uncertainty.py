"""Bootstrap intervals in the study analysis (ffnjax/analysis/uncertainty.py) from hand-built record files."""

import json
import os

import numpy as np
import pytest

from ffnjax.analysis import report
from ffnjax.analysis import results as results_lib
from ffnjax.analysis.results_table import load_study
from ffnjax.core import placement

DIMS = placement.ModelDims(vocab_size=64, num_layers=4, d_model=16, d_ff=32, num_heads=2)


def _run(study, plan, tasks: dict, seed: int = 0):
  """A run directory with results.json and records.jsonl; tasks: {task: (chance, field, per-document values)}."""
  run = os.path.join(study, f"{plan.name}_s{seed}")
  os.makedirs(os.path.join(run, "eval"))
  with open(os.path.join(run, "plan.json"), "w") as f:
    json.dump(plan.to_json(), f)
  with open(os.path.join(run, "config.json"), "w") as f:
    json.dump({"seed": seed, "placement": {"position": plan.position, "ratio": plan.ratio, "size": plan.size}}, f)
  entries, lines = {}, []
  for task, (chance, field, values) in tasks.items():
    entries[task] = results_lib.task_entry({field: float(np.mean(values))}, chance=chance, num_examples=len(values))
    lines += [json.dumps({"task": task, "doc_id": i, field: v}) for i, v in enumerate(values)]
  results_lib.write_results(
    os.path.join(run, "eval", "results.json"), results_lib.make_results(plan.name, plan.to_json(), entries, seed=seed)
  )
  with open(os.path.join(run, "eval", "records.jsonl"), "w") as f:
    f.write("\n".join(lines) + "\n")


def test_paired_bootstrap_of_record_files_equals_hand_computation(tmp_path):
  # Three zsRE documents; baseline token accuracies (0.5, 0.25, 1.0), model (0.5, 0.5, 1.0). RI = 100/7 = 14.29 %.
  # Enumerating the 10 resamples (tests/core/test_bootstrap.py has the table): RI in {0 (8/27), 11.11 (3/27),
  # 14.29 (6/27), 20 (3/27), 33.33 (3/27), 50 (3/27), 100 (1/27)}; the 95 % interval is [0, 100]: 0 is reached
  # at cumulative 8/27 >= 0.025, and 100 is the first value past 26/27 = 0.963 < 0.975.
  study = str(tmp_path / "study")
  _run(study, placement.LayerPlan(DIMS, size="tiny"), {"zsre": (None, "acc", [0.5, 0.25, 1.0])})
  first = placement.LayerPlan(DIMS, position="first", ratio=50, size="tiny")
  _run(study, first, {"zsre": (None, "acc", [0.5, 0.5, 1.0])})
  table = load_study(study)
  records = report.uncertainty_lib.load_study_records(study, table)
  analysis = report.analyze(table, "zsre:acc", records=records)
  iv = analysis.uncertainty.ri_interval(analysis.configs[0].family, first.name, ("zsre", "acc"))
  assert (iv.value, iv.low, iv.high) == pytest.approx((100 / 7, 0.0, 100.0))
  assert not iv.excludes(0.0)
  text = open(report.write_report(study, tasks="zsre:acc")).read()
  assert "+14.29 [+0.00, +100.00]" in text and "paired bootstrap interval" in text


def test_tasks_without_signal_leave_the_average_and_real_differences_are_marked(tmp_path):
  # PIQA at chance for every run (no signal) and a clear zsRE gain on 200 documents.
  rng = np.random.default_rng(0)
  study = str(tmp_path / "study")
  coin = lambda: rng.integers(0, 2, 200).astype(float).tolist()  # a fresh chance-level run
  _run(
    study,
    placement.LayerPlan(DIMS, size="tiny"),
    {"piqa": (0.5, "acc", coin()), "zsre": (None, "acc", (rng.random(200) * 0.4).tolist())},
  )
  plans = [placement.LayerPlan(DIMS, position=p, ratio=50, size="tiny") for p in ("first", "final")]
  for plan, gain in zip(plans, (0.3, 0.0)):
    _run(study, plan, {"piqa": (0.5, "acc", coin()), "zsre": (None, "acc", (rng.random(200) * 0.4 + gain).tolist())})
  table = load_study(study)
  analysis = report.analyze(table, "piqa:acc,zsre:acc", records=report.uncertainty_lib.load_study_records(study, table))
  family = analysis.configs[0].family
  assert ("piqa", "acc") in analysis.uncertainty.no_signal[family]
  by_name = {c.name: c for c in analysis.configs}
  assert set(by_name[plans[0].name].per_task_mean) == {("zsre", "acc")}  # piqa left out of the average
  gain = analysis.uncertainty.ri_interval(family, plans[0].name, "average")
  assert gain.excludes(0.0) and gain.low > 50
  none = analysis.uncertainty.ri_interval(family, plans[1].name, "average")
  assert not none.excludes(0.0)
  text = open(report.write_report(study, tasks="piqa:acc,zsre:acc")).read()
  assert "no signal" in text and "✱" in text
  # Importance intervals exist for every deactivated layer and the figure draws them.
  assert all(iv is not None for iv in analysis.uncertainty.importance[family][:2])


def test_intervals_are_stable_under_the_seed(tmp_path):
  rng = np.random.default_rng(1)
  study = str(tmp_path / "study")
  _run(study, placement.LayerPlan(DIMS, size="tiny"), {"zsre": (None, "acc", rng.random(50).tolist())})
  plan = placement.LayerPlan(DIMS, position="middle", ratio=50, size="tiny")
  _run(study, plan, {"zsre": (None, "acc", rng.random(50).tolist())})
  table = load_study(study)
  recs = report.uncertainty_lib.load_study_records(study, table)
  a = report.analyze(table, "zsre:acc", records=recs, seed=3).uncertainty.ri[(table.families[0], plan.name)]
  b = report.analyze(table, "zsre:acc", records=recs, seed=3).uncertainty.ri[(table.families[0], plan.name)]
  c = report.analyze(table, "zsre:acc", records=recs, seed=4).uncertainty.ri[(table.families[0], plan.name)]
  assert a == b and a != c


def test_positions_are_ranked_with_paired_differences(tmp_path):
  rng = np.random.default_rng(2)
  study = str(tmp_path / "study")
  base = rng.random(300) * 0.4
  _run(study, placement.LayerPlan(DIMS, size="tiny"), {"zsre": (None, "acc", base.tolist())})
  gains = {"first": 0.2, "middle": 0.0, "final": -0.2}
  for position, gain in gains.items():
    for ratio in (25, 50):
      noise = rng.normal(0, 0.02, 300)
      _run(
        study,
        placement.LayerPlan(DIMS, position=position, ratio=ratio, size="tiny"),
        {"zsre": (None, "acc", np.clip(base + gain + noise, 0, 1).tolist())},
      )
  table = load_study(study)
  analysis = report.analyze(table, "zsre:acc", records=report.uncertainty_lib.load_study_records(study, table))
  family = table.families[0]
  assert [p for p, _ in analysis.uncertainty.position_ranking(family)] == ["first", "middle", "final"]
  assert analysis.uncertainty.position_differences[family][("first", "middle")].excludes(0.0)
  text = open(report.write_report(study, tasks="zsre:acc", summary="What this scale can show.")).read()
  assert "## Study report" not in text.splitlines()[0] and text.splitlines()[2] == "What this scale can show."
  assert "first over middle: difference" in text and "supported (interval excludes 0)" in text
