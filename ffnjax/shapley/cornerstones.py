"""Cornerstone players and value shares (method.md §6).

A cornerstone is a player whose removal alone collapses the metric to chance: v(N \\ {i}) <= chance + tolerance
(the paper's reading, on point values). Ours on top (`read_cornerstones`): only when the drop's interval excludes 0
and the full model is significantly above chance. The value must be higher-is-better (an accuracy).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np


def find_cornerstones(without: Sequence[float], chance: float, tolerance: float = 0.0) -> list[int]:
  """Indices i with v(N \\ {i}) <= chance + tolerance; `without` is Ablation.without."""
  if chance is None or not np.isfinite(chance):
    raise ValueError(f"chance={chance!r}: must be a finite number (the metric's chance level)")
  if tolerance < 0:
    raise ValueError(f"tolerance={tolerance}: must be >= 0")
  return [i for i, value in enumerate(np.asarray(without, dtype=float)) if value <= chance + tolerance]


def shares(phi: Sequence[float]) -> np.ndarray:
  """max(phi_i, 0) / sum_j max(phi_j, 0): each player's share of the positive value."""
  if np.maximum(np.asarray(phi, dtype=float), 0.0).sum() <= 0:
    raise ValueError("shares: no player has a positive value (sum of max(phi, 0) is 0)")
  return share_rows(phi)


def share_rows(phi) -> np.ndarray:
  """shares along the last axis (e.g. one row per bootstrap replicate); zeros where nothing is positive."""
  pos = np.maximum(np.asarray(phi, np.float64), 0.0)
  total = pos.sum(axis=-1, keepdims=True)
  return np.where(total > 0, pos / np.where(total > 0, total, 1.0), 0.0)


@dataclasses.dataclass(frozen=True)
class CornerstoneReading:
  defined: bool
  reason: str | None  # why cornerstones are undefined (None when defined)
  point_rule: list[int]  # the paper's reading on point values: v(N \\ {i}) <= chance + tolerance
  significant: list[int]  # those of point_rule whose drop interval excludes 0: the reported cornerstones


def read_cornerstones(
  without: Sequence[float],
  full: float,
  full_low: float,
  drop_low: Sequence[float],
  chance: float | None,
  tolerance: float,
) -> CornerstoneReading:
  """Significance-gated cornerstones: removal drops the task to chance + tolerance (point values) AND the drop's
  interval lies above 0 (drop_low > 0); none when the full model is not above chance + tolerance, or its interval
  reaches chance (full_low <= chance: not significantly above chance, so no removal can be shown to collapse it)."""
  if chance is None or not np.isfinite(chance):
    return CornerstoneReading(False, "the metric has no chance level", [], [])
  if full <= chance + tolerance:
    return CornerstoneReading(False, f"v(N) = {full:.3f} is not above chance {chance:.3g} + {tolerance:g}", [], [])
  point = find_cornerstones(without, chance, tolerance)
  if full_low <= chance:
    return CornerstoneReading(
      False,
      f"v(N) = {full:.3f} is not significantly above chance {chance:.3g} (its interval reaches {full_low:.3f})",
      point,
      [],
    )
  return CornerstoneReading(True, None, point, [i for i in point if drop_low[i] > 0])
