"""Shapley intervals (ffnjax/shapley/intervals.py): linear maps of the estimators, hand-computed tables, the
permutation two-level bootstrap, the significance-gated cornerstone rule and the per-task games' example tables."""

import numpy as np
import pytest

from ffnjax.core import bootstrap
from ffnjax.shapley import estimators, intervals
from ffnjax.shapley.cache import CoalitionCache
from ffnjax.shapley.cornerstones import read_cornerstones
from ffnjax.shapley.pertask import TaskGames

COALITIONS_2 = [frozenset(), frozenset({0}), frozenset({1}), frozenset({0, 1})]


@pytest.mark.parametrize(
  "make",
  [
    lambda n: lambda v: estimators.exact_shapley(v, n),
    lambda n: lambda v: estimators.block_shapley(v, n, level=3),
    lambda n: lambda v: estimators.single_ablation(v, n).drop,
    lambda n: lambda v: estimators.permutation_shapley(v, n, 5, seed=1).values,
  ],
)
def test_linear_map_reproduces_each_estimator(make):
  n = 5
  estimate = make(n)
  coalitions = intervals.coalitions_of(estimate)
  a = intervals.linear_map(estimate, coalitions)
  rng = np.random.default_rng(0)
  table = {c: float(rng.random()) for c in coalitions}
  np.testing.assert_allclose(
    a @ np.array([table[c] for c in coalitions]), estimate(lambda c: table[frozenset(c)]), atol=1e-12
  )


def test_exact_map_is_the_exact_estimators_linear_map():
  n = 4

  def estimate(v):
    return estimators.exact_shapley(v, n)

  coalitions = intervals.coalitions_of(estimate)[::-1]  # any column order
  np.testing.assert_allclose(intervals.exact_map(n, coalitions), intervals.linear_map(estimate, coalitions), atol=1e-12)


def test_exact_game_intervals_equal_hand_computation_enumerated():
  # Two players, two examples. Per-example scores: v(empty)=[0,0], v({0})=[1,0], v({1})=[0,0], v({0,1})=[1,1].
  # phi0 = (v0 - v_ + v01 - v1) / 2, phi1 = (v1 - v_ + v01 - v0) / 2. The three resamples of 2 examples:
  #   (2,0) p=1/4: phi=(1, 0);  (0,2) p=1/4: phi=(0.5, 0.5);  (1,1) p=1/2: phi=(0.75, 0.25) (= the point).
  # phi0: 0.5 (cum .25), 0.75 (.75), 1 (1) -> 95 %: [0.5, 1] excludes 0; 50 %: [0.5, 0.75].
  # phi1: 0 (.25), 0.25 (.75), 0.5 (1) -> 95 %: [0, 0.5] covers 0. Shares per resample: (1,0), (.5,.5), (.75,.25).
  per_example = np.array([[0, 0], [1, 0], [0, 0], [1, 1]], float)
  a = intervals.linear_map(lambda v: estimators.exact_shapley(v, 2), COALITIONS_2)
  res = bootstrap.enumerate_all(2)
  g = intervals.game_intervals(a, per_example, COALITIONS_2, res=res)
  assert [(i.value, i.low, i.high) for i in g.phi] == [(0.75, 0.5, 1.0), (0.25, 0.0, 0.5)]
  assert g.significant() == [True, False]
  assert [(i.value, i.low, i.high) for i in g.shares] == [(0.75, 0.5, 1.0), (0.25, 0.0, 0.5)]
  assert (g.full.value, g.full.low, g.full.high) == (1.0, 1.0, 1.0)
  half = intervals.game_intervals(a, per_example, COALITIONS_2, res=res, confidence=0.5)
  assert (half.phi[0].low, half.phi[0].high) == (0.5, 0.75)


def test_four_example_table_with_fixed_resamples_equals_hand_computation():
  # Two players, four examples, exact Shapley; four fixed resamples (counts per example), equal weights.
  #            v(empty)   v({0})     v({1})     v({0,1})
  # examples   0 0 0 0    1 0 1 0    0 0 0 1    1 1 1 0
  # r1 (1,1,1,1): v0 .5   v1 .25  vN .75 -> phi (.5, .25)   drops (vN-v1, vN-v0) = (.5, .25)  shares (2/3, 1/3)
  # r2 (2,0,2,0): v0 1    v1 0    vN 1   -> phi (1, 0)      drops (1, 0)                      shares (1, 0)
  # r3 (0,2,1,1): v0 .25  v1 .25  vN .75 -> phi (.375,.375) drops (.5, .5)                    shares (.5, .5)
  # r4 (4,0,0,0): v0 1    v1 0    vN 1   -> phi (1, 0)      drops (1, 0)                      shares (1, 0)
  # 95 % inverted-CDF percentiles of 4 equal-weight replicates: the smallest and the largest.
  per_example = np.array([[0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 1], [1, 1, 1, 0]], float)
  res = bootstrap.Resamples(np.array([[1, 1, 1, 1], [2, 0, 2, 0], [0, 2, 1, 1], [4, 0, 0, 0]], float), np.full(4, 0.25))
  ci = intervals.task_intervals(
    COALITIONS_2, per_example, None, 2, intervals.linear_phi(intervals.exact_map(2, COALITIONS_2)), res
  )

  def triple(xs):
    return [(i.value, i.low, i.high) for i in xs]

  assert triple(ci.phi) == [(0.5, 0.375, 1.0), (0.25, 0.0, 0.375)]
  assert ci.significant("phi") == [True, False]
  assert triple(ci.drop) == [(0.5, 0.5, 1.0), (0.25, 0.0, 0.5)] and ci.significant("drop") == [True, False]
  assert triple(ci.without) == [(0.25, 0.0, 0.25), (0.5, 0.25, 1.0)]
  assert (ci.full.value, ci.full.low, ci.full.high) == (0.75, 0.75, 1.0)
  np.testing.assert_allclose([(i.value, i.low, i.high) for i in ci.shares], [(2 / 3, 0.5, 1.0), (1 / 3, 0.0, 0.5)])
  # the same table read through a ratio-of-sums value (den = 1 per example) gives the same intervals
  ratio = intervals.task_intervals(
    COALITIONS_2,
    per_example,
    np.ones_like(per_example),
    2,
    intervals.linear_phi(intervals.exact_map(2, COALITIONS_2)),
    res,
  )
  assert triple(ratio.phi) == triple(ci.phi)


def test_permutation_intervals_carry_the_sampling_noise():
  # Examples that all agree leave only the Monte Carlo noise of the sampled permutations in the interval.
  n, perms = 3, 6
  table = {c: float(len(c) ** 2) for c in map(frozenset, [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)])}
  est = estimators.permutation_shapley(lambda c: table[frozenset(c)], n, perms, seed=3)
  coalitions = list(table)
  phi = intervals.permutation_phi(est.permutations, coalitions, seed=0)
  per_example = np.repeat(np.array([table[c] for c in coalitions])[:, None], 4, axis=1)
  ci = intervals.task_intervals(coalitions, per_example, None, n, phi, bootstrap.draw(4, 200, 0))
  np.testing.assert_allclose([i.value for i in ci.phi], est.values)
  assert all(i.high > i.low for i in ci.phi)  # v(S) = |S|^2: the marginal depends on the position in the order
  # with an additive game every permutation gives the same marginals: no noise at all
  additive = np.repeat(np.array([float(sum(c)) for c in coalitions])[:, None], 4, axis=1)
  flat = intervals.task_intervals(coalitions, additive, None, n, phi, bootstrap.draw(4, 200, 0))
  assert [(i.low, i.high) for i in flat.phi] == [(0.0, 0.0), (1.0, 1.0), (2.0, 2.0)]


def test_cornerstones_need_a_significant_drop_and_a_full_model_above_chance():
  without = [0.26, 0.27, 0.50, 0.24]
  # the paper's point rule finds 0, 1 and 3; 1's drop interval reaches 0, so it is not reported
  r = read_cornerstones(without, full=0.60, full_low=0.45, drop_low=[0.2, 0.0, 0.01, 0.1], chance=0.25, tolerance=0.02)
  assert r.defined and r.reason is None and r.point_rule == [0, 1, 3] and r.significant == [0, 3]
  # the full model's interval reaches chance: nothing can be claimed, whatever the point rule says
  r = read_cornerstones(without, full=0.30, full_low=0.20, drop_low=[0.1] * 4, chance=0.25, tolerance=0.02)
  assert not r.defined and r.significant == [] and r.point_rule == [0, 1, 3]
  assert "not significantly above chance 0.25" in r.reason
  r = read_cornerstones(without, full=0.26, full_low=0.26, drop_low=[0.1] * 4, chance=0.25, tolerance=0.02)
  assert not r.defined and "not above chance 0.25 + 0.02" in r.reason
  assert read_cornerstones(without, 0.6, 0.5, [0.1] * 4, None, 0.02).reason == "the metric has no chance level"


def test_task_games_play_accuracy_or_gold_log_likelihood(tmp_path):
  # Per example: acc (0/1) and the gold continuation's log-likelihood and token count.
  scores = {frozenset({0}): ([1, 0], [-2.0, -6.0]), frozenset(): ([0, 0], [-8.0, -10.0])}
  tokens = [2, 4]

  def evaluate(coalitions):
    return [
      {"t": (float(np.mean(scores[c][0])), scores[c][0], {"ll": scores[c][1], "tokens": tokens})} for c in coalitions
    ]

  cache = CoalitionCache(str(tmp_path / "c.jsonl"), 1, fields=("tasks", "examples", "gold"))
  games = TaskGames(evaluate, ["t"], cache, {"t": "acc_norm"}, value="gold_ll")
  assert games.task("t")(frozenset({0})) == -4.0 and games.task("t", "acc")(frozenset({0})) == 0.5
  norm = TaskGames(evaluate, ["t"], cache, {"t": "acc_norm"}, value="gold_ll_norm")
  assert norm.task("t")(frozenset({0})) == pytest.approx((-1.0 - 1.5) / 2)
  num, den = games.examples("t", [frozenset(), frozenset({0})], "acc")
  assert num.tolist() == [[0, 0], [1, 0]] and den is None
  assert games.metric("t") == "gold_ll" and games.metric("t", "acc") == "acc_norm"
  # a cache written without gold log-likelihoods refuses the gold value with the fix
  bare = CoalitionCache(str(tmp_path / "bare.jsonl"), 1, fields=("tasks", "examples", "gold"))
  old = TaskGames(lambda cs: [{"t": (0.5, [1, 0])} for _ in cs], ["t"], bare, value="gold_ll")
  with pytest.raises(ValueError, match="no gold log-likelihoods for task t.*another --output"):
    old.task("t")(frozenset())


def test_examples_needed_scale_as_inverse_square():
  assert intervals.examples_for_half_width(0.10, 100, 0.05) == 400
  assert intervals.examples_for_half_width(0.02, 100, 0.05) == 16
  with pytest.raises(ValueError, match="target_ci"):
    intervals.examples_for_half_width(0.1, 100, 0.0)
