"""TrainData / EvalData: determinism, process sharding, epochs, iterator state, Grain workers."""

import json

import numpy as np
import pytest
from absl import flags

from ffnjax import data
from ffnjax.data import pipeline, tokenstore


def _cfg(path, seq_len=15, **kw):
  cfg = data.default_config()
  cfg.update(dict(dict(source="tokens", path=path, tokenizer="bpe:65000", seq_len=seq_len), **kw))
  return cfg


def _ids(batch, window):
  """Window ids of a batch from the synthetic stream (token value == stream offset)."""
  assert (batch[:, 1:] - batch[:, :-1] == 1).all()  # each row is one contiguous window
  assert (batch[:, 0] % window == 0).all()
  return batch[:, 0] // window


def test_token_store_reads_across_shards(stream_dir):
  store = tokenstore.TokenStore(tokenstore.split_dir(stream_dir(shard_tokens=999), "train"))
  assert len(store.manifest["shards"]) == 21 and len(store) == 20_000
  np.testing.assert_array_equal(store.read(990, 2_100), np.arange(990, 3_090))
  np.testing.assert_array_equal(store.read(19_990, 10), np.arange(19_990, 20_000))
  with pytest.raises(IndexError):
    store.read(19_995, 10)
  assert store.content_hash() == store.manifest["content_hash"]


def test_batches_are_a_pure_function_of_seed_and_step(stream_dir):
  path = stream_dir()
  a = pipeline.TrainData(_cfg(path), global_batch=8)
  b = pipeline.TrainData(_cfg(path), global_batch=8)
  assert a.num_sequences == 20_000 // 16 and a.vocab_size == 65_000 and a.eot_id == 64_999
  for step in (0, 1, 7, 500):
    x = a.batch(step)
    assert x.shape == (8, 16) and x.dtype == np.int32
    np.testing.assert_array_equal(x, b.batch(step))
  np.testing.assert_array_equal(a.batch(3), a.batch(3))
  other = pipeline.TrainData(_cfg(path, seed=1), global_batch=8)
  assert not np.array_equal(a.batch(0), other.batch(0))


def test_each_epoch_is_a_fresh_permutation_without_dropping_sequences(stream_dir):
  d = pipeline.TrainData(_cfg(stream_dir(num_tokens=16 * 50)), global_batch=8)  # 50 sequences, 6.25 steps/epoch
  ids = np.concatenate([_ids(d.batch(s), 16) for s in range(25)])  # 200 = 4 epochs
  epochs = ids.reshape(4, 50)
  for e in epochs:
    assert sorted(e) == list(range(50))
  assert not np.array_equal(epochs[0], epochs[1])
  assert not np.array_equal(epochs[0], np.arange(50))


def test_processes_get_disjoint_rows_whose_union_is_the_global_batch(stream_dir):
  path = stream_dir()
  full = pipeline.TrainData(_cfg(path), global_batch=12)
  parts = [pipeline.TrainData(_cfg(path), global_batch=12, process_index=p, process_count=4) for p in range(4)]
  for step in (0, 5, 123):
    local = [p.batch(step) for p in parts]
    assert all(x.shape == (3, 16) for x in local)
    np.testing.assert_array_equal(np.concatenate(local), full.batch(step))
    ids = [set(_ids(x, 16)) for x in local]
    assert sum(len(s) for s in ids) == 12 and len(set().union(*ids)) == 12
  with pytest.raises(ValueError, match="divisible by process_count"):
    pipeline.TrainData(_cfg(path), global_batch=10, process_index=0, process_count=4)
  with pytest.raises(ValueError, match="process_index"):
    pipeline.TrainData(_cfg(path), global_batch=8, process_index=4, process_count=4)


def test_iterator_state_restores_the_exact_batches(stream_dir):
  path = stream_dir()
  d = pipeline.TrainData(_cfg(path), global_batch=4)
  it = d.iterator()
  first = [next(it) for _ in range(5)]
  for step, x in enumerate(first):
    np.testing.assert_array_equal(x, d.batch(step))
  state = json.loads(json.dumps(it.get_state()))  # what a checkpoint stores
  assert state["step"] == 5
  expected = [next(it) for _ in range(3)]

  restored = pipeline.TrainData(_cfg(path), global_batch=4).iterator()
  restored.set_state(state)
  for x in expected:
    np.testing.assert_array_equal(next(restored), x)
  np.testing.assert_array_equal(next(pipeline.TrainData(_cfg(path), global_batch=4).iterator(5)), expected[0])

  with pytest.raises(ValueError, match="seed"):
    pipeline.TrainData(_cfg(path, seed=3), global_batch=4).iterator().set_state(state)
  with pytest.raises(ValueError, match="global_batch"):
    pipeline.TrainData(_cfg(path), global_batch=8).iterator().set_state(state)


def test_two_grain_workers_yield_the_same_batches(stream_dir):
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  path = stream_dir()
  inline = pipeline.TrainData(_cfg(path), global_batch=4)
  workers = pipeline.TrainData(_cfg(path, worker_count=2), global_batch=4, process_index=0, process_count=1)
  with workers.iterator(start_step=3) as it:
    got = [next(it) for _ in range(6)]
    state = it.get_state()
  for i, x in enumerate(got):
    np.testing.assert_array_equal(x, inline.batch(3 + i))
  assert state["step"] == 9


def test_eval_data_covers_every_sequence_once_in_order(stream_dir):
  path = stream_dir(heldout_tokens=16 * 11 + 5)  # 11 sequences, batch 4 -> 3 batches, the last padded
  parts = [pipeline.EvalData(_cfg(path), global_batch=4, process_index=p, process_count=2) for p in range(2)]
  assert len(parts[0]) == 3 and parts[0].num_sequences == 11
  rows = []
  for i in range(3):
    local = [p.batch(i) for p in parts]
    assert all(t.shape == (2, 16) and m.shape == (2,) for t, m in local)
    tokens = np.concatenate([t for t, _ in local])
    mask = np.concatenate([m for _, m in local])
    rows.append(tokens[mask])
    assert not tokens[~mask].any()
  rows = np.concatenate(rows)
  np.testing.assert_array_equal(rows.reshape(-1), (np.arange(16 * 11) + 30_000))
  assert len(pipeline.EvalData(_cfg(path), global_batch=4, max_batches=2)) == 2
  with pytest.raises(ValueError, match="holds the splits"):
    pipeline.EvalData(_cfg(stream_dir(heldout_tokens=0, name="no_heldout")), global_batch=4)


def test_clear_errors(stream_dir, tmp_path):
  path = stream_dir()
  with pytest.raises(ValueError, match="fewer than one sequence"):
    pipeline.TrainData(_cfg(path, seq_len=30_000), global_batch=4)
  with pytest.raises(ValueError, match=r"data.tokenizer='gpt2'.*prepared with 'bpe:65000'"):
    pipeline.TrainData(_cfg(path, tokenizer="gpt2"), global_batch=4)
  with pytest.raises(FileNotFoundError, match="manifest.json"):
    pipeline.TrainData(_cfg(str(tmp_path / "nothing")), global_batch=4)


@pytest.mark.parametrize(
  "field,value,match",
  [
    ("source", "c4", "data.source: 'c4' must be one of"),
    ("tokenizer", "gpt3", "data.tokenizer='gpt3': must be 'gpt2', 'bpe:N'"),
    ("tokenizer", "bpe:100", "N >= 257"),
    ("seq_len", 0, "data.seq_len: must be an integer >= 1"),
    ("worker_count", -1, "data.worker_count"),
    ("split", "test", r"data.split: 'test' must be one of \('train', 'heldout'\)"),
    ("seed", -1, "data.seed"),
  ],
)
def test_validate_names_the_field(field, value, match):
  cfg = data.default_config()
  data.validate(cfg)
  cfg[field] = value
  with pytest.raises(ValueError, match=match):
    data.validate(cfg)


def test_validate_needs_a_path_for_tokens_and_an_input_for_raw_sources():
  cfg = data.default_config()
  cfg.source = "tokens"
  with pytest.raises(ValueError, match="data.path"):
    data.validate(cfg)
  cfg.source = "fineweb_edu"
  with pytest.raises(ValueError, match="data.input"):
    data.validate(cfg)


def test_eval_batches_are_fixed_full_batches_of_the_heldout_split(stream_dir):
  path = stream_dir(heldout_tokens=16 * 11)  # 11 sequences
  full = list(pipeline.eval_batches(_cfg(path), global_batch=4))
  assert len(full) == 2 and all(b.shape == (4, 16) and b.dtype == np.int32 for b in full)
  np.testing.assert_array_equal(np.concatenate(full).reshape(-1), np.arange(16 * 8) + 30_000)
  parts = [
    list(pipeline.eval_batches(_cfg(path), global_batch=4, num_batches=4, process_index=p, process_count=2))
    for p in range(2)
  ]
  merged = np.concatenate([np.concatenate([a, b]) for a, b in zip(*parts)])
  ids = (merged[:, 0] - 30_000) // 16
  np.testing.assert_array_equal(ids, np.arange(16) % 11)  # wraps around a small split
