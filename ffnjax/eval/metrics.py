"""Metric aggregations and standard errors as lm-evaluation-harness 0.4.x defines them (lm_eval/api/metrics.py).

- mean, with stderr = sample standard deviation / sqrt(n);
- perplexity = exp(-mean LL) (LAMBADA), stderr by bootstrap: lm-eval's sample standard deviation of the
  statistic over resamples (lm-eval draws 100,000 with Python's `random`; we draw `BOOTSTRAP_ITERS` seeded ones,
  so the value agrees to sampling noise, not digit for digit);
- weighted perplexity = exp(-sum LL / sum weight) (WikiText words and bytes) and bits_per_byte =
  -sum LL / sum bytes / ln 2: lm-eval gives these no stderr, and neither do we (null).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

BOOTSTRAP_ITERS = 1000
BOOTSTRAP_SEED = 1234


def mean(values: Sequence[float]) -> float:
  return float(np.mean(values)) if len(values) else math.nan


def sample_stddev(values: Sequence[float]) -> float:
  return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def mean_stderr(values: Sequence[float]) -> float:
  return sample_stddev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan


def perplexity(lls: Sequence[float]) -> float:
  return _safe_exp(-mean(lls))


def weighted_perplexity(lls: Sequence[float], weights: Sequence[float]) -> float:
  return _safe_exp(-float(np.sum(lls)) / float(np.sum(weights)))


def bits_per_byte(lls: Sequence[float], num_bytes: Sequence[float]) -> float:
  return -float(np.sum(lls)) / float(np.sum(num_bytes)) / math.log(2)


def perplexity_stderr(lls: Sequence[float], iters: int = BOOTSTRAP_ITERS, seed: int = BOOTSTRAP_SEED) -> float:
  """Bootstrap standard error of exp(-mean LL); resamples in chunks to bound memory."""
  x = np.asarray(lls, np.float64)
  if x.size < 2:
    return math.nan
  rng = np.random.default_rng(seed)
  stats = []
  chunk = max(1, 2_000_000 // x.size)
  for start in range(0, iters, chunk):
    idx = rng.integers(0, x.size, size=(min(chunk, iters - start), x.size))
    with np.errstate(over="ignore"):
      stats.append(np.exp(-x[idx].mean(axis=1)))
  return sample_stddev(np.concatenate(stats))


def _safe_exp(x: float) -> float:
  try:
    return math.exp(x)
  except OverflowError:
    return math.inf
