"""Small corpora for the data tests, built in tmp dirs (no network, nothing cached outside tmp_path)."""

import numpy as np
import pytest

from ffnjax.data import tokenstore


def fineweb_table(texts):
  """FineWeb-Edu's parquet schema (the dataset card's columns), so the reader sees the real layout."""
  import pyarrow as pa

  n = len(texts)
  return pa.table(
    {
      "text": pa.array(texts, pa.string()),
      "id": [f"<urn:uuid:{i:08d}>" for i in range(n)],
      "dump": ["CC-MAIN-2024-10"] * n,
      "url": [f"https://example.org/{i}" for i in range(n)],
      "file_path": ["s3://commoncrawl/x.warc.gz"] * n,
      "language": ["en"] * n,
      "language_score": pa.array([0.9] * n, pa.float64()),
      "token_count": pa.array([len((t or "").split()) for t in texts], pa.int64()),
      "score": pa.array([3.1] * n, pa.float64()),
      "int_score": pa.array([3] * n, pa.int64()),
    }
  )


def write_parquet(path, texts, row_group_size=16, **kw):
  import pyarrow.parquet as pq

  pq.write_table(fineweb_table(texts), str(path), row_group_size=row_group_size, **kw)
  return str(path)


def sample_docs(n, seed=0):
  """Varied English-ish documents with some unicode, deterministic."""
  rng = np.random.default_rng(seed)
  words = (
    "the",
    "photosynthesis",
    "of",
    "water",
    "molecule",
    "teachers",
    "explain",
    "why",
    "énergie",
    "naïve",
    "data",
    "1984",
    "—",
    "students",
    "learn",
    "in",
    "a",
    "class",
    "😀",
    "fraction",
    "<|endoftext|>",
  )
  return [" ".join(rng.choice(words, size=int(rng.integers(5, 120)))) + "." for _ in range(n)]


@pytest.fixture
def stream_dir(tmp_path):
  """A prepared dir (source 'tokens') whose train stream is arange(N) % 60000: every window is unique and its
  first token tells where it came from. Three shards, so windows cross shard boundaries."""

  def make(num_tokens=20_000, heldout_tokens=3_000, shard_tokens=7_000, name="tokens"):
    path = str(tmp_path / name)
    splits = {"train": np.arange(num_tokens) % 60_000}
    if heldout_tokens:
      splits["heldout"] = (np.arange(heldout_tokens) + 30_000) % 60_000
    tokenstore.write_prepared(
      path, splits, vocab_size=65_000, eot_id=64_999, tokenizer="bpe:65000", shard_tokens=shard_tokens
    )
    return path

  return make


@pytest.fixture(scope="session")
def make_docs():
  return sample_docs


@pytest.fixture
def make_parquet():
  return write_parquet
