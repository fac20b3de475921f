"""Shapley intervals (ffnjax/shapley/intervals.py): linear maps of the estimators and a hand-computed table."""

import numpy as np
import pytest

from ffnjax.core import bootstrap
from ffnjax.shapley import estimators, intervals


@pytest.mark.parametrize("make", [
    lambda n: (lambda v: estimators.exact_shapley(v, n)),
    lambda n: (lambda v: estimators.block_shapley(v, n, level=3)),
    lambda n: (lambda v: estimators.single_ablation(v, n).drop),
    lambda n: (lambda v: estimators.permutation_shapley(v, n, 5, seed=1).values),
])
def test_linear_map_reproduces_each_estimator(make):
  n = 5
  estimate = make(n)
  coalitions = intervals.coalitions_of(estimate)
  a = intervals.linear_map(estimate, coalitions)
  rng = np.random.default_rng(0)
  table = {c: float(rng.random()) for c in coalitions}
  np.testing.assert_allclose(a @ np.array([table[c] for c in coalitions]), estimate(lambda c: table[frozenset(c)]),
                             atol=1e-12)


def test_exact_game_intervals_equal_hand_computation():
  # Two players, two examples. Per-example scores: v(empty)=[0,0], v({0})=[1,0], v({1})=[0,0], v({0,1})=[1,1].
  # phi0 = (v0 - v_ + v01 - v1) / 2, phi1 = (v1 - v_ + v01 - v0) / 2. The three resamples of 2 examples:
  #   (2,0) p=1/4: phi=(1, 0);  (0,2) p=1/4: phi=(0.5, 0.5);  (1,1) p=1/2: phi=(0.75, 0.25) (= the point).
  # phi0: 0.5 (cum .25), 0.75 (.75), 1 (1) -> 95 %: [0.5, 1] excludes 0; 50 %: [0.5, 0.75].
  # phi1: 0 (.25), 0.25 (.75), 0.5 (1) -> 95 %: [0, 0.5] covers 0. Shares per resample: (1,0), (.5,.5), (.75,.25).
  coalitions = [frozenset(), frozenset({0}), frozenset({1}), frozenset({0, 1})]
  per_example = np.array([[0, 0], [1, 0], [0, 0], [1, 1]], float)
  a = intervals.linear_map(lambda v: estimators.exact_shapley(v, 2), coalitions)
  res = bootstrap.enumerate_all(2)
  g = intervals.game_intervals(a, per_example, full_row=3, res=res)
  assert [(i.value, i.low, i.high) for i in g.phi] == [(0.75, 0.5, 1.0), (0.25, 0.0, 0.5)]
  assert g.significant() == [True, False]
  assert [(i.value, i.low, i.high) for i in g.shares] == [(0.75, 0.5, 1.0), (0.25, 0.0, 0.5)]
  assert (g.full.value, g.full.low, g.full.high) == (1.0, 1.0, 1.0)
  half = intervals.game_intervals(a, per_example, full_row=3, res=res, confidence=0.5)
  assert (half.phi[0].low, half.phi[0].high) == (0.5, 0.75)


def test_examples_needed_scale_as_inverse_square():
  assert intervals.examples_for_half_width(0.10, 100, 0.05) == 400
  assert intervals.examples_for_half_width(0.02, 100, 0.05) == 16
  with pytest.raises(ValueError, match="target_ci"):
    intervals.examples_for_half_width(0.1, 100, 0.0)
