"""Layerwise FFN importance (paper App. H, method.md §5).

For each layer l (0-based here; layer l+1 of the paper), over every configuration (p, r), r < 100, in which l is
deactivated: I_(p,r)(l) = -RI(p, r) / |D_(p,r)|, with RI the configuration's average RI and D its deactivated
layers. Raw(l) = mean of those I. The score is Raw standardised over layers with the *population* std
(ddof=0): z = (Raw - mean(Raw)) / std(Raw).

Conventions (the paper does not need them, small grids do):
- A layer that no configuration deactivates has no Raw: it is NaN, left out of the standardisation's mean and
  std, and its score is NaN (figures draw no bar for it).
- If every defined Raw is equal (std 0 up to rounding, e.g. a single configuration), every defined score is 0.
- A configuration whose average RI is NaN (every task excluded) contributes nothing.
- Several seeds: importance is computed per seed from that seed's RIs, then the mean and the sample std
  (ddof=1; NaN with one seed) are taken over seeds, layer by layer.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterable, Sequence

import numpy as np

from ffnjax.analysis.results import AnalysisError
from ffnjax.analysis.ri import ModelRI
from ffnjax.core import placement


@dataclasses.dataclass(frozen=True)
class Contribution:
  """What one configuration adds to each of its deactivated layers."""

  name: str
  average_ri: float
  deactivated: tuple[int, ...]  # 0-based

  @property
  def per_layer(self) -> float:
    return -self.average_ri / len(self.deactivated)


@dataclasses.dataclass(frozen=True)
class Importance:
  num_layers: int
  raw: np.ndarray  # [L] float, NaN where never deactivated
  score: np.ndarray  # [L] standardised Raw, NaN where never deactivated
  counts: np.ndarray  # [L] int: how many configurations deactivate the layer
  contributions: tuple[Contribution, ...]


def standardize(raw: np.ndarray) -> np.ndarray:
  """(x - mean) / population std over the finite entries; NaN stays NaN; all-equal -> 0."""
  raw = np.asarray(raw, dtype=np.float64)
  finite = np.isfinite(raw)
  out = np.full_like(raw, np.nan)
  if not finite.any():
    return out
  mean, std = raw[finite].mean(), raw[finite].std(ddof=0)
  # Rounding can leave a spread of ~1e-15 among equal values; dividing by it would invent +-1 scores.
  tiny = std <= 1e-9 * max(1.0, np.abs(raw[finite]).max())
  out[finite] = 0.0 if tiny else (raw[finite] - mean) / std
  return out


def importance(configs: Iterable[tuple[str, Sequence[str], float]], num_layers: int) -> Importance:
  """Importance from (name, layer_types, average RI %) triples of one family and seed."""
  sums = np.zeros(num_layers)
  counts = np.zeros(num_layers, dtype=np.int64)
  contributions = []
  for name, layer_types, average in configs:
    if len(layer_types) != num_layers:
      raise AnalysisError(
        f"importance: configuration {name!r} has {len(layer_types)} layer_types, expected num_layers={num_layers}"
      )
    deactivated = tuple(i for i, t in enumerate(layer_types) if t == placement.DEACTIVATED)
    if not deactivated or math.isnan(average):
      continue  # a baseline or a configuration with no comparable task
    c = Contribution(name, float(average), deactivated)
    contributions.append(c)
    for i in deactivated:
      sums[i] += c.per_layer
      counts[i] += 1
  if not contributions:
    raise AnalysisError("importance: no configuration with deactivated layers and a defined average RI")
  with np.errstate(invalid="ignore", divide="ignore"):
    raw = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
  return Importance(num_layers, raw, standardize(raw), counts, tuple(contributions))


@dataclasses.dataclass(frozen=True)
class ImportanceSummary:
  """One family's importance over seeds."""

  family: str
  num_layers: int
  seeds: tuple[int, ...]
  per_seed: dict[int, Importance]
  score_mean: np.ndarray
  score_std: np.ndarray  # sample std over seeds (ddof=1), NaN with one seed
  raw_mean: np.ndarray
  raw_std: np.ndarray


def _nan_mean_std(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  with warnings.catch_warnings():  # all-NaN columns (never-deactivated layers) stay NaN, silently
    warnings.simplefilter("ignore", RuntimeWarning)
    mean = np.nanmean(stack, axis=0)
    std = np.nanstd(stack, axis=0, ddof=1) if stack.shape[0] > 1 else np.full(stack.shape[1], np.nan)
  return mean, std


def importance_by_family(ris: Sequence[ModelRI]) -> dict[str, ImportanceSummary]:
  """Per family: importance per seed from the seed's average RIs, then mean/std over seeds."""
  by_family: dict[str, dict[int, list[ModelRI]]] = {}
  for r in ris:
    by_family.setdefault(r.model.family, {}).setdefault(r.model.seed, []).append(r)
  out = {}
  for family, seeds in sorted(by_family.items()):
    sizes = {r.model.num_layers for rs in seeds.values() for r in rs}
    if len(sizes) != 1 or None in sizes:
      raise AnalysisError(f"importance: family {family!r} needs one known num_layers, got {sorted(map(str, sizes))}")
    num_layers = sizes.pop()
    per_seed = {}
    for seed, rs in sorted(seeds.items()):
      missing = [r.model.name for r in rs if r.model.layer_types is None]
      if missing:
        raise AnalysisError(f"importance: models {missing} have no layer_types (give num_layers or plan.json)")
      try:
        per_seed[seed] = importance(((r.model.name, r.model.layer_types, r.average) for r in rs), num_layers)
      except AnalysisError as e:
        raise AnalysisError(f"{e} (family {family!r}, seed {seed})") from None
    scores = np.stack([imp.score for imp in per_seed.values()])
    raws = np.stack([imp.raw for imp in per_seed.values()])
    score_mean, score_std = _nan_mean_std(scores)
    raw_mean, raw_std = _nan_mean_std(raws)
    out[family] = ImportanceSummary(
      family, num_layers, tuple(per_seed), per_seed, score_mean, score_std, raw_mean, raw_std
    )
  return out
