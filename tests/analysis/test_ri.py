import json
import math

import numpy as np
import pytest

from ffnjax.analysis import (
  TABLE1_TASKS,
  AnalysisError,
  compute_ri,
  default_higher_is_better,
  load_study,
  load_table,
  parse_task_set,
  relative_improvement,
  summarize_seeds,
  table_from_records,
)
from ffnjax.analysis.ri import PAPER_LABELS, TABLE2_TASKS


def rec(model, task, metric, value, seed=0, **kw):
  return dict(model=model, task=task, metric=metric, value=value, seed=seed, **kw)


def test_sign_rule():
  for name in ("word_perplexity", "perplexity", "ppl", "bits_per_byte", "byte_perplexity"):
    assert not default_higher_is_better(name)
  for name in ("acc", "acc_norm", "exact_match"):
    assert default_higher_is_better(name)
  # A lower perplexity and a higher accuracy are both improvements, of the relative size.
  assert relative_improvement(30.0, 40.0, higher_is_better=False) == pytest.approx(25.0)
  assert relative_improvement(0.5, 0.4, higher_is_better=True) == pytest.approx(25.0)
  assert relative_improvement(0.3, 0.4, higher_is_better=True) == pytest.approx(-25.0)


def test_ri_through_a_table_and_declared_direction():
  table = table_from_records(
    [
      rec("baseline_x_4l", "wikitext", "word_perplexity", 40.0),
      rec("first_50_x_4l", "wikitext", "word_perplexity", 50.0),
      rec("baseline_x_4l", "custom", "score", 2.0, higher_is_better="false"),
      rec("first_50_x_4l", "custom", "score", 1.0, higher_is_better="false"),
    ]
  )
  (r,) = compute_ri(table, [("wikitext", "word_perplexity"), ("custom", "score")])
  assert r.per_task[("wikitext", "word_perplexity")] == pytest.approx(-25.0)
  assert r.per_task[("custom", "score")] == pytest.approx(50.0)  # declared lower-is-better overrides the name
  assert r.average == pytest.approx(12.5)
  assert r.model.layer_types == ("expanded", "expanded", "deactivated", "deactivated")


def test_chance_exclusion_per_model_rule():
  rows = [
    rec("baseline_x_4l", "hellaswag", "acc_norm", 0.24),  # baseline below chance (0.25, known default)
    rec("first_50_x_4l", "hellaswag", "acc_norm", 0.30),
    rec("baseline_x_4l", "piqa", "acc_norm", 0.60),
    rec("first_50_x_4l", "piqa", "acc_norm", 0.49),  # model below chance (0.5)
    rec("final_50_x_4l", "piqa", "acc_norm", 0.66),
    rec("final_50_x_4l", "hellaswag", "acc_norm", 0.20),
    rec("baseline_x_4l", "arc_easy", "acc_norm", 0.30, chance=0.35),  # an explicit chance column wins
    rec("first_50_x_4l", "arc_easy", "acc_norm", 0.40, chance=0.35),
    rec("final_50_x_4l", "arc_easy", "acc_norm", 0.40, chance=0.35),
    # Perplexities are never chance-excluded, however bad.
    rec("baseline_x_4l", "wikitext", "word_perplexity", 1e4),
    rec("first_50_x_4l", "wikitext", "word_perplexity", 2e4),
    rec("final_50_x_4l", "wikitext", "word_perplexity", 5e3),
  ]
  tasks = [("hellaswag", "acc_norm"), ("piqa", "acc_norm"), ("arc_easy", "acc_norm"), ("wikitext", "word_perplexity")]
  first, final = compute_ri(table_from_records(rows), tasks, chance_rule="model")
  assert first.model.name == "first_50_x_4l"
  assert set(first.per_task) == {("wikitext", "word_perplexity")}
  assert first.excluded[("hellaswag", "acc_norm")] == "not above chance: baseline 0.24 <= 0.25"
  assert first.excluded[("piqa", "acc_norm")] == "not above chance: model 0.49 <= 0.5"
  assert first.excluded[("arc_easy", "acc_norm")] == "not above chance: baseline 0.3 <= 0.35"
  assert first.average == pytest.approx(-100.0)
  assert set(final.per_task) == {("piqa", "acc_norm"), ("wikitext", "word_perplexity")}
  assert final.average == pytest.approx((10.0 + 50.0) / 2)
  # The family rule (default): piqa is dropped for final_50 too, because first_50 of its family is at 0.49.
  first, final = compute_ri(table_from_records(rows), tasks)
  assert set(final.per_task) == {("wikitext", "word_perplexity")}
  assert final.excluded[("piqa", "acc_norm")] == ("not above chance in family x_4l: first_50_x_4l (seed 0) 0.49 <= 0.5")


def test_hand_computed_ri_acc_and_family_exclusion():
  """Paper rules: choice tasks by acc (acc_norm ignored), a value AT chance fails, one model at chance drops
  the task for its whole family; another family keeps it. Hand computation in the comment of each line."""
  values = {  # model -> (wikitext word ppl, hellaswag acc, hellaswag acc_norm, arc_challenge acc, zsre acc)
    "baseline_a_4l": (40.0, 0.30, 0.50, 0.28, 0.10),
    "first_50_a_4l": (32.0, 0.33, 0.20, 0.25, 0.12),  # arc_challenge 0.25 = chance: not above it
    "final_50_a_4l": (50.0, 0.27, 0.60, 0.30, 0.09),
    "baseline_b_4l": (20.0, 0.40, 0.40, 0.30, 0.20),
    "final_50_b_4l": (25.0, 0.44, 0.30, 0.33, 0.15),
  }
  rows = []
  for model, (ppl, hs, hs_norm, arc_c, zsre) in values.items():
    rows += [
      rec(model, "wikitext", "word_perplexity", ppl),
      rec(model, "hellaswag", "acc", hs),
      rec(model, "hellaswag", "acc_norm", hs_norm),
      rec(model, "arc_challenge", "acc", arc_c),
      rec(model, "zsre", "acc", zsre),
    ]
  tasks = "wikitext:word_perplexity,hellaswag:acc,arc_challenge:acc,zsre:acc"
  ris = {r.model.name: r for r in compute_ri(table_from_records(rows), tasks)}
  a_first, a_final, b_final = ris["first_50_a_4l"], ris["final_50_a_4l"], ris["final_50_b_4l"]
  # first_50_a: wikitext -(32-40)/40 = +20 %; hellaswag (0.33-0.30)/0.30 = +10 %; zsre (0.12-0.10)/0.10 = +20 %;
  # arc_challenge excluded (0.25 <= 0.25). Average (20 + 10 + 20) / 3 = 16.667 %.
  assert a_first.per_task == pytest.approx(
    {("wikitext", "word_perplexity"): 20.0, ("hellaswag", "acc"): 10.0, ("zsre", "acc"): 20.0}
  )
  assert a_first.average == pytest.approx(50.0 / 3)
  # final_50_a: its own arc_challenge 0.30 is above chance, but the family rule drops it (first_50_a at chance).
  # wikitext -(50-40)/40 = -25 %; hellaswag (0.27-0.30)/0.30 = -10 %; zsre (0.09-0.10)/0.10 = -10 %; avg -15 %.
  assert ("arc_challenge", "acc") not in a_final.per_task
  assert a_final.excluded[("arc_challenge", "acc")] == (
    "not above chance in family a_4l: first_50_a_4l (seed 0) 0.25 <= 0.25"
  )
  assert a_final.average == pytest.approx(-15.0)
  # Family b keeps arc_challenge: wikitext -(25-20)/20 = -25 %; hellaswag +10 %; arc_c (0.33-0.30)/0.30 = +10 %;
  # zsre (0.15-0.20)/0.20 = -25 %; avg (-25 + 10 + 10 - 25) / 4 = -7.5 %.
  assert b_final.per_task[("arc_challenge", "acc")] == pytest.approx(10.0)
  assert b_final.average == pytest.approx(-7.5)
  # Per-model rule: final_50_a keeps arc_challenge, (0.30-0.28)/0.28 = +7.143 %; avg (-25-10+7.143-10)/4 = -9.464 %.
  per_model = {r.model.name: r for r in compute_ri(table_from_records(rows), tasks, chance_rule="model")}
  assert per_model["final_50_a_4l"].average == pytest.approx((-25 - 10 + 2 / 0.28 - 10) / 4)
  with pytest.raises(AnalysisError, match="--chance_rule='strict'"):
    compute_ri(table_from_records(rows), tasks, chance_rule="strict")


def test_paper_task_sets_use_acc_in_the_paper_order():
  assert ("hellaswag", "acc") in TABLE1_TASKS and not any(m == "acc_norm" for _, m in TABLE1_TASKS)
  assert [PAPER_LABELS[t] for t in TABLE2_TASKS] == [
    "WikiText PPL",
    "LAMBADA PPL",
    "LAMBADA Acc",
    "ARC-e",
    "ARC-c",
    "WinoG",
    "PIQA",
    "HellaSwag",
    "zsRE",
  ]
  assert parse_task_set("hellaswag:acc_norm") == (("hellaswag", "acc_norm"),)


def test_seeds_pair_with_the_same_seed_baseline_and_summarise():
  rows = []
  for seed, (base, exp) in enumerate([(0.40, 0.44), (0.50, 0.45), (0.40, 0.42)]):
    rows += [rec("baseline_x_4l", "zsre", "acc", base, seed), rec("middle_50_x_4l", "zsre", "acc", exp, seed)]
  ris = compute_ri(table_from_records(rows), [("zsre", "acc")])
  assert [r.baseline.seed for r in ris] == [0, 1, 2]
  per_seed = [10.0, -10.0, 5.0]
  np.testing.assert_allclose([r.average for r in ris], per_seed)
  (cfg,) = summarize_seeds(ris)
  assert cfg.seeds == (0, 1, 2)
  assert cfg.average_mean == pytest.approx(np.mean(per_seed))
  assert cfg.average_std == pytest.approx(np.std(per_seed, ddof=1))


def test_single_baseline_serves_every_seed_but_ambiguity_is_an_error():
  rows = [rec("baseline_x_4l", "zsre", "acc", 0.4), rec("first_50_x_4l", "zsre", "acc", 0.5, seed=3)]
  (r,) = compute_ri(table_from_records(rows), [("zsre", "acc")])
  assert r.baseline.seed == 0 and r.average == pytest.approx(25.0)
  rows.append(rec("baseline_x_4l", "zsre", "acc", 0.45, seed=1))
  with pytest.raises(AnalysisError, match="seed 3 but the 'x_4l' baselines have seeds \\[0, 1\\]"):
    compute_ri(table_from_records(rows), [("zsre", "acc")])


def test_bad_inputs():
  with pytest.raises(AnalysisError, match="no baseline for model 'first_50_x_4l'"):
    compute_ri(table_from_records([rec("first_50_x_4l", "zsre", "acc", 0.5)]), [("zsre", "acc")])
  table = table_from_records([rec("baseline_x_4l", "zsre", "acc", 0.4), rec("first_50_x_4l", "zsre", "acc", 0.5)])
  with pytest.raises(AnalysisError, match=r"task set names \['piqa:acc_norm'\], which no run has"):
    compute_ri(table, [("zsre", "acc"), ("piqa", "acc_norm")])
  with pytest.raises(AnalysisError, match="empty input"):
    table_from_records([])
  with pytest.raises(AnalysisError, match=r"missing required column\(s\) \['value'\]"):
    table_from_records([dict(model="baseline_x_4l", task="zsre", metric="acc")])
  with pytest.raises(AnalysisError, match="position and ratio are not given"):
    table_from_records([rec("my_model", "zsre", "acc", 0.5)])
  with pytest.raises(AnalysisError, match="position='top' must be one of"):
    table_from_records([rec("m", "zsre", "acc", 0.5, position="top", ratio=50, num_layers=4)])
  with pytest.raises(AnalysisError, match="'zsre' must be 'task:metric'"):
    parse_task_set("zsre:acc,zsre")
  assert parse_task_set("table1") == TABLE1_TASKS
  assert parse_task_set("zsre:acc, piqa:acc_norm") == (("zsre", "acc"), ("piqa", "acc_norm"))


def test_json_table_with_free_names(tmp_path):
  rows = [
    rec("llama_base", "zsre", "acc", 0.4, position="baseline", num_layers=4, family="llama"),
    rec("llama_deep", "zsre", "acc", 0.3, position="final", ratio=50, num_layers=4, family="llama"),
  ]
  path = tmp_path / "published.json"
  path.write_text(json.dumps({"rows": rows}))
  (r,) = compute_ri(load_table(str(path)), [("zsre", "acc")])
  assert r.baseline.name == "llama_base" and r.model.ratio == 50 and r.average == pytest.approx(-25.0)
  assert r.model.deactivated == (0, 1)
  with pytest.raises(AnalysisError, match="must end in .csv or .json"):
    (tmp_path / "t.txt").write_text("x")
    load_table(str(tmp_path / "t.txt"))


def test_study_directory_and_empty_study(study, tmp_path):
  table = load_study(study)
  assert len(table.models) == 7 and table.families == ["tiny_4l"]
  ris = {r.model.name: r for r in compute_ri(table, TABLE1_TASKS)}
  # Quality 0.95 scales accuracies by 0.95 (-5 %) and perplexity by 1/0.95 (-(1/0.95 - 1) %).
  final = ris["final_50_tiny_4l"]
  assert final.per_task[("hellaswag", "acc")] == pytest.approx(-5.0)
  assert final.per_task[("wikitext", "word_perplexity")] == pytest.approx(-(1 / 0.95 - 1) * 100)
  assert final.model.layer_types == ("deactivated", "deactivated", "expanded", "expanded")
  assert math.isclose(final.average, np.mean(list(final.per_task.values())))
  empty = tmp_path / "empty"
  (empty / "run_a").mkdir(parents=True)
  (empty / "run_a" / "config.json").write_text("{}")
  with pytest.raises(AnalysisError, match="empty input: no run has eval/results.json"):
    load_study(str(empty))
