"""Bootstrap confidence intervals over evaluation examples; numpy only (docs/method.md, "Uncertainty").

Every metric the analyses use is a ratio of sums over documents passed through a fixed map:

  acc, acc_norm, zsRE token acc   mean(x)             = sum(x) / n
  LAMBADA perplexity              exp(-mean(ll))      = exp(-sum(ll) / n)
  WikiText word/byte perplexity   exp(-sum(ll) / sum(words | bytes))
  bits_per_byte                   -sum(ll) / sum(bytes) / ln 2

so one bootstrap resample is a vector of counts w (how often each document was drawn) and the statistic is
g(w.a / w.b). Drawing the count matrix once per task and applying it to every model makes the bootstrap
*paired*: a model and its baseline are compared on the same resampled documents, which cancels the
document-difficulty noise both share. Shapley values are linear in the coalition values, so the same counts applied
to per-example coalition scores give their intervals too (`mean_replicates`).

Intervals are percentile intervals with the inverted-CDF rule (the smallest replicate whose cumulative weight
reaches the quantile), which is what a hand computation over an enumerated resample table gives.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import zlib
from collections.abc import Mapping, Sequence

import numpy as np

from ffnjax.core.errors import DataError

RESAMPLES = 1000
SEED = 0
CONFIDENCE = 0.95
# Exact enumeration of every resample (n^n ordered draws, grouped into count vectors) when it is this small.
EXACT_MAX_ORDERED_DRAWS = 10_000


class BootstrapError(DataError):
  """Records that cannot be resampled together; the message names the task and what differs."""


@dataclasses.dataclass(frozen=True)
class Statistic:
  """g(sum(w * numerator) / sum(w * denominator)); denominator None = the number of documents drawn."""

  numerator: str
  denominator: str | None
  transform: str  # "identity" | "exp_neg" | "bits"

  def apply(self, ratio: np.ndarray) -> np.ndarray:
    if self.transform == "identity":
      return ratio
    with np.errstate(over="ignore"):
      if self.transform == "exp_neg":
        return np.exp(-ratio)
    return -ratio / math.log(2)


# Metric name -> statistic over the per-document fields the evaluator writes into RUN/eval/records.jsonl.
STATISTICS: dict[str, Statistic] = {
  "acc": Statistic("acc", None, "identity"),
  "acc_norm": Statistic("acc_norm", None, "identity"),
  "perplexity": Statistic("ll", None, "exp_neg"),
  "word_perplexity": Statistic("ll", "words", "exp_neg"),
  "byte_perplexity": Statistic("ll", "bytes", "exp_neg"),
  "bits_per_byte": Statistic("ll", "bytes", "bits"),
}


def statistic_for(metric: str) -> Statistic:
  if metric not in STATISTICS:
    raise BootstrapError(f"no bootstrap statistic for metric {metric!r}; known: {sorted(STATISTICS)}")
  return STATISTICS[metric]


@dataclasses.dataclass(frozen=True)
class Resamples:
  """counts [R, n]: how often each of n documents is drawn in resample r; weights [R]: each row's probability."""

  counts: np.ndarray
  weights: np.ndarray

  @property
  def num_documents(self) -> int:
    return self.counts.shape[1]


def draw(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> Resamples:
  """`resamples` random resamples of n documents (equal weights); stable for a fixed seed."""
  if n < 1:
    raise BootstrapError("cannot resample zero documents")
  rng = np.random.default_rng(seed)
  counts = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
  return Resamples(counts, np.full(resamples, 1.0 / resamples))


def task_seed(seed: int, task: str) -> int:
  """A stable per-task seed: the same task gets the same resamples in every analysis that uses `seed`."""
  return seed + zlib.crc32(task.encode()) % 100_000


def as_random_draws(x: np.ndarray, weights: np.ndarray, resamples: int, seed: int) -> np.ndarray:
  """Replicates with unequal weights (an exact enumeration) redrawn as `resamples` equally weighted ones (along
  axis 0), so that tasks can be averaged replicate by replicate."""
  x, weights = np.asarray(x), np.asarray(weights, np.float64)
  if len(x) == resamples and np.allclose(weights, weights[0]):
    return x
  return x[np.random.default_rng(seed + 7).choice(len(x), size=resamples, p=weights / weights.sum())]


def enumerate_all(n: int) -> Resamples:
  """Every distinct resample of n documents with its exact probability (multinomial(n; 1/n,...)); small n only."""
  if n < 1 or n**n > EXACT_MAX_ORDERED_DRAWS:
    raise BootstrapError(f"exact bootstrap of {n} documents needs {n}^{n} draws; use draw()")
  rows, probs = [], []
  for combo in itertools.combinations_with_replacement(range(n), n):
    c = np.bincount(combo, minlength=n)
    rows.append(c)
    probs.append(math.factorial(n) / math.prod(math.factorial(int(k)) for k in c) / n**n)
  return Resamples(np.asarray(rows, np.float64), np.asarray(probs))


def for_documents(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> Resamples:
  """Exact enumeration when it is small, else `resamples` random draws."""
  return enumerate_all(n) if n**n <= EXACT_MAX_ORDERED_DRAWS else draw(n, resamples, seed)


def fields(records: Sequence[Mapping], stat: Statistic) -> tuple[np.ndarray, np.ndarray]:
  """(numerator, denominator) per document, in record order."""
  try:
    num = np.asarray([float(r[stat.numerator]) for r in records], np.float64)
    den = (
      np.ones(len(records))
      if stat.denominator is None
      else np.asarray([float(r[stat.denominator]) for r in records], np.float64)
    )
  except (KeyError, TypeError) as e:
    raise BootstrapError(f"records lack the field {e} needed for {stat}") from None
  return num, den


def replicates(records: Sequence[Mapping], metric: str, res: Resamples) -> np.ndarray:
  """The metric on each resample [R]."""
  stat = statistic_for(metric)
  if len(records) != res.num_documents:
    raise BootstrapError(f"{len(records)} records but the resamples draw from {res.num_documents} documents")
  num, den = fields(records, stat)
  with np.errstate(divide="ignore", invalid="ignore"):
    return stat.apply((res.counts @ num) / (res.counts @ den))


def point(records: Sequence[Mapping], metric: str) -> float:
  stat = statistic_for(metric)
  num, den = fields(records, stat)
  return float(stat.apply(np.asarray(num.sum() / den.sum())))


def mean_replicates(values: np.ndarray, res: Resamples) -> np.ndarray:
  """values [..., n] per-example scores (e.g. one row per coalition) -> their resampled means [R, ...]."""
  values = np.asarray(values, np.float64)
  sums = np.tensordot(res.counts, values, axes=([1], [-1]))
  return sums / res.counts.sum(axis=1).reshape((-1,) + (1,) * (values.ndim - 1))


def align(model: Sequence[Mapping], baseline: Sequence[Mapping], task: str) -> tuple[list, list]:
  """Both runs' records of one task in doc_id order; they must cover the same documents to be paired."""
  m = {int(r["doc_id"]): r for r in model}
  b = {int(r["doc_id"]): r for r in baseline}
  if m.keys() != b.keys():
    only_m, only_b = sorted(m.keys() - b.keys())[:3], sorted(b.keys() - m.keys())[:3]
    raise BootstrapError(
      f"task {task}: model and baseline records cover different documents (only the model: "
      f"{only_m}..., only the baseline: {only_b}...); evaluate both with the same data and limit"
    )
  ids = sorted(m)
  return [m[i] for i in ids], [b[i] for i in ids]


@dataclasses.dataclass(frozen=True)
class Interval:
  """A point estimate with its percentile interval."""

  value: float
  low: float
  high: float
  confidence: float = CONFIDENCE

  def excludes(self, x: float = 0.0) -> bool:
    return not (self.low <= x <= self.high)

  def format(self, digits: int = 2, signed: bool = True) -> str:
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    if math.isnan(self.value):
      return "n/a"
    return f"{f.format(self.value)} [{f.format(self.low)}, {f.format(self.high)}]"

  def to_json(self) -> dict:
    return {"value": self.value, "low": self.low, "high": self.high, "confidence": self.confidence}


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
  """The smallest value whose cumulative weight reaches q (inverted CDF); NaN replicates are dropped."""
  values, weights = np.asarray(values, np.float64), np.asarray(weights, np.float64)
  ok = ~np.isnan(values)
  values, weights = values[ok], weights[ok]
  if values.size == 0:
    return math.nan
  order = np.argsort(values, kind="stable")
  cum = np.cumsum(weights[order]) / weights.sum()
  return float(values[order][min(np.searchsorted(cum, q - 1e-12), values.size - 1)])


def interval(value: float, reps: np.ndarray, res: Resamples | np.ndarray, confidence: float = CONFIDENCE) -> Interval:
  """Percentile interval of `reps` (weights from `res`, or given directly) around the point estimate `value`."""
  weights = res.weights if isinstance(res, Resamples) else np.asarray(res, np.float64)
  alpha = (1.0 - confidence) / 2
  return Interval(
    float(value), weighted_quantile(reps, weights, alpha), weighted_quantile(reps, weights, 1 - alpha), confidence
  )


def combine_seeds(per_seed: np.ndarray, seed: int = SEED) -> np.ndarray:
  """Hierarchical bootstrap over seeds: per_seed [S, R] replicates -> [R], each the mean over S seeds drawn
  with replacement, so the interval carries the seed-to-seed spread on top of the example noise."""
  per_seed = np.asarray(per_seed, np.float64)
  s, r = per_seed.shape
  if s == 1:
    return per_seed[0]
  pick = np.random.default_rng(seed + 1).integers(0, s, size=(r, s))
  return per_seed[pick, np.arange(r)[:, None]].mean(axis=1)
