"""Loglikelihood scoring with lm-evaluation-harness 0.4.x semantics, batched into a few fixed shapes.

Semantics (lm-eval's HFLM.loglikelihood, _encode_pair, _loglikelihood_tokens and loglikelihood_rolling):
- trailing whitespace of the context moves to the front of the continuation;
- `whole = enc(context + continuation)`, `cont = whole[len(enc(context)):]`; an empty context becomes the
  end-of-text token and the continuation is then encoded alone;
- the model input is `(ctx + cont)[-(max_length + 1):][:-1]`; LL = sum of the log-probs of the continuation
  tokens (the last len(cont) positions); `is_greedy` = every continuation token is the argmax;
- rolling LL (perplexity): the document's tokens are cut into disjoint prediction windows of max_length tokens
  (get_rolling_token_windows + make_disjoint_window, context_len=1, the first window conditioned on end-of-text),
  each scored as a request above, and their LLs summed.

Efficiency: requests are bucketed by input length into power-of-two lengths (at least `min_bucket`, at most
max_length) and batched to `token_budget` tokens per batch, so XLA compiles one program per (rows, length) shape;
a bucket's last batch is padded to a power-of-two row count, so there are at most a handful of shapes and the
same ones on every call (the Shapley code rescores the same plan with many masks). Right padding never changes a
causal model's outputs at the real positions. Log-softmax, gather and argmax run on the device; the host sums
float32 per-token log-probs in float64.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

EncodedRequest = tuple[tuple[int, ...], tuple[int, ...]]  # (context tokens, continuation tokens)
LogitsFn = Callable[[jax.Array], jax.Array]  # int32 [B, T] -> float logits [B, T, V]

DEFAULT_TOKEN_BUDGET = 16384
DEFAULT_MIN_BUCKET = 32


# ------------------------------------------------------------------------------------------------ tokenization


def encode_pair(tokenizer, context: str, continuation: str, cache: dict | None = None) -> EncodedRequest:
  """(context tokens, continuation tokens) exactly as lm-eval encodes a loglikelihood request.

  `cache` maps context string -> its tokens, so the choices of one question encode the context once.
  """
  if context == "":
    return (tokenizer.prefix_token_id,), tuple(tokenizer.encode(continuation))
  n_spaces = len(context) - len(context.rstrip())
  if n_spaces:
    continuation = context[-n_spaces:] + continuation
    context = context[:-n_spaces]
  whole = tokenizer.encode(context + continuation)
  if cache is None:
    context_enc = tokenizer.encode(context)
  else:
    context_enc = cache.get(context)
    if context_enc is None:
      context_enc = cache[context] = tokenizer.encode(context)
  if not context_enc:
    # A whitespace-only context: lm-eval would score from an empty context (and mis-slice); condition on
    # the prefix token as it does for an empty one.
    return (tokenizer.prefix_token_id,), tuple(whole)
  return tuple(context_enc), tuple(whole[len(context_enc):])


def rolling_token_windows(tokens: Sequence[int], prefix_token: int, max_seq_len: int,
                          context_len: int = 1) -> list[tuple[list[int], list[int]]]:
  """lm-eval's get_rolling_token_windows: (input window, predicted tokens) pairs covering every token once."""
  if not 1 <= context_len <= max_seq_len:
    raise ValueError(f"context_len={context_len} must be in [1, max_seq_len={max_seq_len}]")
  tokens = list(tokens)
  if not tokens:
    return []
  pred_len = max_seq_len - context_len + 1
  first = min(max_seq_len, len(tokens))
  windows = [([prefix_token] + tokens[:first - 1], tokens[:first])]
  predicted = first
  while predicted < len(tokens):
    window_pred_len = min(len(tokens) - predicted, pred_len)
    end = predicted + window_pred_len
    windows.append((tokens[end - max_seq_len - 1:end - 1], tokens[end - window_pred_len:end]))
    predicted += window_pred_len
  return windows


def make_disjoint_window(pair: tuple[list[int], list[int]]) -> EncodedRequest:
  """lm-eval's make_disjoint_window: the window's context without the tokens it predicts."""
  a, b = pair
  return tuple(a[:len(a) - (len(b) - 1)]), tuple(b)


def rolling_requests(tokens: Sequence[int], eot_id: int, max_length: int) -> list[EncodedRequest]:
  """The loglikelihood requests whose LLs sum to a document's rolling LL (lm-eval loglikelihood_rolling)."""
  return [make_disjoint_window(w) for w in rolling_token_windows(tokens, eot_id, max_length, context_len=1)]


# ----------------------------------------------------------------------------------------------------- batching


class RequestTooLong(ValueError):
  """A continuation longer than max_length: lm-eval has no defined score for it (its slicing breaks)."""

  def __init__(self, index: int, message: str):
    super().__init__(message)
    self.index = index


def bucket_lengths(max_length: int, min_bucket: int = DEFAULT_MIN_BUCKET) -> tuple[int, ...]:
  """Powers of two from min_bucket up to max_length, and max_length itself."""
  if max_length < 1 or min_bucket < 1:
    raise ValueError(f"max_length={max_length} and min_bucket={min_bucket} must be >= 1")
  lengths, n = [], 1
  while n < max_length:
    if n >= min_bucket:
      lengths.append(n)
    n *= 2
  return tuple(lengths) + (max_length,)


def _next_pow2(n: int) -> int:
  return 1 << max(0, (n - 1).bit_length())


@dataclasses.dataclass
class Batch:
  tokens: np.ndarray  # int32 [R, T] model input, right-padded with 0
  targets: np.ndarray  # int32 [R, T] the next token at each position
  mask: np.ndarray  # bool [R, T] continuation positions
  rows: np.ndarray  # int [R] unique-request index of each row, -1 = a padding row
  num_tokens: int  # real (unpadded) input tokens


@dataclasses.dataclass
class BatchPlan:
  """Requests laid out in fixed-shape batches; build once, score with any number of logits functions."""

  batches: list[Batch]
  unique_index: np.ndarray  # int [N]: request i is scored by unique request unique_index[i]
  num_tokens: np.ndarray  # int [N]: continuation tokens of request i
  num_unique: int

  @property
  def shapes(self) -> list[tuple[int, int]]:
    """The distinct (rows, length) shapes: one compiled program each."""
    return sorted({b.tokens.shape for b in self.batches})

  @property
  def input_tokens(self) -> int:
    return sum(b.num_tokens for b in self.batches)

  @property
  def num_requests(self) -> int:
    return len(self.unique_index)


def plan_batches(requests: Sequence[EncodedRequest], max_length: int, *, token_budget: int = DEFAULT_TOKEN_BUDGET,
                 row_multiple: int = 1, min_bucket: int = DEFAULT_MIN_BUCKET) -> BatchPlan:
  """Buckets (deduplicated) requests by input length and packs each bucket into batches of <= token_budget tokens
  (at least `row_multiple` rows: the data-parallel size, so every batch shards evenly)."""
  if max_length < 1:
    raise ValueError(f"max_length={max_length}: must be >= 1")
  if token_budget < 1 or row_multiple < 1:
    raise ValueError(f"token_budget={token_budget} and row_multiple={row_multiple} must be >= 1")
  buckets = bucket_lengths(max_length, min(min_bucket, max_length))
  unique: dict[tuple, int] = {}
  seqs: list[tuple[tuple[int, ...], int]] = []
  unique_index = np.empty(len(requests), np.int64)
  num_tokens = np.empty(len(requests), np.int64)
  for i, (ctx, cont) in enumerate(requests):
    if not ctx:
      raise ValueError(f"request {i}: empty context tokens; encode with encode_pair (end-of-text for empty contexts)")
    seq = (tuple(ctx) + tuple(cont))[-(max_length + 1):]
    if len(cont) > len(seq) - 1:
      raise RequestTooLong(i, f"request {i}: continuation of {len(cont)} tokens does not fit max_length="
                           f"{max_length} (at most {max_length} continuation tokens can be scored)")
    key = (seq, len(cont))
    if key not in unique:
      unique[key] = len(seqs)
      seqs.append(key)
    unique_index[i] = unique[key]
    num_tokens[i] = len(cont)

  by_bucket: dict[int, list[int]] = {}
  for u, (seq, _) in enumerate(seqs):
    n = len(seq) - 1
    by_bucket.setdefault(next(b for b in buckets if b >= n), []).append(u)

  batches = []
  for length in sorted(by_bucket):
    members = by_bucket[length]
    full_rows = max(row_multiple, token_budget // length // row_multiple * row_multiple)
    for start in range(0, len(members), full_rows):
      chunk = members[start:start + full_rows]
      rows = full_rows if len(chunk) == full_rows else min(
          full_rows, -(-_next_pow2(len(chunk)) // row_multiple) * row_multiple)
      batches.append(_make_batch([seqs[u] for u in chunk], chunk, rows, length))
  return BatchPlan(batches, unique_index, num_tokens, len(seqs))


def _make_batch(items, members, rows: int, length: int) -> Batch:
  tokens = np.zeros((rows, length), np.int32)
  targets = np.zeros((rows, length), np.int32)
  mask = np.zeros((rows, length), bool)
  index = np.full(rows, -1, np.int64)
  real = 0
  for r, ((seq, cont_len), u) in enumerate(zip(items, members)):
    n = len(seq) - 1
    tokens[r, :n] = seq[:-1]
    targets[r, :n] = seq[1:]
    mask[r, n - cont_len:n] = True
    index[r] = u
    real += n
  return Batch(tokens, targets, mask, index, real)


# ------------------------------------------------------------------------------------------------------ scoring


@jax.jit
def _token_scores(logits, targets):
  logits = logits.astype(jnp.float32)
  picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  return picked - jax.nn.logsumexp(logits, axis=-1), jnp.argmax(logits, axis=-1).astype(jnp.int32)


def data_parallel_size(mesh) -> int:
  """Devices the batch dimension is split over (the mesh axes of the logical 'batch' axis)."""
  if mesh is None:
    return 1
  from ffnjax.parallel.rules import LOGICAL_RULES

  return math.prod(mesh.shape[a] for a in dict(LOGICAL_RULES)["batch"] if a in mesh.shape)


def _to_device(array: np.ndarray, mesh):
  if mesh is None:
    return jnp.asarray(array)
  from ffnjax.parallel.rules import logical_sharding

  sharding = logical_sharding(("batch", "length"), array.shape, mesh)
  return jax.make_array_from_callback(array.shape, sharding, lambda idx: array[idx])


def _to_host(x) -> np.ndarray:
  if getattr(x, "is_fully_addressable", True):
    return np.asarray(x)
  from jax.experimental import multihost_utils

  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


@dataclasses.dataclass
class Scores:
  """Per-request results, in request order."""

  ll: np.ndarray  # float64 [N] sum of continuation log-probs
  num_greedy: np.ndarray  # int [N] continuation tokens that are the argmax
  num_tokens: np.ndarray  # int [N] continuation tokens
  greedy_tokens: list[np.ndarray] | None = None  # argmax at each continuation position (keep_greedy_tokens)

  @property
  def is_greedy(self) -> np.ndarray:
    return self.num_greedy == self.num_tokens


class _Progress:
  def __init__(self, label: str, total: int, every_s: float):
    self.label, self.total, self.every_s = label, total, every_s
    self.start = self.last = time.perf_counter()
    self.done = self.tokens = 0

  def update(self, requests: int, tokens: int, final: bool = False):
    self.done += requests
    self.tokens += tokens
    now = time.perf_counter()
    # periodic lines, and a last one unless the whole run took under a second (Shapley rescoring stays quiet)
    if self.every_s >= 0 and (now - self.last >= self.every_s or (final and now - self.start >= 1.0)):
      self.last = now
      rate = self.tokens / max(now - self.start, 1e-9)
      logging.info("%s: %d/%d requests scored, %.0f tokens/s", self.label or "eval", self.done, self.total, rate)


def score_batches(plan: BatchPlan, logits_fn: LogitsFn, *, mesh=None, keep_greedy_tokens: bool = False,
                  label: str = "", progress_every_s: float = 30.0) -> Scores:
  """Runs every batch of `plan` through `logits_fn`; the next batch is dispatched before the previous one is
  read back, so the host work overlaps the device. progress_every_s < 0 silences the progress line."""
  ll = np.zeros(plan.num_unique, np.float64)
  greedy = np.zeros(plan.num_unique, np.int64)
  tokens_out = [None] * plan.num_unique if keep_greedy_tokens else None
  progress = _Progress(label, plan.num_unique, progress_every_s)

  def collect(batch: Batch, out):
    logp, argmax = (_to_host(x) for x in out)
    real = batch.rows >= 0
    rows = batch.rows[real]
    mask = batch.mask[real]
    ll[rows] = np.where(mask, logp[real].astype(np.float64), 0.0).sum(axis=1)
    hits = (argmax[real] == batch.targets[real]) & mask
    greedy[rows] = hits.sum(axis=1)
    if tokens_out is not None:
      for r, u in enumerate(rows):
        tokens_out[u] = argmax[real][r][mask[r]]
    progress.update(len(rows), batch.num_tokens)

  pending = None
  for batch in plan.batches:
    logits = logits_fn(_to_device(batch.tokens, mesh))
    if logits.shape[:2] != batch.tokens.shape:
      raise ValueError(f"logits_fn returned shape {tuple(logits.shape)} for tokens {batch.tokens.shape}; "
                       "expected [batch, length, vocab]")
    out = _token_scores(logits, _to_device(batch.targets, mesh))
    if pending is not None:
      collect(*pending)
    pending = (batch, out)
  if pending is not None:
    collect(*pending)
  if progress.done:
    progress.update(0, 0, final=True)
  idx = plan.unique_index
  return Scores(ll[idx], greedy[idx], plan.num_tokens.copy(),
                [tokens_out[u] for u in idx] if tokens_out is not None else None)


# ------------------------------------------------------------------------------------------------ conveniences


def loglikelihood(logits_fn: LogitsFn, tokenizer, requests: Sequence[tuple[str, str]], *, max_length: int,
                  token_budget: int = DEFAULT_TOKEN_BUDGET, mesh=None) -> list[tuple[float, bool]]:
  """(LL, is_greedy) of each (context, continuation) string pair, as lm-eval's `loglikelihood`."""
  cache: dict = {}
  encoded = [encode_pair(tokenizer, c, x, cache) for c, x in requests]
  plan = plan_batches(encoded, max_length, token_budget=token_budget, row_multiple=data_parallel_size(mesh))
  scores = score_batches(plan, logits_fn, mesh=mesh, progress_every_s=-1)
  return [(float(a), bool(b)) for a, b in zip(scores.ll, scores.is_greedy)]


def loglikelihood_rolling(logits_fn: LogitsFn, tokenizer, texts: Sequence[str], *, max_length: int,
                          token_budget: int = DEFAULT_TOKEN_BUDGET, mesh=None) -> list[float]:
  """Rolling LL of each text, as lm-eval's `loglikelihood_rolling` (an empty text scores 0)."""
  encoded, owner = [], []
  for i, text in enumerate(texts):
    windows = rolling_requests(tokenizer.encode(text), tokenizer.prefix_token_id, max_length)
    encoded += windows
    owner += [i] * len(windows)
  plan = plan_batches(encoded, max_length, token_budget=token_budget, row_multiple=data_parallel_size(mesh))
  scores = score_batches(plan, logits_fn, mesh=mesh, progress_every_s=-1)
  totals = np.zeros(len(texts), np.float64)
  np.add.at(totals, np.asarray(owner, np.int64), scores.ll)
  return [float(t) for t in totals]
