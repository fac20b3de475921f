"""Bootstrap intervals for Shapley values, single-ablation drops and shares (docs/method.md, "Uncertainty").

Every estimator here (single ablation, block, exact, permutation with its permutations fixed) is linear in the
coalition values: phi = A v. `linear_map` recovers A by running the estimator on one-hot value tables, so with
per-example scores [K coalitions, n examples] a bootstrap resample of the *examples* (the same resample for every
coalition) gives phi_r = A v_r for all resamples at the cost of one matrix product. Shares max(phi, 0) / sum are
not linear; they are recomputed per resample.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from ffnjax.core import bootstrap
from ffnjax.shapley.game import ValueFn
from ffnjax.shapley.players import Coalition

Estimate = Callable[[ValueFn], np.ndarray]  # value function -> [players] (e.g. lambda v: block_shapley(v, n, 3))


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


def shares(phi: np.ndarray) -> np.ndarray:
  """max(phi, 0) / sum of max(phi, 0) along the last axis (paper B's reading); zeros where nothing is positive."""
  pos = np.maximum(np.asarray(phi, np.float64), 0.0)
  total = pos.sum(axis=-1, keepdims=True)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(total > 0, pos / np.where(total > 0, total, 1.0), 0.0)


@dataclasses.dataclass(frozen=True)
class GameIntervals:
  """One task's game: point estimates and percentile intervals per player."""

  phi: list[bootstrap.Interval]
  shares: list[bootstrap.Interval]
  full: bootstrap.Interval  # v(N)
  replicates: np.ndarray  # [R, players] phi per resample (for combining tasks)
  num_examples: int

  def significant(self) -> list[bool]:
    """Players whose phi interval excludes 0."""
    return [i.excludes(0.0) for i in self.phi]


def game_intervals(a: np.ndarray, per_example: np.ndarray, full_row: int, res: bootstrap.Resamples,
                   confidence: float = bootstrap.CONFIDENCE) -> GameIntervals:
  """a [players, K] from `linear_map`; per_example [K, n] scores of each coalition on each example (the value is
  their mean); full_row = the row of the grand coalition."""
  per_example = np.asarray(per_example, np.float64)
  values = per_example.mean(axis=1)
  reps_v = bootstrap.mean_replicates(per_example, res)  # [R, K]
  phi, reps = a @ values, reps_v @ a.T
  share, reps_share = shares(phi), shares(reps)
  return GameIntervals(
      phi=[bootstrap.interval(phi[i], reps[:, i], res, confidence) for i in range(a.shape[0])],
      shares=[bootstrap.interval(share[i], reps_share[:, i], res, confidence) for i in range(a.shape[0])],
      full=bootstrap.interval(values[full_row], reps_v[:, full_row], res, confidence),
      replicates=reps, num_examples=per_example.shape[1])


def examples_for_half_width(half_width: float, num_examples: int, target: float) -> int:
  """Examples needed for an interval of half-width `target`, from a pilot's half-width on num_examples
  (half-widths shrink as 1/sqrt(n))."""
  if target <= 0:
    raise ValueError(f"target_ci={target}: must be > 0 (the wanted half-width of a 95 % interval)")
  if not np.isfinite(half_width) or half_width <= 0:
    return num_examples
  return int(np.ceil(num_examples * (half_width / target) ** 2))
