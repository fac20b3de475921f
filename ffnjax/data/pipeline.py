"""The Grain input pipeline: prepared token shards -> fixed-length sequences -> shuffled global batches.

A split's token stream (documents joined with end-of-text, see `tokenstore`) is cut into non-overlapping windows of
seq_len + 1 tokens (the model reads `[:, :-1]` and predicts `[:, 1:]`); the last partial window is dropped.
Window ids go through a Grain `MapDataset`:

    range(num_sequences) -> shuffle(seed) -> repeat() -> batch(global_batch) -> rows of this process -> tokens

`shuffle` before `repeat` gives a fresh permutation every epoch (Grain reseeds per epoch), and epochs flow into each
other without dropping sequences: the batch that straddles an epoch boundary takes the end of one permutation and
the start of the next. A `MapDataset` is random access, so `batch(step)` is a pure function of (seed, step) and an
iterator restarted at step k yields exactly what the first one yielded from k: the checkpointed state is just the
step. Process p of P keeps rows [p*b, (p+1)*b) of the global batch (b = global_batch / P), so processes read
disjoint sequences whose union is the one-process batch, and a run can resume on a different number of hosts.

Validation: `EvalData` (every sequence of a split once, last batch padded, with a row mask) and `eval_batches`
(a fixed number of full, unmasked batches, for a quick validation loss during training).
"""

from __future__ import annotations

import hashlib
import math

import grain
import numpy as np
from absl import flags

from ffnjax.data import tokenstore, validate
from ffnjax.data.prepare import ensure_prepared

STATE_VERSION = 1


def _grain_seed(seed: int) -> int:
  """A well-mixed 32-bit Grain seed: Grain shuffles epoch e with seed + e, so user seeds 0 and 1 must not map to
  neighbouring Grain seeds (seed 1's first epoch would be seed 0's second)."""
  return int.from_bytes(hashlib.sha256(f"ffnjax.data.shuffle:{seed}".encode()).digest()[:4], "little")


class _ReadRows:
  """Grain map: global batch of window ids [B] -> this process's rows as int32 [b, seq_len + 1]."""

  def __init__(self, store: tokenstore.TokenStore, window: int, lo: int, hi: int):
    self.store, self.window, self.lo, self.hi = store, window, lo, hi

  def __call__(self, ids: np.ndarray) -> np.ndarray:
    ids = ids[self.lo : self.hi]
    out = np.empty((len(ids), self.window), np.int32)
    for i, k in enumerate(ids):
      out[i] = self.store.read(int(k) * self.window, self.window)
    return out


def _open(data_cfg, split: str, global_batch: int, process_index: int, process_count: int):
  validate(data_cfg)
  for name, value, low in (
    ("global_batch", global_batch, 1),
    ("process_count", process_count, 1),
    ("process_index", process_index, 0),
  ):
    if not isinstance(value, (int, np.integer)) or value < low:
      raise ValueError(f"{name}={value!r}: must be an integer >= {low}")
  if process_index >= process_count:
    raise ValueError(f"process_index={process_index}: must be < process_count={process_count}")
  if global_batch % process_count:
    raise ValueError(f"global_batch={global_batch}: must be divisible by process_count={process_count}")
  path = ensure_prepared(data_cfg)
  manifest = tokenstore.read_manifest(path)
  store = tokenstore.TokenStore(tokenstore.split_dir(path, split))
  window = data_cfg.seq_len + 1
  num_sequences = store.num_tokens // window
  if num_sequences == 0:
    raise ValueError(
      f"data.seq_len={data_cfg.seq_len}: the {split!r} split of {path} holds only {store.num_tokens} "
      f"tokens, fewer than one sequence of seq_len + 1 = {window}"
    )
  return path, manifest, store, window, num_sequences


class TrainData:
  """Shuffled training batches; `batch(step)` is a pure function of (data.seed, step).

  `.batch(step)` -> np.int32 [global_batch // process_count, seq_len + 1]; `.iterator(start_step)` yields the same
  batches from Grain (with `data.worker_count` worker processes) and has JSON `get_state()`/`set_state()`.
  """

  def __init__(self, data_cfg, *, global_batch: int, process_index: int = 0, process_count: int = 1):
    self.path, manifest, self._store, window, self.num_sequences = _open(
      data_cfg, data_cfg.split, global_batch, process_index, process_count
    )
    self.split = data_cfg.split
    self.seq_len = data_cfg.seq_len
    self.seed = data_cfg.seed
    self.worker_count = data_cfg.worker_count
    self.global_batch = global_batch
    self.local_batch = global_batch // process_count
    self.process_index, self.process_count = process_index, process_count
    self.vocab_size = manifest["vocab_size"]
    self.eot_id = manifest["eot_id"]
    self.tokenizer = manifest["tokenizer"]
    self.content_hash = self._store.manifest["content_hash"]
    lo = process_index * self.local_batch
    self._dataset = (
      grain.MapDataset.range(self.num_sequences)
      .shuffle(seed=_grain_seed(self.seed))
      .repeat()
      .batch(global_batch)
      .map(_ReadRows(self._store, window, lo, lo + self.local_batch))
    )

  @property
  def steps_per_epoch(self) -> float:
    return self.num_sequences / self.global_batch

  def batch(self, step: int) -> np.ndarray:
    if step < 0:
      raise ValueError(f"step={step}: must be >= 0")
    return self._dataset[int(step)]

  def iterator(self, start_step: int = 0) -> TrainIterator:
    return TrainIterator(self, start_step)

  def _grain_iter(self, start_step: int):
    ds = self._dataset[start_step:].to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4))
    if self.worker_count > 0:
      if not flags.FLAGS.is_parsed():  # Grain's worker pool reads absl flags; programs without absl never parse them
        flags.FLAGS.mark_as_parsed()
      ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=self.worker_count, per_worker_buffer_size=2))
    return iter(ds)

  def _state_key(self) -> dict:
    return dict(
      version=STATE_VERSION,
      seed=self.seed,
      global_batch=self.global_batch,
      seq_len=self.seq_len,
      split=self.split,
      num_sequences=self.num_sequences,
      content_hash=self.content_hash,
    )


class TrainIterator:
  """Yields TrainData.batch(step) for step = start_step, start_step + 1, ...; workers start on the first next().

  `get_state()` is a small JSON-serialisable dict (the next step plus what identifies the data); `set_state()`
  accepts one from any process count and refuses one from different data, seed, batch size or sequence length.
  """

  def __init__(self, data: TrainData, start_step: int = 0):
    if start_step < 0:
      raise ValueError(f"start_step={start_step}: must be >= 0")
    self._data = data
    self._step = int(start_step)
    self._it = None

  @property
  def step(self) -> int:
    """The step of the batch that next() returns."""
    return self._step

  def __iter__(self):
    return self

  def __next__(self) -> np.ndarray:
    if self._it is None:
      self._it = self._data._grain_iter(self._step)
    batch = next(self._it)
    self._step += 1
    return batch

  def get_state(self) -> dict:
    return dict(self._data._state_key(), step=self._step)

  def set_state(self, state: dict) -> None:
    expected = self._data._state_key()
    wrong = {k: (state.get(k), v) for k, v in expected.items() if state.get(k) != v}
    if wrong:
      raise ValueError(
        "iterator state from different data: "
        + ", ".join(f"{k}={got!r} in the state, {want!r} here" for k, (got, want) in wrong.items())
      )
    step = state.get("step")
    if not isinstance(step, int) or step < 0:
      raise ValueError(f"iterator state: step={step!r} must be an integer >= 0")
    self.close()
    self._step = step

  def close(self) -> None:
    """Stops Grain worker processes, if any (they also stop when the iterator is garbage-collected)."""
    it, self._it = self._it, None
    if it is not None and hasattr(it, "close"):
      it.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


class EvalData:
  """Fixed validation batches in stored order (no shuffle), covering every sequence of `split` exactly once.

  `batch(i)` -> (tokens np.int32 [global_batch // process_count, seq_len + 1], mask bool [same rows]): the last
  global batch is padded with rows of zeros whose mask is False, so every batch has one shape. `max_batches` > 0
  keeps only the first ones.
  """

  def __init__(
    self,
    data_cfg,
    *,
    global_batch: int,
    split: str = "heldout",
    process_index: int = 0,
    process_count: int = 1,
    max_batches: int = 0,
  ):
    self.path, manifest, self._store, self._window, self.num_sequences = _open(
      data_cfg, split, global_batch, process_index, process_count
    )
    self.split, self.seq_len = split, data_cfg.seq_len
    self.global_batch = global_batch
    self.local_batch = global_batch // process_count
    self._lo = process_index * self.local_batch
    self.vocab_size = manifest["vocab_size"]
    self.eot_id = manifest["eot_id"]
    self.num_batches = math.ceil(self.num_sequences / global_batch)
    if max_batches:
      self.num_batches = min(self.num_batches, max_batches)

  def __len__(self) -> int:
    return self.num_batches

  def batch(self, i: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0 <= i < self.num_batches:
      raise IndexError(f"batch {i}: EvalData has {self.num_batches} batches")
    tokens = np.zeros((self.local_batch, self._window), np.int32)
    mask = np.zeros((self.local_batch,), bool)
    first = i * self.global_batch + self._lo
    for r in range(self.local_batch):
      k = first + r
      if k < self.num_sequences:
        tokens[r] = self._store.read(k * self._window, self._window)
        mask[r] = True
    return tokens, mask

  def __iter__(self):
    for i in range(self.num_batches):
      yield self.batch(i)


def eval_batches(
  data_cfg,
  *,
  global_batch: int,
  num_batches: int = 0,
  split: str = "heldout",
  process_index: int = 0,
  process_count: int = 1,
):
  """Fixed validation batches without masks: yields np.int32 [global_batch // process_count, seq_len + 1].

  Global batch i holds sequences (i * global_batch + r) mod num_sequences, in stored order, so every call sees the
  same batches. num_batches = 0 means every full batch (at least one). Where the split holds fewer sequences than
  the batches ask for, it wraps around and repeats sequences; use `EvalData` (padded, with a mask) for an exact
  pass over the split.
  """
  _, _, store, window, n = _open(data_cfg, split, global_batch, process_index, process_count)
  local = global_batch // process_count
  num_batches = num_batches or max(1, n // global_batch)
  for i in range(num_batches):
    out = np.empty((local, window), np.int32)
    for r in range(local):
      k = (i * global_batch + process_index * local + r) % n
      out[r] = store.read(k * window, window)
    yield out
