"""Bootstrap intervals (ffnjax/core/bootstrap.py) against hand computations over enumerated resamples."""

import math

import numpy as np
import pytest

from ffnjax.core import bootstrap


def _recs(field, values):
  return [{"doc_id": i, field: v} for i, v in enumerate(values)]


def test_enumeration_is_the_exact_bootstrap_distribution():
  res = bootstrap.enumerate_all(3)
  assert res.counts.shape == (10, 3)  # the 10 ways to draw 3 documents from 3, order ignored
  assert res.weights.sum() == pytest.approx(1.0)
  assert res.weights[(res.counts == [1, 1, 1]).all(axis=1)][0] == pytest.approx(6 / 27)
  assert (res.counts.sum(axis=1) == 3).all()


def test_paired_ri_interval_equals_hand_computation():
  # zsRE-style token accuracies of 3 documents. RI_r = (w.m - w.b) / w.b * 100 = 25 w2 / (0.5 w1 + 0.25 w2 + w3).
  # By hand over the 10 count vectors (probability in 27ths):
  #   RI 0 (w2 = 0: 1+1+3+3 = 8), 11.11 (0,1,2: 3), 14.29 (1,1,1: 6), 20 (2,1,0: 3), 33.33 (0,2,1: 3),
  #   50 (1,2,0: 3), 100 (0,3,0: 1); cumulative 8, 11, 17, 20, 23, 26, 27.
  # 50 % interval: q=0.25 -> 0 (8/27 >= .25); q=0.75 -> 33.33 (20/27 < .75 <= 23/27).
  # 80 % interval: q=0.10 -> 0; q=0.90 -> 50 (23/27 < .9 <= 26/27). Point: (2/3 - 1.75/3) / (1.75/3) = 14.29 %.
  base, model = _recs("acc", [0.5, 0.25, 1.0]), _recs("acc", [0.5, 0.5, 1.0])
  m, b = bootstrap.align(model, base, "zsre")
  res = bootstrap.enumerate_all(3)
  rm, rb = bootstrap.replicates(m, "acc", res), bootstrap.replicates(b, "acc", res)
  ri = (rm - rb) / rb * 100
  value = (bootstrap.point(m, "acc") - bootstrap.point(b, "acc")) / bootstrap.point(b, "acc") * 100
  assert value == pytest.approx(100 / 7)
  i50 = bootstrap.interval(value, ri, res, confidence=0.5)
  assert (i50.low, i50.high) == pytest.approx((0.0, 100 / 3))
  i80 = bootstrap.interval(value, ri, res, confidence=0.8)
  assert (i80.low, i80.high) == pytest.approx((0.0, 50.0))
  assert not i80.excludes(0.0) and i80.format() == "+14.29 [+0.00, +50.00]"


def test_ratio_statistics_match_the_metric_definitions():
  recs = [{"doc_id": 0, "ll": -10.0, "words": 4, "bytes": 20}, {"doc_id": 1, "ll": -2.0, "words": 1, "bytes": 6}]
  assert bootstrap.point(recs, "word_perplexity") == pytest.approx(math.exp(12 / 5))
  assert bootstrap.point(recs, "bits_per_byte") == pytest.approx(12 / 26 / math.log(2))
  assert bootstrap.point(recs, "perplexity") == pytest.approx(math.exp(6.0))
  # Document-level resampling: the resample drawing document 0 twice is a page-weighted ratio, not a mean of ratios.
  res = bootstrap.Resamples(np.array([[2.0, 0.0], [1.0, 1.0]]), np.array([0.5, 0.5]))
  np.testing.assert_allclose(bootstrap.replicates(recs, "word_perplexity", res), [math.exp(20 / 8), math.exp(12 / 5)])


def test_draws_are_stable_under_a_seed_and_unpaired_documents_are_refused():
  a, b = bootstrap.draw(50, 200, seed=3), bootstrap.draw(50, 200, seed=3)
  np.testing.assert_array_equal(a.counts, b.counts)
  assert not np.array_equal(a.counts, bootstrap.draw(50, 200, seed=4).counts)
  with pytest.raises(bootstrap.BootstrapError, match="different documents"):
    bootstrap.align(_recs("acc", [1, 0]), _recs("acc", [1, 0, 1]), "piqa")


def test_interval_of_a_mean_covers_the_truth_at_about_the_stated_rate():
  rng = np.random.default_rng(0)
  hits = 0
  for trial in range(200):
    x = rng.random(80) < 0.3
    res = bootstrap.draw(80, 400, seed=trial)
    recs = _recs("acc", x.astype(float))
    i = bootstrap.interval(bootstrap.point(recs, "acc"), bootstrap.replicates(recs, "acc", res), res)
    hits += i.low <= 0.3 <= i.high
  assert 0.88 <= hits / 200 <= 0.99


def test_mean_replicates_of_a_coalition_table_and_seed_combination():
  values = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])  # 2 coalitions x 3 examples
  res = bootstrap.Resamples(np.array([[3.0, 0.0, 0.0], [1.0, 1.0, 1.0]]), np.array([0.5, 0.5]))
  np.testing.assert_allclose(bootstrap.mean_replicates(values, res), [[1.0, 0.0], [2 / 3, 1 / 3]])
  one = np.array([[1.0, 2.0, 3.0]])
  np.testing.assert_array_equal(bootstrap.combine_seeds(one), one[0])
  two = np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
  combined = bootstrap.combine_seeds(two)
  assert set(np.round(combined * 2) / 2) <= {0.0, 0.5, 1.0}
