"""Bootstrap intervals for Shapley values, single-ablation drops and shares (docs/method.md, "Uncertainty").

Every estimator here (single ablation, block, exact, permutation with its permutations fixed) is linear in the
coalition values: phi = A v. `linear_map` recovers A by running the estimator on one-hot value tables, so with
per-example scores [K coalitions, n examples] a bootstrap resample of the *examples* (the same resample for every
coalition) gives phi_r = A v_r for all resamples at the cost of one matrix product. Shares max(phi, 0) / sum are
not linear; they are recomputed per resample. Permutation sampling adds Monte Carlo noise on top: each replicate
also redraws the sampled permutations with replacement (a two-level bootstrap, `permutation_phi`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from ffnjax.core import bootstrap
from ffnjax.shapley.cornerstones import share_rows
from ffnjax.shapley.game import ValueFn
from ffnjax.shapley.players import Coalition, grand_coalition

Estimate = Callable[[ValueFn], np.ndarray]  # value function -> [players] (e.g. lambda v: block_shapley(v, n, 3))
# (values [K], value replicates [R, K]) -> (phi [players], phi replicates [R, players])
PhiReplicates = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def coalitions_of(estimate: Estimate) -> list[Coalition]:
  """The distinct coalitions an estimator asks for, in first-asked order."""
  asked: dict[Coalition, None] = {}

  def record(c):
    asked[frozenset(c)] = None
    return 0.0

  estimate(record)
  return list(asked)


def linear_map(estimate: Estimate, coalitions: Sequence[Coalition]) -> np.ndarray:
  """A [players, K] with estimate(v) == A @ [v(c) for c in coalitions] for every value table v."""
  index = {frozenset(c): k for k, c in enumerate(coalitions)}
  columns = []
  for k in range(len(coalitions)):
    columns.append(np.asarray(estimate(lambda c, k=k: 1.0 if index[frozenset(c)] == k else 0.0), np.float64))
  return np.stack(columns, axis=1)


def exact_map(num_players: int, coalitions: Sequence[Coalition]) -> np.ndarray:
  """The exact Shapley value's A [players, K] written out (linear_map would run the estimator 2^n times):
  A[i, S u {i}] += w(|S|), A[i, S] -= w(|S|) with w(s) = s! (n - s - 1)! / n!, for every S not containing i."""
  n = num_players
  index = {frozenset(c): k for k, c in enumerate(coalitions)}
  w = [math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)]
  a = np.zeros((n, len(coalitions)))
  for c, k in index.items():
    for i in range(n):
      if i not in c:
        a[i, index[c | {i}]] += w[len(c)]
        a[i, k] -= w[len(c)]
  return a


def linear_phi(a: np.ndarray) -> PhiReplicates:
  return lambda values, reps: (a @ values, reps @ a.T)


def permutation_phi(perms: np.ndarray, coalitions: Sequence[Coalition], seed: int) -> PhiReplicates:
  """Permutation sampling's phi with its Monte Carlo noise: replicate r averages the marginals of a resample (with
  replacement) of the P sampled permutations, computed on the example resample r."""
  perms = np.asarray(perms)
  index = {frozenset(c): k for k, c in enumerate(coalitions)}
  num_perms, n = perms.shape
  before, after = np.zeros((num_perms, n), int), np.zeros((num_perms, n), int)
  for p, order in enumerate(perms):
    for k, i in enumerate(order):
      before[p, i] = index[frozenset(order[:k].tolist())]
      after[p, i] = index[frozenset(order[: k + 1].tolist())]

  def phi(values, reps):
    point = (values[after] - values[before]).mean(axis=0)
    counts = np.random.default_rng(seed + 11).multinomial(
      num_perms, np.full(num_perms, 1.0 / num_perms), size=reps.shape[0]
    )  # [R, P]
    marginals = reps[:, after] - reps[:, before]  # [R, P, n]
    return point, np.einsum("rp,rpn->rn", counts, marginals) / num_perms

  return phi


def value_replicates(
  num: np.ndarray, den: np.ndarray | None, res: bootstrap.Resamples
) -> tuple[np.ndarray, np.ndarray]:
  """Coalition values and their replicates from per-example scores num [K, n]: the mean per example (den None),
  or the ratio of sums sum(num) / sum(den) (a perplexity value: log-likelihood per word). -> ([K], [R, K])."""
  num = np.asarray(num, np.float64)
  if den is None:
    return num.mean(axis=1), bootstrap.mean_replicates(num, res)
  den = np.asarray(den, np.float64)
  with np.errstate(divide="ignore", invalid="ignore"):
    return num.sum(axis=1) / den.sum(axis=1), (res.counts @ num.T) / (res.counts @ den.T)


@dataclasses.dataclass(frozen=True)
class TaskIntervals:
  """One task's game: point estimates with percentile intervals; `replicates[name]` [R, ...] with `weights` [R]."""

  full: bootstrap.Interval  # v(N)
  without: list[bootstrap.Interval]  # v(N \ {i})
  drop: list[bootstrap.Interval]  # v(N) - v(N \ {i})
  phi: list[bootstrap.Interval]
  shares: list[bootstrap.Interval] | None  # None when no player has a positive value
  replicates: dict[str, np.ndarray]
  weights: np.ndarray
  num_examples: int

  def significant(self, what: str = "phi") -> list[bool]:
    """Players whose interval of `what` (phi | drop) excludes 0."""
    return [i.excludes(0.0) for i in getattr(self, what)]


def task_intervals(
  coalitions: Sequence[Coalition],
  num: np.ndarray,
  den: np.ndarray | None,
  num_players: int,
  phi: PhiReplicates,
  res: bootstrap.Resamples,
  confidence: float = bootstrap.CONFIDENCE,
) -> TaskIntervals:
  """Intervals of one task's game from per-example scores num (and den) [K, n] of `coalitions`, which hold the
  grand coalition, every N \\ {i} and whatever the estimator `phi` reads."""
  values, reps = value_replicates(num, den, res)
  index = {frozenset(c): k for k, c in enumerate(coalitions)}
  full = grand_coalition(num_players)
  f, wo = index[full], [index[full - {i}] for i in range(num_players)]
  point_phi, reps_phi = phi(values, reps)
  drop, reps_drop = values[f] - values[wo], reps[:, [f]] - reps[:, wo]
  point_share, reps_share = share_rows(point_phi), share_rows(reps_phi)

  def each(point, r):
    return [bootstrap.interval(point[i], r[:, i], res, confidence) for i in range(len(point))]

  return TaskIntervals(
    full=bootstrap.interval(values[f], reps[:, f], res, confidence),
    without=each(values[wo], reps[:, wo]),
    drop=each(drop, reps_drop),
    phi=each(point_phi, reps_phi),
    shares=each(point_share, reps_share) if np.maximum(point_phi, 0).sum() > 0 else None,
    replicates={"full": reps[:, f], "without": reps[:, wo], "drop": reps_drop, "phi": reps_phi, "shares": reps_share},
    weights=res.weights,
    num_examples=np.asarray(num).shape[1],
  )


def game_intervals(
  a: np.ndarray,
  per_example: np.ndarray,
  coalitions: Sequence[Coalition],
  res: bootstrap.Resamples,
  confidence: float = bootstrap.CONFIDENCE,
) -> TaskIntervals:
  """task_intervals for a linear estimator A [players, K] over `coalitions` and per-example means [K, n]."""
  return task_intervals(coalitions, per_example, None, a.shape[0], linear_phi(a), res, confidence)


def examples_for_half_width(half_width: float, num_examples: int, target: float) -> int:
  """Examples needed for an interval of half-width `target`, from a pilot's half-width on num_examples
  (half-widths shrink as 1/sqrt(n))."""
  if target <= 0:
    raise ValueError(f"target_ci={target}: must be > 0 (the wanted half-width of a 95 % interval)")
  if not np.isfinite(half_width) or half_width <= 0:
    return num_examples
  return int(np.ceil(num_examples * (half_width / target) ** 2))


def half_width(i: bootstrap.Interval) -> float:
  return (i.high - i.low) / 2
