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

Two paths. Our model goes through the packed hidden-state path at the end of this file (`plan_packed`,
`score_packed`, `HiddenScorer`): the output head only at scored positions, shared contexts computed once, keep
masks per row. Any other logits function (tests, notebooks, full-logit callers) goes through the bucketed path:

Efficiency: requests are bucketed by input length into power-of-two lengths (at least `min_bucket`, at most
max_length) and batched to `token_budget` tokens per batch, so XLA compiles one program per (rows, length) shape;
a bucket's last batch is padded to a power-of-two row count, so there are at most a handful of shapes and the
same ones on every call (the Shapley code rescores the same plan with many masks). Right padding never changes a
causal model's outputs at the real positions. Log-softmax, gather and argmax run on the device; the host sums
float32 per-token log-probs in float64.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from ffnjax.core.progress import Eta
from ffnjax.parallel.rules import LOGICAL_RULES, logical_sharding

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
  return tuple(context_enc), tuple(whole[len(context_enc) :])


def rolling_token_windows(
  tokens: Sequence[int], prefix_token: int, max_seq_len: int, context_len: int = 1
) -> list[tuple[list[int], list[int]]]:
  """lm-eval's get_rolling_token_windows: (input window, predicted tokens) pairs covering every token once."""
  if not 1 <= context_len <= max_seq_len:
    raise ValueError(f"context_len={context_len} must be in [1, max_seq_len={max_seq_len}]")
  tokens = list(tokens)
  if not tokens:
    return []
  pred_len = max_seq_len - context_len + 1
  first = min(max_seq_len, len(tokens))
  windows = [([prefix_token] + tokens[: first - 1], tokens[:first])]
  predicted = first
  while predicted < len(tokens):
    window_pred_len = min(len(tokens) - predicted, pred_len)
    end = predicted + window_pred_len
    windows.append((tokens[end - max_seq_len - 1 : end - 1], tokens[end - window_pred_len : end]))
    predicted += window_pred_len
  return windows


def make_disjoint_window(pair: tuple[list[int], list[int]]) -> EncodedRequest:
  """lm-eval's make_disjoint_window: the window's context without the tokens it predicts."""
  a, b = pair
  return tuple(a[: len(a) - (len(b) - 1)]), tuple(b)


def rolling_requests(tokens: Sequence[int], prefix_token: int, max_length: int) -> list[EncodedRequest]:
  """The loglikelihood requests whose LLs sum to a document's rolling LL (lm-eval loglikelihood_rolling)."""
  return [make_disjoint_window(w) for w in rolling_token_windows(tokens, prefix_token, max_length, context_len=1)]


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


def plan_batches(
  requests: Sequence[EncodedRequest],
  max_length: int,
  *,
  token_budget: int = DEFAULT_TOKEN_BUDGET,
  row_multiple: int = 1,
  min_bucket: int = DEFAULT_MIN_BUCKET,
) -> BatchPlan:
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
    seq = (tuple(ctx) + tuple(cont))[-(max_length + 1) :]
    if len(cont) > len(seq) - 1:
      raise RequestTooLong(
        i,
        f"request {i}: continuation of {len(cont)} tokens does not fit max_length="
        f"{max_length} (at most {max_length} continuation tokens can be scored)",
      )
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
      chunk = members[start : start + full_rows]
      rows = (
        full_rows
        if len(chunk) == full_rows
        else min(full_rows, -(-_next_pow2(len(chunk)) // row_multiple) * row_multiple)
      )
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
    mask[r, n - cont_len : n] = True
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

  return math.prod(mesh.shape[a] for a in dict(LOGICAL_RULES)["batch"] if a in mesh.shape)


def _to_device(array: np.ndarray, mesh):
  if mesh is None:
    return jnp.asarray(array)

  sharding = logical_sharding(("batch", "length"), array.shape, mesh)
  return jax.make_array_from_callback(array.shape, sharding, lambda idx: array[idx])


def _to_host(x) -> np.ndarray:
  if getattr(x, "is_fully_addressable", True):
    return np.asarray(x)

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
  """Progress of one scoring call on stderr (the CLIs keep absl at WARNING): a first line after FIRST_S seconds,
  then one every `every_s`, with the rate and the ETA; every_s < 0 keeps it quiet."""

  FIRST_S = 5.0

  def __init__(self, label: str, total: int, every_s: float):
    self.label, self.total, self.every_s = label, total, every_s
    self.eta = Eta(total)
    self.last = time.perf_counter() - max(every_s - self.FIRST_S, 0.0)  # the first line comes after FIRST_S
    self.done = self.tokens = 0

  def update(self, requests: int, tokens: int, final: bool = False):
    self.done += requests
    self.tokens += tokens
    now, elapsed = time.perf_counter(), self.eta.elapsed()
    # periodic lines, and a last one unless the whole run took under a second (Shapley rescoring stays quiet)
    if self.every_s >= 0 and (now - self.last >= self.every_s or (final and elapsed >= 1.0)):
      self.last = now
      print(
        f"{self.label or 'eval'}: {self.done}/{self.total} requests scored | "
        f"{self.tokens / max(elapsed, 1e-9):.0f} tokens/s | {self.eta.text(self.done)}",
        file=sys.stderr,
        flush=True,
      )


def score_batches(
  plan: BatchPlan,
  logits_fn: LogitsFn,
  *,
  mesh=None,
  keep_greedy_tokens: bool = False,
  label: str = "",
  progress_every_s: float = 30.0,
) -> Scores:
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
      raise ValueError(
        f"logits_fn returned shape {tuple(logits.shape)} for tokens {batch.tokens.shape}; "
        "expected [batch, length, vocab]"
      )
    out = _token_scores(logits, _to_device(batch.targets, mesh))
    if pending is not None:
      collect(*pending)
    pending = (batch, out)
  if pending is not None:
    collect(*pending)
  if progress.done:
    progress.update(0, 0, final=True)
  idx = plan.unique_index
  return Scores(
    ll[idx], greedy[idx], plan.num_tokens.copy(), [tokens_out[u] for u in idx] if tokens_out is not None else None
  )


# ------------------------------------------------------------------------------------------------ conveniences


def loglikelihood(
  logits_fn: LogitsFn,
  tokenizer,
  requests: Sequence[tuple[str, str]],
  *,
  max_length: int,
  token_budget: int = DEFAULT_TOKEN_BUDGET,
  mesh=None,
) -> list[tuple[float, bool]]:
  """(LL, is_greedy) of each (context, continuation) string pair, as lm-eval's `loglikelihood`."""
  cache: dict = {}
  encoded = [encode_pair(tokenizer, c, x, cache) for c, x in requests]
  plan = plan_batches(encoded, max_length, token_budget=token_budget, row_multiple=data_parallel_size(mesh))
  scores = score_batches(plan, logits_fn, mesh=mesh, progress_every_s=-1)
  return [(float(a), bool(b)) for a, b in zip(scores.ll, scores.is_greedy)]


def loglikelihood_rolling(
  logits_fn: LogitsFn,
  tokenizer,
  texts: Sequence[str],
  *,
  max_length: int,
  token_budget: int = DEFAULT_TOKEN_BUDGET,
  mesh=None,
) -> list[float]:
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


# ------------------------------------------------------------------------------------- packed hidden-state scoring
#
# The fast path for our own model (`HiddenScorer`): the model returns final hidden states and the output head is
# applied, chunked over the vocabulary, only at the scored positions (log-prob of the target + whether it is the
# argmax), so memory is bounded by the token budget, never by T x V. Requests that share their input prefix (the
# choices of one document: same context, not truncated) are packed into one row as [prefix][branch 1][branch 2]..
# with a block-causal mask (a branch sees the prefix and itself) and per-segment rotary positions, so the context
# runs through the model once. Several documents share a row (a document id per token), so rows are almost full.
# We pack rather than reuse a prefix KV cache: one static-shape forward per batch, no cache shapes or second
# phase, and the same program serves every Shapley coalition (keep masks per row) on CPU and accelerators alike.
# Each request's scored positions see exactly the tokens and positions lm-eval's `(ctx + cont)[-(L+1):][:-1]` row
# gives them, so LL and is_greedy are the same per request (up to float summation order).

DEFAULT_VOCAB_CHUNK = 8192
HEAD_BLOCK_ELEMENTS = 1 << 23  # scored positions x vocabulary chunk: 32 MiB of float32 logits per step


@dataclasses.dataclass
class PackedPlan:
  """Requests packed into rows of `row_length` tokens; build once, score under any number of keep masks."""

  tokens: np.ndarray  # int32 [R, T]
  positions: np.ndarray  # int32 [R, T] rotary positions (restart per document)
  doc: np.ndarray  # int32 [R, T] document id within the row (0 = padding)
  branch: np.ndarray  # int32 [R, T] 0 = shared prefix, j >= 1 = the j-th request's own tokens
  row_scored: list[np.ndarray]  # per row: int [n, 3] (position, target, unique request) of each scored token
  unique_index: np.ndarray  # int [N]: request i is scored by unique request unique_index[i]
  num_tokens: np.ndarray  # int [N] continuation tokens of request i
  num_unique: int
  request_tokens: int  # tokens lm-eval's per-request rows would run through the model (its definition)

  @property
  def row_length(self) -> int:
    return self.tokens.shape[1]

  @property
  def num_rows(self) -> int:
    return self.tokens.shape[0]

  @property
  def real_tokens(self) -> int:
    return int((self.doc > 0).sum())

  @property
  def padded_fraction(self) -> float:
    """Padding tokens / all row tokens."""
    return 1.0 - self.real_tokens / max(self.tokens.size, 1)

  @property
  def num_requests(self) -> int:
    return len(self.unique_index)


def plan_packed(requests: Sequence[EncodedRequest], max_length: int) -> PackedPlan:
  """Deduplicates requests, groups those with the same input prefix, and packs the groups into rows of
  max_length tokens (first fit, longest first)."""
  if max_length < 1:
    raise ValueError(f"max_length={max_length}: must be >= 1")
  unique: dict[tuple, int] = {}
  unique_index = np.empty(len(requests), np.int64)
  num_tokens = np.empty(len(requests), np.int64)
  groups: dict[tuple, list[tuple[int, tuple, tuple]]] = {}
  request_tokens = 0
  for i, (ctx, cont) in enumerate(requests):
    if not ctx:
      raise ValueError(f"request {i}: empty context tokens; encode with encode_pair (end-of-text for empty contexts)")
    seq = (tuple(ctx) + tuple(cont))[-(max_length + 1) :]
    c = len(cont)
    if c > len(seq) - 1:
      raise RequestTooLong(
        i,
        f"request {i}: continuation of {c} tokens does not fit max_length="
        f"{max_length} (at most {max_length} continuation tokens can be scored)",
      )
    key = (seq, c)
    if key not in unique:
      u = unique[key] = len(unique)
      n = len(seq) - 1
      request_tokens += n
      # input x = seq[:-1]; positions n-c..n-1 predict seq[-c:]; the rest is the prefix they all condition on
      groups.setdefault(seq[: n - c], []).append((u, seq[n - c : n], seq[-c:]))
    unique_index[i] = unique[key]
    num_tokens[i] = c

  items = []  # (prefix, [(u, branch tokens, targets)]) each fitting one row
  for prefix, branches in groups.items():
    cur, size = [], len(prefix)
    for b in branches:
      if cur and size + len(b[1]) > max_length:
        items.append((prefix, cur))
        cur, size = [], len(prefix)
      cur.append(b)
      size += len(b[1])
    items.append((prefix, cur))
  items.sort(key=lambda it: -(len(it[0]) + sum(len(b[1]) for b in it[1])))

  rows: list[list] = []
  free: list[int] = []
  for item in items:
    n = len(item[0]) + sum(len(b[1]) for b in item[1])
    for r, f in enumerate(free):
      if f >= n:
        rows[r].append(item)
        free[r] -= n
        break
    else:
      rows.append([item])
      free.append(max_length - n)

  shape = (max(len(rows), 1), max_length)
  tokens, positions, doc, branch = (np.zeros(shape, np.int32) for _ in range(4))
  row_scored = []
  for r, row in enumerate(rows):
    at, scored = 0, []
    for d, (prefix, branches) in enumerate(row, 1):
      p = len(prefix)
      tokens[r, at : at + p] = prefix
      positions[r, at : at + p] = np.arange(p)
      doc[r, at : at + p] = d
      at += p
      for j, (u, toks, targets) in enumerate(branches, 1):
        m = len(toks)
        tokens[r, at : at + m] = toks
        positions[r, at : at + m] = np.arange(p, p + m)
        doc[r, at : at + m] = d
        branch[r, at : at + m] = j
        scored += [(at + k, targets[k], u) for k in range(m)]
        at += m
    row_scored.append(np.asarray(scored, np.int64).reshape(-1, 3))
  if not rows:
    row_scored.append(np.zeros((0, 3), np.int64))
  return PackedPlan(tokens, positions, doc, branch, row_scored, unique_index, num_tokens, len(unique), request_tokens)


@dataclasses.dataclass
class PrefixReuse:
  """A scorer's prefix-reuse programs. A coalition that keeps every sub-layer before boundary b (b = 2l: layer l's
  attention, 2l + 1: its FFN, 2L: the end) has the full model's residual stream there, so its pass can start at b.

  streams(tokens, positions, doc, branch) -> [2L + 1, B, T, d]: the full model's stream at every boundary;
  hidden_from(streams, rows int32 [B'], start int32, positions, doc, branch, keep [B', L, 2]) -> final hidden
  [B', T, d] of rows `rows` of `streams`, computed from boundary `start` on.
  """

  streams: Callable
  hidden_from: Callable
  has_ffn: tuple[bool, ...]  # per layer (a deactivated layer has none: never a start, never computed)
  row_bytes: Callable[[int], int]  # bytes of one row's streams at row length T

  def first_removed(self, masks: np.ndarray) -> np.ndarray:
    """int [K]: the boundary of each keep mask's first removed sub-layer (2L when it keeps everything); any keep
    value but 1 counts as removed, since only a mask of ones up to there shares the full model's stream."""
    masks = np.asarray(masks)
    dropped = masks.reshape(len(masks), -1) != 1  # [K, 2L] in boundary order
    dropped[:, 1::2] &= np.asarray(self.has_ffn, bool)[None]
    return np.where(dropped.any(axis=1), dropped.argmax(axis=1), dropped.shape[1])

  def compilations(self) -> int:
    return self.streams.jitted._cache_size() + self.hidden_from.jitted._cache_size()


class HiddenScorer:
  """Our model as the engine's fast path: `hidden(tokens, positions, doc, branch, keep[B, L, 2]) -> [B, T, d]`
  and the output head [d, V]; jitted once per batch shape (rows) and per scored-position count. `prefix`
  (optional) adds the prefix-reuse programs (score_packed(reuse=True))."""

  def __init__(
    self,
    hidden_fn,
    head,
    num_layers: int,
    *,
    mesh=None,
    vocab_chunk: int = DEFAULT_VOCAB_CHUNK,
    prefix: PrefixReuse | None = None,
  ):
    self.hidden_fn, self.num_layers, self.mesh, self.prefix = hidden_fn, num_layers, mesh, prefix
    d, v = head.shape
    # the largest power-of-two chunk whose padding of the vocabulary stays within ~2 % (padded columns are work)
    self.max_chunk = _next_pow2(min(vocab_chunk, v))
    while self.max_chunk > 128 and -(-v // self.max_chunk) * self.max_chunk > 1.02 * v:
      self.max_chunk //= 2
    self.head = jnp.zeros((d, -(-v // self.max_chunk) * self.max_chunk), head.dtype).at[:, :v].set(head)
    self.vocab_size = v
    self._head_fn = jax.jit(functools.partial(_chunked_head, vocab_size=v, max_chunk=self.max_chunk))

  def hidden(self, tokens, positions, doc, branch, keep):
    return self.hidden_fn(tokens, positions, doc, branch, keep)

  def head_scores(self, hidden, flat_index, targets):
    return self._head_fn(hidden, self.head, flat_index, targets)

  def compilations(self) -> int:
    return (
      self.hidden_fn.jitted._cache_size()
      + self._head_fn._cache_size()
      + (self.prefix.compilations() if self.prefix is not None else 0)
    )


def _chunked_head(hidden, head, flat_index, targets, *, vocab_size, max_chunk):
  """(log-prob of target, argmax) at hidden[flat_index]; the head [d, V_pad] runs over vocabulary chunks sized
  so that scored positions x chunk stays within HEAD_BLOCK_ELEMENTS (memory bounded by the token budget)."""
  d = hidden.shape[-1]
  h = hidden.reshape(-1, d)[flat_index]  # [S, d]
  fits = max(HEAD_BLOCK_ELEMENTS // max(h.shape[0], 1), 1)
  chunk = min(max_chunk, max(128, 1 << (fits.bit_length() - 1)))  # a power of two: divides V_pad

  def body(carry, c):
    m, s, tgt, best, arg = carry
    w = jax.lax.dynamic_slice_in_dim(head, c * chunk, chunk, axis=1)
    logits = jnp.einsum("sd,dv->sv", h, w.astype(h.dtype), preferred_element_type=jnp.float32)
    cols = c * chunk + jnp.arange(chunk)
    logits = jnp.where(cols[None] < vocab_size, logits, -jnp.inf)
    cm = logits.max(axis=-1)
    m2 = jnp.maximum(m, cm)
    s = s * jnp.exp(m - m2) + jnp.exp(logits - m2[:, None]).sum(axis=-1)
    tgt = tgt + jnp.where(cols[None] == targets[:, None], logits, 0.0).sum(axis=-1)
    ca = jnp.argmax(logits, axis=-1).astype(jnp.int32) + c * chunk
    better = cm > best  # strict: the first maximum wins, as jnp.argmax / torch.argmax
    return (m2, s, tgt, jnp.where(better, cm, best), jnp.where(better, ca, arg)), None

  n = h.shape[0]
  init = (
    jnp.full((n,), -jnp.inf, jnp.float32),
    jnp.zeros((n,), jnp.float32),
    jnp.zeros((n,), jnp.float32),
    jnp.full((n,), -jnp.inf, jnp.float32),
    jnp.zeros((n,), jnp.int32),
  )
  (m, s, tgt, _, arg), _ = jax.lax.scan(body, init, jnp.arange(head.shape[1] // chunk))
  return tgt - (m + jnp.log(s)), arg


def _head_size(n: int) -> int:
  """Scored positions of one head call, rounded up to 1/8 of a power of two: at most 12.5 % wasted head work and
  a few shapes per octave (each a small, fast-compiling program)."""
  n = max(n, 64)
  step = _next_pow2(n) // 8
  return -(-n // step) * step


def rows_per_batch(row_length: int, token_budget: int, row_multiple: int = 1) -> int:
  """Rows of one forward pass: the token budget's worth, a power of two times row_multiple."""
  rows = max(1, token_budget // row_length // row_multiple)
  return (1 << (rows.bit_length() - 1)) * row_multiple


STREAM_BUDGET_BYTES = 1 << 29  # residual streams held for prefix reuse (one block of rows): 512 MiB


def stream_block_rows(plan: PackedPlan, prefix: PrefixReuse, per_batch: int, row_multiple: int = 1) -> int:
  """Rows whose streams are computed (and held) at once: all of the plan's rows when they fit the batch and
  STREAM_BUDGET_BYTES, a multiple of the data-parallel size; fixed per plan, so one streams program per task."""
  fit = max(1, STREAM_BUDGET_BYTES // max(prefix.row_bytes(plan.row_length), 1))
  rows = min(per_batch, fit, plan.num_rows)
  return max(row_multiple, rows // row_multiple * row_multiple) if rows >= row_multiple else row_multiple


def score_packed(
  plan: PackedPlan,
  scorer: HiddenScorer,
  masks: np.ndarray | None = None,
  *,
  token_budget: int = DEFAULT_TOKEN_BUDGET,
  label: str = "",
  progress_every_s: float = 30.0,
  keep_greedy_tokens: bool = False,
  fixed_shapes: bool = False,
  reuse: bool = False,
  work: dict | None = None,
) -> list[Scores]:
  """Scores every request under each keep mask (masks float [K, L, 2]; None = all kept): one Scores per mask.

  Work items are (mask, row) pairs, so one forward pass mixes coalitions; every batch has the same number of rows
  (the last one padded with copies of its first item, so padding never forces a skipped sub-layer to run). A
  sub-layer that no row of a batch keeps is skipped. With fixed_shapes (Shapley), the rows and scored positions per
  batch do not depend on the number of masks either: one body program for a whole run, whatever the coalitions per
  call (the head, a small program, takes the scored-position count rounded by _head_size).

  With reuse (scorer.prefix), the full model's residual streams are computed once per block of rows, the items
  are ordered by their mask's first removed sub-layer, and each batch starts at its first item's boundary from
  those streams (prefix reuse: what every coalition shares with the full model is computed once). `work`, when
  given, receives what ran: rows per sub-layer (`sublayer_rows` [2L], boundary order; prefix passes included),
  `prefix_rows`, `head_positions` (padded) and `batches`.
  """
  masks = np.ones((1, scorer.num_layers, 2), np.float32) if masks is None else np.asarray(masks, np.float32)
  if masks.ndim != 3 or masks.shape[1:] != (scorer.num_layers, 2):
    raise ValueError(f"masks of shape {masks.shape}: expected [K, {scorer.num_layers}, 2]")
  if reuse and scorer.prefix is None:
    raise ValueError("score_packed(reuse=True) needs a scorer with prefix-reuse programs (ffnjax.model.make_scorer)")
  k_masks, r = len(masks), plan.num_rows
  row_multiple = data_parallel_size(scorer.mesh)
  per_batch = rows_per_batch(plan.row_length, token_budget, row_multiple)
  if reuse:
    # a batch is one block of rows of one coalition (or a few with neighbouring starts, when a block is small):
    # homogeneous batches start where their coalition does and skip what it removed
    block = stream_block_rows(plan, scorer.prefix, per_batch, row_multiple)
    per_batch = max(1, min(per_batch // block, token_budget // 4 // (block * plan.row_length))) * block
  elif not fixed_shapes:
    per_batch = min(per_batch, -(-_next_pow2(k_masks * r) // row_multiple) * row_multiple)
  ll = np.zeros((k_masks, plan.num_unique), np.float64)
  greedy = np.zeros((k_masks, plan.num_unique), np.int64)
  progress = _Progress(label, k_masks * plan.num_unique, progress_every_s)
  t = plan.row_length
  mean_scored = np.mean([len(x) for x in plan.row_scored])
  head_piece = _head_size(int(per_batch * mean_scored) // 8) if fixed_shapes or reuse else 0
  row_requests = np.asarray([len(np.unique(s[:, 2])) for s in plan.row_scored])
  row_tokens = (plan.doc > 0).sum(axis=1)
  has_ffn = np.asarray(scorer.prefix.has_ffn if scorer.prefix is not None else (True,) * scorer.num_layers, bool)
  if work is not None:
    work.update(sublayer_rows=np.zeros(2 * scorer.num_layers, np.int64), prefix_rows=0, head_positions=0, batches=0)

  tokens_out = [[[] for _ in range(plan.num_unique)] for _ in range(k_masks)] if keep_greedy_tokens else None

  def collect(which, u, targets, out):
    logp = np.concatenate([np.asarray(_to_host(x[0])) for x in out])
    arg = np.concatenate([np.asarray(_to_host(x[1])) for x in out])
    n = len(u)
    np.add.at(ll, (which, u), logp[:n].astype(np.float64))
    np.add.at(greedy, (which, u), (arg[:n] == targets).astype(np.int64))
    if tokens_out is not None:
      for w, r, a in zip(which, u, arg[:n]):  # a request's positions come in order within its row
        tokens_out[w][r].append(a)

  def rows_arrays(rows):
    return [_to_device(a[rows], scorer.mesh) for a in (plan.positions, plan.doc, plan.branch)]

  def batches():
    """(mask index, plan row, start boundary, streams, row within streams) of each batch's items."""
    if not reuse:
      work_items = np.arange(k_masks * r)
      for start in range(0, len(work_items), per_batch):
        items = work_items[start : start + per_batch]
        yield items // r, items % r, 0, None, None
      return
    starts = scorer.prefix.first_removed(masks)
    for first in range(0, r, block):
      rows = np.arange(first, min(first + block, r))
      padded_rows = np.concatenate([rows, np.full(block - len(rows), rows[0])])
      streams = scorer.prefix.streams(_to_device(plan.tokens[padded_rows], scorer.mesh), *rows_arrays(padded_rows))
      if work is not None:
        work["prefix_rows"] += block
        work["sublayer_rows"] += block * np.repeat([[1, 0]], scorer.num_layers, 0).ravel()
        work["sublayer_rows"][1::2] += block * has_ffn
      mi, local = np.divmod(np.arange(k_masks * len(rows)), len(rows))
      order = np.lexsort((local, mi, starts[mi]))  # by start boundary, then coalition, then row
      mi, local = mi[order], local[order]
      for s in range(0, len(mi), per_batch):
        yield (
          mi[s : s + per_batch],
          rows[local[s : s + per_batch]],
          int(starts[mi[s]]),
          streams,
          local[s : s + per_batch],
        )

  pending = None
  for mi, ri, start, streams, local in batches():
    pad = per_batch - len(mi)
    # padding items copy the first item (same mask): results dropped, and no sub-layer runs only for them
    sel_rows = np.concatenate([ri, np.full(pad, ri[0])])
    keep = masks[np.concatenate([mi, np.full(pad, mi[0])])]
    scored = [plan.row_scored[x] for x in ri]
    flat = np.concatenate([s[:, 0] + b * t for b, s in enumerate(scored)]).astype(np.int32)
    targets = np.concatenate([s[:, 1] for s in scored]).astype(np.int32)
    u = np.concatenate([s[:, 2] for s in scored])
    which = np.concatenate([np.full(len(s), m) for m, s in zip(mi, scored)]).astype(np.int64)
    # fixed_shapes: the head runs in pieces of one fixed size (one program for the run); else one rounded call
    size = head_piece or _head_size(len(flat))
    pieces = max(1, -(-len(flat) // size))
    flat_p = np.zeros(pieces * size, np.int32)
    flat_p[: len(flat)] = flat
    tgt_p = np.zeros(pieces * size, np.int32)
    tgt_p[: len(flat)] = targets
    if streams is None:
      hidden = scorer.hidden(_to_device(plan.tokens[sel_rows], scorer.mesh), *rows_arrays(sel_rows), jnp.asarray(keep))
    else:
      local = np.concatenate([local, np.full(pad, local[0])]).astype(np.int32)
      hidden = scorer.prefix.hidden_from(
        streams, jnp.asarray(local), jnp.int32(start), *rows_arrays(sel_rows), jnp.asarray(keep)
      )
    out = [
      scorer.head_scores(
        hidden, jnp.asarray(flat_p[i * size : (i + 1) * size]), jnp.asarray(tgt_p[i * size : (i + 1) * size])
      )
      for i in range(pieces)
    ]
    if work is not None:  # what the model's lax.conds run: at or after `start`, kept by some row, existing
      runs = (np.arange(2 * scorer.num_layers) >= start) & (keep != 0).any(axis=0).ravel()
      runs[1::2] &= has_ffn
      work["sublayer_rows"] += per_batch * runs
      work["head_positions"] += pieces * size
      work["batches"] += 1
    if pending is not None:
      collect(*pending)
    pending = (which, u, targets, out)
    progress.update(int(row_requests[ri].sum()), int(row_tokens[ri].sum()))
  if pending is not None:
    collect(*pending)
  progress.update(0, 0, final=True)
  idx = plan.unique_index
  return [
    Scores(
      ll[k][idx],
      greedy[k][idx],
      plan.num_tokens.copy(),
      [np.asarray(tokens_out[k][u], np.int32) for u in idx] if tokens_out is not None else None,
    )
    for k in range(k_masks)
  ]
