import itertools

import numpy as np
import pytest

from ffnjax.shapley import (
  block_sets,
  block_shapley,
  check_efficiency,
  exact_shapley,
  find_cornerstones,
  permutation_shapley,
  shares,
  single_ablation,
)


class Counting:
  """A value function that counts how often, and with what, it is called."""

  def __init__(self, fn):
    self.fn, self.calls, self.batches = fn, 0, []

  def __call__(self, coalition):
    self.calls += 1
    return self.fn(coalition)

  def batch(self, coalitions):
    self.batches.append(list(coalitions))
    return [self.fn(c) for c in coalitions]


# Players 1 and 2 are symmetric, player 4 is a dummy, and 0 and 3 interact: not additive, so the axioms bite.
W = {0: 3.0, 1: 1.0, 2: 1.0, 3: 2.0}


def interacting(c):
  return sum(W.get(i, 0.0) for i in c) ** 2 + 2.0 * (0 in c and 3 in c)


def test_exact_axioms_on_a_constructed_game():
  phi = exact_shapley(interacting, 5)
  assert check_efficiency(phi, interacting(range(5)), interacting(())) == pytest.approx(0.0, abs=1e-12)
  assert phi[1] == pytest.approx(phi[2])
  assert phi[4] == pytest.approx(0.0, abs=1e-12)
  assert phi[0] > phi[3] > phi[1] > 0


def test_exact_matches_hand_values():
  # Unanimity game on T = {0, 2}: each member gets 1/|T|, the others 0.
  np.testing.assert_allclose(exact_shapley(lambda c: float({0, 2} <= c), 4), [0.5, 0, 0.5, 0], atol=1e-12)
  # Three-player majority: symmetric, 1/3 each.
  np.testing.assert_allclose(exact_shapley(lambda c: float(len(c) >= 2), 3), [1 / 3] * 3)
  # Direct definition by enumeration of orders for the interacting game.
  n, marg = 5, np.zeros(5)
  orders = list(itertools.permutations(range(n)))
  for order in orders:
    s = set()
    for p in order:
      marg[p] += interacting(s | {p}) - interacting(s)
      s.add(p)
  np.testing.assert_allclose(exact_shapley(interacting, n), marg / len(orders), atol=1e-10)


def test_exact_uses_one_batch_and_refuses_large_games():
  v = Counting(interacting)
  exact_shapley(v, 5)
  assert v.calls == 0 and len(v.batches) == 1 and len(set(v.batches[0])) == 32
  big = Counting(lambda c: 0.0)
  with pytest.raises(ValueError, match="num_players=17.*max_players=16"):
    exact_shapley(big, 17)
  assert big.calls == 0 and not big.batches


def test_permutation_converges_to_exact_on_8_players():
  w = np.array([3.0, 1.0, 0.5, 2.0, 0.0, 1.5, 1.0, 0.25])

  def v(c):  # quadratic in the total weight + a pairwise synergy + a 3-way unanimity bonus
    s = w[list(c)].sum()
    return 0.1 * s**2 + 1.0 * (1 in c and 6 in c) + 2.0 * ({0, 3, 5} <= c)

  exact = exact_shapley(v, 8)
  est = permutation_shapley(v, 8, 4000, seed=0)
  # Tolerance: every player within 4 standard errors and within 0.05 absolute (values range 0..~3.5).
  err = np.abs(est.values - exact)
  assert np.all(err <= 4 * est.stderr + 1e-12), (err, est.stderr)
  assert err.max() < 0.05
  # Each permutation's marginals are efficient, so every running estimate is too.
  total = v(frozenset(range(8))) - v(frozenset())
  np.testing.assert_allclose(est.running_mean.sum(axis=1), total, rtol=1e-10)
  # The readout: standard error shrinks like 1/sqrt(P): 16x the permutations, about 1/4 the error.
  readout = est.convergence(every=250)
  assert readout[-1]["num_permutations"] == 4000
  assert readout[-1]["max_stderr"] < 0.4 * est.running_stderr[249].max()
  # Seeded: the same seed reproduces, another does not.
  np.testing.assert_array_equal(
    permutation_shapley(v, 8, 50, seed=3).values, permutation_shapley(v, 8, 50, seed=3).values
  )
  assert not np.array_equal(permutation_shapley(v, 8, 50, seed=3).values, permutation_shapley(v, 8, 50, seed=4).values)


def test_permutation_chunks_give_the_same_estimate():
  a = permutation_shapley(interacting, 5, 40, seed=1)
  v = Counting(interacting)
  b = permutation_shapley(v, 5, 40, seed=1, batch_permutations=16)
  assert len(v.batches) == 3
  np.testing.assert_allclose(a.values, b.values)


def test_block_estimator_equals_exact_on_additive_games():
  w = np.array([0.3, -1.0, 2.0, 0.0, 5.0, 1.5, -0.2])
  v = lambda c: 0.7 + float(w[list(c)].sum())  # additive + a constant
  exact = exact_shapley(v, 7)
  np.testing.assert_allclose(exact, w, atol=1e-12)
  for level in range(1, 8):
    np.testing.assert_allclose(block_shapley(v, 7, level=level), exact, atol=1e-12)


def test_block_sets_follow_the_definition():
  sets = block_sets(5, level=3)
  as_lists = [sorted(map(sorted, c)) for c in sets]
  assert as_lists[0] == [[], [1], [1, 2]]
  assert as_lists[2] == [[], [0, 1], [1], [3], [3, 4]]
  assert as_lists[4] == [[], [2, 3], [3]]
  assert all(len(c) == 1 for c in block_sets(5, level=1))


def test_block_level_1_is_single_ablation_and_block_differs_from_it_on_interactions():
  abl = single_ablation(interacting, 5)
  np.testing.assert_allclose(block_shapley(interacting, 5, level=1), abl.drop)
  assert abl.full == interacting(range(5))
  np.testing.assert_allclose(abl.without, [interacting(set(range(5)) - {i}) for i in range(5)])
  assert not np.allclose(block_shapley(interacting, 5, level=3), abl.drop)


@pytest.mark.parametrize("level", [0, 6, 2.5, "3"])
def test_block_level_out_of_range(level):
  with pytest.raises(ValueError, match=r"level=.*must be an integer in 1..num_players=5"):
    block_shapley(interacting, 5, level=level)


def test_bad_value_functions_and_counts():
  with pytest.raises(ValueError, match="num_permutations=0"):
    permutation_shapley(interacting, 5, 0)
  with pytest.raises(ValueError, match="num_players=0"):
    single_ablation(interacting, 0)
  with pytest.raises(ValueError, match="v_batch returned 1 values for 6 coalitions"):
    single_ablation(interacting, 5, v_batch=lambda cs: [0.0])
  with pytest.raises(ValueError, match="NaN"):
    single_ablation(lambda c: float("nan"), 2)


def test_cornerstones_and_shares():
  without = [0.25, 0.26, 0.60, 0.70]
  assert find_cornerstones(without, chance=0.25) == [0]
  assert find_cornerstones(without, chance=0.25, tolerance=0.02) == [0, 1]
  np.testing.assert_allclose(shares([3.0, -1.0, 1.0, 0.0]), [0.75, 0.0, 0.25, 0.0])
  with pytest.raises(ValueError, match="no player has a positive value"):
    shares([-1.0, 0.0])
  with pytest.raises(ValueError, match="chance=None"):
    find_cornerstones(without, chance=None)
