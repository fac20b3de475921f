"""Player-importance estimators over a value function (method.md §6): single ablation, contiguous-block
(paper's efficient estimator), exact Shapley, permutation-sampling Monte Carlo.

Every estimator collects the coalitions it needs first and evaluates them in one batch (see game.py).
Players are 0..num_players-1 in forward order; a coalition is the set of players kept.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from ffnjax.shapley.game import BatchValueFn, ValueFn, evaluate
from ffnjax.shapley.players import Coalition, grand_coalition

MAX_EXACT_PLAYERS = 16  # 2^16 = 65,536 coalitions; beyond that use permutation_shapley or block_shapley


def _check_num_players(num_players) -> None:
  if not isinstance(num_players, (int, np.integer)) or num_players < 1:
    raise ValueError(f"num_players={num_players!r}: must be an integer >= 1")


# --- single-sub-layer ablation --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Ablation:
  full: float  # v(N)
  without: np.ndarray  # [n] v(N \ {i})
  drop: np.ndarray  # [n] v(N) - v(N \ {i})


def single_ablation(v: ValueFn, num_players: int, *, v_batch: BatchValueFn | None = None) -> Ablation:
  _check_num_players(num_players)
  full = grand_coalition(num_players)
  coalitions = [full] + [full - {i} for i in range(num_players)]
  values = evaluate(v, coalitions, num_players, v_batch)
  without = np.array([values[full - {i}] for i in range(num_players)])
  return Ablation(values[full], without, values[full] - without)


# --- contiguous-block estimator --------------------------------------------------------------------------------
def block_sets(num_players: int, level: int) -> list[list[Coalition]]:
  """C_i for each player i: the empty set and every block of m = 1..level-1 players directly adjacent to i on
  one side (i+1..i+m or i-m..i-1), kept only when the whole block lies within 0..num_players-1."""
  _check_num_players(num_players)
  if not isinstance(level, (int, np.integer)) or not 1 <= level <= num_players:
    raise ValueError(f"level={level!r}: must be an integer in 1..num_players={num_players}")
  sets = []
  for i in range(num_players):
    c = [frozenset()]
    for m in range(1, level):
      if i + m < num_players:
        c.append(frozenset(range(i + 1, i + m + 1)))
      if i - m >= 0:
        c.append(frozenset(range(i - m, i)))
    sets.append(c)
  return sets


def block_shapley(v: ValueFn, num_players: int, level: int = 3, *, v_batch: BatchValueFn | None = None) -> np.ndarray:
  """phi_i = mean over W in C_i of [v(N \\ W) - v(N \\ (W u {i}))]. level=1 is the single ablation."""
  sets = block_sets(num_players, level)
  full = grand_coalition(num_players)
  needed = [full - w for c in sets for w in c] + [full - w - {i} for i, c in enumerate(sets) for w in c]
  values = evaluate(v, needed, num_players, v_batch)
  return np.array([np.mean([values[full - w] - values[full - w - {i}] for w in c]) for i, c in enumerate(sets)])


def block_coalitions(num_players: int, level: int) -> list[Coalition]:
  """The distinct coalitions block_shapley evaluates (for budgeting: it grows as about 2 * level * n)."""
  sets = block_sets(num_players, level)
  full = grand_coalition(num_players)
  return list(
    dict.fromkeys([full - w for c in sets for w in c] + [full - w - {i} for i, c in enumerate(sets) for w in c])
  )


# --- exact Shapley ---------------------------------------------------------------------------------------------
def _coalition_of(mask: int, num_players: int) -> Coalition:
  return frozenset(j for j in range(num_players) if mask >> j & 1)


def exact_shapley(
  v: ValueFn, num_players: int, *, v_batch: BatchValueFn | None = None, max_players: int = MAX_EXACT_PLAYERS
) -> np.ndarray:
  """phi_i = sum over S not containing i of |S|! (n-|S|-1)! / n! * [v(S u {i}) - v(S)], from all 2^n values."""
  _check_num_players(num_players)
  n = int(num_players)
  if n > max_players:
    raise ValueError(
      f"num_players={n}: exact Shapley needs 2^{n} coalitions; at most max_players={max_players} "
      f"players (use permutation_shapley or block_shapley)"
    )
  masks = np.arange(2**n)
  values = evaluate(v, (_coalition_of(int(m), n) for m in masks), n, v_batch)
  table = np.array([values[_coalition_of(int(m), n)] for m in masks])
  sizes = np.array([bin(int(m)).count("1") for m in masks])
  weights = np.array([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)])
  phi = np.zeros(n)
  for i in range(n):
    without = masks[(masks >> i) & 1 == 0]
    phi[i] = np.sum(weights[sizes[without]] * (table[without | (1 << i)] - table[without]))
  return phi


# --- permutation sampling --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PermutationEstimate:
  """Running estimates: row k of `running_*` uses the first k+1 permutations. stderr = sample std / sqrt(k)."""

  values: np.ndarray  # [n] final estimate
  stderr: np.ndarray  # [n] its standard error (NaN with one permutation)
  running_mean: np.ndarray  # [P, n]
  running_stderr: np.ndarray  # [P, n]
  permutations: np.ndarray  # [P, n] int, the sampled orders
  num_evaluations: int  # distinct coalitions evaluated

  def convergence(self, every: int = 1) -> list[dict]:
    """Readout rows {num_permutations, max_stderr, mean_stderr, values} every `every` permutations (and the last)."""
    P = self.running_mean.shape[0]
    ks = sorted(set(range(every, P + 1, every)) | {P})
    return [
      dict(
        num_permutations=k,
        max_stderr=float(np.nanmax(self.running_stderr[k - 1])) if k > 1 else math.nan,
        mean_stderr=float(np.nanmean(self.running_stderr[k - 1])) if k > 1 else math.nan,
        values=self.running_mean[k - 1].copy(),
      )
      for k in ks
    ]


def permutation_shapley(
  v: ValueFn,
  num_players: int,
  num_permutations: int,
  *,
  seed: int = 0,
  v_batch: BatchValueFn | None = None,
  batch_permutations: int = 0,
) -> PermutationEstimate:
  """Monte Carlo Shapley: the mean marginal contribution of each player over random orders.

  Each permutation's marginals sum to v(N) - v(empty), so every running estimate is efficient. Coalitions are
  evaluated in batches of `batch_permutations` permutations (0 = all at once).
  """
  _check_num_players(num_players)
  if not isinstance(num_permutations, (int, np.integer)) or num_permutations < 1:
    raise ValueError(f"num_permutations={num_permutations!r}: must be an integer >= 1")
  if batch_permutations < 0:
    raise ValueError(f"batch_permutations={batch_permutations}: must be >= 0 (0 = all at once)")
  n = int(num_players)
  rng = np.random.default_rng(seed)
  perms = np.stack([rng.permutation(n) for _ in range(num_permutations)])
  step = batch_permutations or num_permutations
  marginals = np.zeros((num_permutations, n))
  evaluated = set()
  for start in range(0, num_permutations, step):
    chunk = perms[start : start + step]
    prefixes = [[frozenset(p[:k].tolist()) for k in range(n + 1)] for p in chunk]
    values = evaluate(v, (c for pre in prefixes for c in pre), n, v_batch)
    evaluated.update(values)
    for row, (p, pre) in enumerate(zip(chunk, prefixes)):
      vals = np.array([values[c] for c in pre])
      marginals[start + row, p] = np.diff(vals)
  counts = np.arange(1, num_permutations + 1)[:, None]
  running_mean = np.cumsum(marginals, axis=0) / counts
  # Variance is shift-invariant: centring on the overall mean first avoids cancellation in sum(x^2) - k mean^2.
  centred = marginals - marginals.mean(axis=0)
  c_mean = np.cumsum(centred, axis=0) / counts
  with np.errstate(invalid="ignore", divide="ignore"):
    var = (np.cumsum(centred**2, axis=0) - counts * c_mean**2) / (counts - 1)  # sample variance (ddof=1)
    running_stderr = np.sqrt(np.maximum(var, 0.0) / counts)
  running_stderr[0] = np.nan
  return PermutationEstimate(running_mean[-1], running_stderr[-1], running_mean, running_stderr, perms, len(evaluated))


def check_efficiency(phi: Sequence[float], v_full: float, v_empty: float) -> float:
  """sum(phi) - (v(N) - v(empty)): 0 for exact and permutation estimates, not for block/ablation ones."""
  return float(np.sum(phi) - (v_full - v_empty))
