"""Value functions: `v(coalition: frozenset[int]) -> float` with an optional batch form.

Estimators first collect every coalition they need, deduplicate, and evaluate them in one call of
`v_batch(list_of_coalitions) -> list[float]` (or `v.batch(...)`, as `cached()` provides), so the caller can score
many keep masks with one compiled program. Without a batch form, `v` is called once per coalition.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

from ffnjax.shapley.players import Coalition, check_coalition

ValueFn = Callable[[Coalition], float]
BatchValueFn = Callable[[list], Sequence[float]]


def evaluate(
  v: ValueFn, coalitions: Iterable[Iterable[int]], num_players: int, v_batch: BatchValueFn | None = None
) -> dict[Coalition, float]:
  """{coalition: value} for the distinct coalitions, through v_batch / v.batch when available."""
  unique = list(dict.fromkeys(check_coalition(c, num_players) for c in coalitions))
  if not unique:
    return {}
  batch = v_batch or getattr(v, "batch", None)
  if batch is not None:
    values = list(batch(unique))
    if len(values) != len(unique):
      raise ValueError(f"v_batch returned {len(values)} values for {len(unique)} coalitions")
  else:
    values = [v(c) for c in unique]
  out = {}
  for c, value in zip(unique, values):
    value = float(value)
    if math.isnan(value):
      raise ValueError(f"value function returned NaN for coalition {sorted(c)}")
    out[c] = value
  return out
