import math

import numpy as np
import pytest

from ffnjax.analysis import (
  TABLE1_TASKS,
  AnalysisError,
  compute_ri,
  importance,
  importance_by_family,
  standardize,
  table_from_records,
)
from ffnjax.core import placement

DIMS4 = placement.ModelDims(vocab_size=64, num_layers=4, d_model=16, d_ff=32, num_heads=2)


def types(position, ratio, dims=DIMS4):
  return placement.LayerPlan(dims, position=position, ratio=ratio).layer_types


def test_paper_worked_example_570m_40l_final_50():
  """method.md §5: final_50 of 570m_40l (layers 1-20 deactivated) at average RI -2.04 % gives each +0.102."""
  base = {"wikitext": 20.0, "lambada_openai": 0.5, "hellaswag": 0.4, "zsre": 0.2, "arc_easy": 0.5, "piqa": 0.6}
  rows = []
  for task, metric in TABLE1_TASKS:
    b = base[task]
    worse = b * (1 + 0.0204) if metric == "word_perplexity" else b * (1 - 0.0204)  # RI = -2.04 % on every task
    rows += [
      dict(model="baseline_570m_40l", task=task, metric=metric, value=b),
      dict(model="final_50_570m_40l", task=task, metric=metric, value=worse),
    ]
  (r,) = compute_ri(table_from_records(rows), TABLE1_TASKS)
  assert r.model.deactivated == tuple(range(20))  # layers 1-20 (0-based 0-19)
  assert r.average == pytest.approx(-2.04)
  imp = importance([(r.model.name, r.model.layer_types, r.average)], 40)
  assert imp.contributions[0].per_layer == pytest.approx(0.102)
  np.testing.assert_allclose(imp.raw[:20], 0.102)
  assert np.isnan(imp.raw[20:]).all() and (imp.counts == [1] * 20 + [0] * 20).all()
  # One configuration: every defined Raw is equal, so every defined score is 0 (std 0), the rest undefined.
  np.testing.assert_array_equal(imp.score[:20], 0.0)
  assert np.isnan(imp.score[20:]).all()


def test_importance_equals_a_hand_computation_with_standardisation():
  # 4 layers, 0-based. Deactivated sets follow method.md §2:
  #   first_50  -> layers {2,3}, RI +2.0 -> I = -1.0 each
  #   final_50  -> layers {0,1}, RI -4.0 -> I = +2.0 each
  #   middle_50 -> layers {0,3}, RI -1.0 -> I = +0.5 each   (expanded 1,2: symmetric about the middle)
  #   first_25  -> layers {1,2,3}, RI -3.0 -> I = +1.0 each
  configs = [
    ("first_50", types("first", 50), 2.0),
    ("final_50", types("final", 50), -4.0),
    ("middle_50", types("middle", 50), -1.0),
    ("first_25", types("first", 25), -3.0),
  ]
  assert [t == "deactivated" for t in types("middle", 50)] == [True, False, False, True]
  imp = importance(configs, 4)
  raw = [(2.0 + 0.5) / 2, (2.0 + 1.0) / 2, (-1.0 + 1.0) / 2, (-1.0 + 0.5 + 1.0) / 3]
  np.testing.assert_allclose(imp.raw, raw)
  np.testing.assert_array_equal(imp.counts, [2, 2, 2, 3])
  mean = sum(raw) / 4
  pop_std = math.sqrt(sum((x - mean) ** 2 for x in raw) / 4)  # population std (ddof=0), as documented
  np.testing.assert_allclose(imp.score, [(x - mean) / pop_std for x in raw])
  sample_std = math.sqrt(sum((x - mean) ** 2 for x in raw) / 3)
  assert not np.allclose(imp.score, [(x - mean) / sample_std for x in raw])  # the ddof choice is visible


def test_never_deactivated_layers_are_nan_and_left_out_of_standardisation():
  configs = [("final_50", types("final", 50), -4.0), ("middle_50", types("middle", 50), -1.0)]
  imp = importance(configs, 4)  # layer 2 (0-based) is never deactivated
  assert np.isnan(imp.raw[2]) and np.isnan(imp.score[2])
  defined = imp.raw[[0, 1, 3]]
  np.testing.assert_allclose(imp.score[[0, 1, 3]], (defined - defined.mean()) / defined.std())
  np.testing.assert_allclose(standardize(np.array([1.0, np.nan, 3.0])), [-1.0, np.nan, 1.0])
  np.testing.assert_array_equal(standardize(np.array([5.0, 5.0 + 1e-15, 5.0 - 1e-15])), 0.0)  # rounding, not spread


def test_seeds_mean_and_std_of_importance():
  rows = []
  ri = {0: {"first_50": 0.10, "final_50": -0.20}, 1: {"first_50": -0.10, "final_50": -0.10}}
  for seed, per in ri.items():
    rows.append(dict(model="baseline_x_4l", task="zsre", metric="acc", value=1.0, seed=seed))
    for name, delta in per.items():
      rows.append(dict(model=f"{name}_x_4l", task="zsre", metric="acc", value=1.0 + delta, seed=seed))
  summary = importance_by_family(compute_ri(table_from_records(rows), [("zsre", "acc")]))["x_4l"]
  assert summary.seeds == (0, 1) and summary.num_layers == 4
  # seed 0: first_50 (+10 %) -> -5 on layers 2,3; final_50 (-20 %) -> +10 on layers 0,1 -> scores [1, 1, -1, -1]
  # seed 1: first_50 (-10 %) -> +5 on 2,3; final_50 (-10 %) -> +5 on 0,1 -> all equal -> scores 0
  np.testing.assert_allclose(summary.per_seed[0].raw, [10, 10, -5, -5])
  np.testing.assert_allclose(summary.per_seed[0].score, [1, 1, -1, -1])
  np.testing.assert_allclose(summary.per_seed[1].score, [0, 0, 0, 0])
  np.testing.assert_allclose(summary.score_mean, [0.5, 0.5, -0.5, -0.5])
  np.testing.assert_allclose(summary.score_std, np.std([[1, 1, -1, -1], [0, 0, 0, 0]], axis=0, ddof=1))
  np.testing.assert_allclose(summary.raw_mean, [7.5, 7.5, 0.0, 0.0], atol=1e-12)


def test_importance_errors():
  with pytest.raises(AnalysisError, match="no configuration with deactivated layers"):
    importance([("baseline", ("standard",) * 4, 0.0)], 4)
  with pytest.raises(AnalysisError, match="has 4 layer_types, expected num_layers=5"):
    importance([("first_50", types("first", 50), 1.0)], 5)
