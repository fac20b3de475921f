import json
import os
import subprocess
import sys

import pytest

from ffnjax.analysis import AnalysisError, load_study, load_table, write_report
from ffnjax.core import placement

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_study_report(study):
  os.makedirs(os.path.join(study, "middle_75_tiny_4l"))  # a run still training: listed, not analysed
  with open(os.path.join(study, "middle_75_tiny_4l", "config.json"), "w") as f:
    json.dump({"seed": 0}, f)
  with open(os.path.join(study, "study.json"), "w") as f:
    json.dump({"runs": {"baseline_tiny_4l": {"train_time_s": 99.0, "status": "done"}}}, f)
  path = write_report(study, top_k=3)
  assert path == os.path.join(study, "report.md")
  text = open(path).read()
  assert "## tiny_4l" in text and "### Table 1: top 3 configurations by average RI (%)" in text
  table1 = text.split("### Table 1")[1].split("###")[0]
  assert "| Model | WikiText PPL | LAMBADA Acc | HellaSwag | zsRE | ARC-e | PIQA | Avg |" in table1
  assert table1.count("_tiny_4l |") == 3 and "| first_50_tiny_4l | +1.96 | +2.00" in table1.split("\n")[4]  # best first
  assert "| 1 | first_50_tiny_4l | first | 50 |" in text  # the full ranking
  assert "No (task, metric) pair was left out of any comparison." in text
  assert "### Layerwise FFN importance" in text
  assert "middle_75_tiny_4l: no eval/results.json" in text
  assert "study.json train_time_s" in text and "| 99 |" in text  # study.json times
  assert "| ≈15 | 12 |" in text  # train wall from step_time_s, eval wall from results.json
  for name in ("ri_vs_ratio_tiny_4l", "importance_tiny_4l", "loss_curves"):
    assert f"(figures/{name}.png)" in text
    for ext in ("png", "svg"):
      assert os.path.getsize(os.path.join(study, "figures", f"{name}.{ext}")) > 1000


def test_table_round_trip_and_two_families(study, tmp_path, make_run):
  big = placement.ModelDims(vocab_size=64, num_layers=6, d_model=16, d_ff=32, num_heads=2)
  make_run(study, placement.LayerPlan(big, size="tiny"), 1.0)
  make_run(study, placement.LayerPlan(big, position="final", ratio=50, size="tiny"), 0.9)
  table = load_study(study)
  assert table.families == ["tiny_4l", "tiny_6l"]
  csv_path = str(tmp_path / "table.csv")
  table.write_csv(csv_path)
  again = load_table(csv_path)
  assert {r.key for r in again.rows} == {r.key for r in table.rows} and len(again.rows) == len(table.rows)
  out = str(tmp_path / "out")
  text = open(write_report(table=again, output_dir=out, tasks="table1")).read()
  assert "## tiny_6l" in text and "final_50_tiny_6l" in text
  assert os.path.exists(os.path.join(out, "figures", "importance_tiny_6l.svg"))


def test_cli(tmp_path):
  rows = [
    "model,position,ratio,seed,task,metric,value",
    "baseline_x_4l,baseline,100,0,zsre,acc,0.40",
    "first_50_x_4l,first,50,0,zsre,acc,0.44",
    "final_50_x_4l,final,50,0,zsre,acc,0.38",
  ]
  good = tmp_path / "t.csv"
  good.write_text("\n".join(rows) + "\n")
  run = lambda *args: subprocess.run(
    [sys.executable, "-m", "ffnjax.analysis", *args], cwd=REPO, capture_output=True, text=True, timeout=120
  )
  ok = run(f"--table={good}", f"--output={tmp_path / 'out'}", "--tasks=zsre:acc")
  assert ok.returncode == 0, ok.stderr
  assert ok.stdout.strip() == str(tmp_path / "out" / "report.md")
  bad = tmp_path / "nobase.csv"
  bad.write_text("\n".join(rows[:1] + rows[2:]) + "\n")
  failed = run(f"--table={bad}", f"--output={tmp_path / 'out2'}", "--tasks=zsre:acc")
  assert failed.returncode != 0 and "no baseline for model 'first_50_x_4l'" in failed.stderr
  neither = run("--tasks=zsre:acc")
  assert neither.returncode != 0 and "exactly one of --study=DIR or --table" in neither.stderr


def test_report_errors(study, tmp_path):
  with pytest.raises(AnalysisError, match="task set names \\['arc_challenge:acc', 'winogrande:acc'\\]"):
    write_report(study, tasks="table2")
  with pytest.raises(AnalysisError, match="not a directory"):
    write_report(str(tmp_path / "nowhere"))
  with pytest.raises(AnalysisError, match="output_dir is required"):
    write_report(table=load_study(study))


def test_token_budgets_table7_and_family_exclusion_listed(tmp_path, make_run):
  """Over-training layout: each budget is its own family (baseline of the same budget); a model at chance drops
  the task for its budget's family only, and report.md says so."""
  dims = placement.ModelDims(vocab_size=64, num_layers=4, d_model=16, d_ff=32, num_heads=2)
  study = tmp_path / "overtrain"
  quality = {
    "1x": {"baseline": 1.0, "first": 1.02, "final": 0.85},
    "2x": {"baseline": 1.0, "first": 1.05, "final": 0.97},
  }
  for budget, q in quality.items():
    for pos, value in q.items():
      plan = (
        placement.LayerPlan(dims, size="tiny")
        if pos == "baseline"
        else placement.LayerPlan(dims, position=pos, ratio=50, size="tiny")
      )
      run = make_run(study, plan, value, run_name=f"{plan.name}_{budget}")
      config_path = os.path.join(run, "config.json")
      config = json.load(open(config_path))
      config["placement"]["budget"] = budget
      json.dump(config, open(config_path, "w"))
  table = load_study(str(study))
  assert table.families == ["tiny_4l@1x", "tiny_4l@2x"]
  text = open(write_report(str(study))).read()
  table7 = text.split("## Table 7: average RI (%) per token budget")[1].split("\n## ")[0]
  assert "| baseline | placement | 1x tokens | 2x tokens |" in table7
  assert "| tiny_4l | first_50 |" in table7 and "| tiny_4l | final_50 |" in table7
  # final_50 @1x: hellaswag acc 0.29 * 0.85 = 0.2465 <= 0.25 -> dropped for every 1x model, kept at 2x.
  assert (
    "| tiny_4l@1x | hellaswag acc | not above chance in family tiny_4l@1x: final_50_tiny_4l@1x (seed 0) "
    "0.2465 <= 0.25 |" in text
  )
  assert "tiny_4l@2x | hellaswag" not in text
  first_1x = text.split("## tiny_4l@1x")[1].split("### Table 2")[1]
  assert "| first_50_tiny_4l@1x | +1.96 | +2.00 | excl. | +2.00 | +2.00 | +2.00 |" in first_1x
