"""Corpus preparation: parquet / text / shakespeare -> token shards; atomicity, no-op reruns, clear errors."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from ffnjax import data
from ffnjax.data import prepare, tokenizers, tokenstore

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _stream(path, split="train"):
  store = tokenstore.TokenStore(os.path.join(path, split))
  return store.read(0, len(store)).astype(np.int64)


def _expected(docs, tok):
  ids = []
  for text in docs:
    if text:
      ids += tok.encode_ordinary(text) + [tok.eot_id]
  return np.array(ids)


def _leftovers(parent):
  return [n for n in os.listdir(parent) if ".tmp-" in n]


@pytest.fixture
def fineweb(tmp_path, make_docs, make_parquet):
  """Two parquet files in FineWeb-Edu's schema, with an empty and a null text among the rows."""
  docs = make_docs(60)
  docs[7], docs[31] = "", None
  src = tmp_path / "fineweb"
  src.mkdir()
  make_parquet(src / "000_00000.parquet", docs[:25])
  make_parquet(src / "000_00001.parquet", docs[25:], compression="zstd")
  return str(src), docs


def test_fineweb_parquet_is_tokenized_in_order_with_eot_after_each_document(tmp_path, fineweb):
  src, docs = fineweb
  out = str(tmp_path / "out")
  m = prepare.prepare("fineweb_edu", out, input=src, num_workers=0, shard_tokens=1000, progress=False)
  gpt2 = tokenizers.get_tokenizer("gpt2")
  expected = _expected(docs, gpt2)
  np.testing.assert_array_equal(_stream(out), expected)
  assert m["tokenizer"] == "gpt2" and m["vocab_size"] == 50257 and m["eot_id"] == 50256 and m["dtype"] == "uint16"
  assert m["splits"]["train"]["num_documents"] == 58 and m["num_tokens"] == expected.size
  split = tokenstore.read_json(os.path.join(out, "train", "manifest.json"))
  assert split["split"] == "train" and split["tokenizer"] == "gpt2"
  assert len(split["shards"]) == -(-expected.size // 1000)
  store = tokenstore.TokenStore(os.path.join(out, "train"))
  assert store.content_hash() == split["content_hash"] == m["splits"]["train"]["content_hash"]
  assert [r["file"] for r in m["recipe"]["inputs"]] == ["000_00000.parquet", "000_00001.parquet"]
  assert _leftovers(tmp_path) == []

  # the same command again is a no-op; a different one is refused and leaves the data alone
  mtime = os.path.getmtime(os.path.join(out, "manifest.json"))
  assert prepare.prepare("fineweb_edu", out, input=src, num_workers=0, progress=False) == m
  assert os.path.getmtime(os.path.join(out, "manifest.json")) == mtime
  with pytest.raises(FileExistsError, match=r"already holds different prepared data \(.*inputs"):
    prepare.prepare("fineweb_edu", out, input=os.path.join(src, "000_00000.parquet"), num_workers=0, progress=False)
  with pytest.raises(FileExistsError, match="tokenizer"):
    prepare.prepare("fineweb_edu", out, input=src, tokenizer="bpe:300", num_workers=0, progress=False)
  np.testing.assert_array_equal(_stream(out), expected)
  assert _leftovers(tmp_path) == []


def test_worker_processes_write_the_same_data(tmp_path, fineweb):
  src, _ = fineweb
  inline = prepare.prepare(
    "fineweb_edu", str(tmp_path / "a"), input=src, num_workers=0, progress=False, heldout_every=10
  )
  pooled = prepare.prepare(
    "fineweb_edu",
    str(tmp_path / "b"),
    input=src + "/*.parquet",
    num_workers=2,
    progress=False,
    heldout_every=10,
    shard_tokens=777,
  )
  assert pooled["content_hash"] == inline["content_hash"]
  assert pooled["splits"]["heldout"]["num_documents"] == 6 and pooled["splits"]["train"]["num_documents"] == 52


def _damaged_copy(src, dst):
  """Valid footer, garbage in the middle: fails only while reading, after some documents were tokenized."""
  import pyarrow.parquet as pq

  raw = bytearray(open(src, "rb").read())
  col = pq.ParquetFile(src).metadata.row_group(1).column(0)
  start = col.dictionary_page_offset or col.data_page_offset
  raw[start : start + col.total_compressed_size] = b"\xff" * col.total_compressed_size
  open(dst, "wb").write(bytes(raw))


@pytest.mark.parametrize(
  "damage,match",
  [
    ("garbage", r"bad\.parquet: not a readable parquet file"),
    ("empty", r"bad\.parquet: not a readable parquet file"),
    ("no_text", r"bad\.parquet: no 'text' column .*columns: \['content', 'id'"),
    ("mid_file", r"bad\.parquet: damaged parquet file"),
  ],
)
def test_bad_parquet_fails_clearly_and_leaves_nothing(tmp_path, make_docs, make_parquet, damage, match):
  import pyarrow as pa
  import pyarrow.parquet as pq

  src = tmp_path / "in"
  src.mkdir()
  make_parquet(src / "a_good.parquet", make_docs(20))
  bad = src / "bad.parquet"
  if damage == "garbage":
    bad.write_bytes(b"PAR1 this is not parquet at all")
  elif damage == "empty":
    bad.write_bytes(b"")
  elif damage == "no_text":
    pq.write_table(pa.table({"content": ["x"], "id": ["1"]}), str(bad))
  else:
    make_parquet(tmp_path / "whole.parquet", make_docs(80, seed=1), row_group_size=20, compression="zstd")
    _damaged_copy(str(tmp_path / "whole.parquet"), str(bad))
  out = tmp_path / "out"
  with pytest.raises(ValueError, match=match):
    prepare.prepare("fineweb_edu", str(out), input=str(src), num_workers=0, progress=False)
  assert not out.exists() and _leftovers(tmp_path) == []
  # a later run with the bad file gone succeeds: nothing half-written is mistaken for complete
  bad.unlink()
  m = prepare.prepare("fineweb_edu", str(out), input=str(src), num_workers=0, progress=False)
  assert m["splits"]["train"]["num_documents"] == 20


def test_output_that_is_not_prepared_data_is_refused(tmp_path, make_docs):
  (tmp_path / "t.txt").write_text(make_docs(1)[0])
  out = tmp_path / "out"
  out.mkdir()
  (out / "stray.bin").write_bytes(b"\0\0")
  with pytest.raises(FileExistsError, match="non-empty dir without manifest.json"):
    prepare.prepare("text_files", str(out), input=str(tmp_path / "t.txt"), num_workers=0, progress=False)
  with pytest.raises(FileNotFoundError, match="does not exist"):
    prepare.prepare("text_files", str(tmp_path / "o2"), input=str(tmp_path / "missing"), num_workers=0)
  with pytest.raises(ValueError, match="no non-empty documents"):
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "empty.txt").write_text("")
    prepare.prepare("text_files", str(tmp_path / "o3"), input=str(tmp_path / "e"), num_workers=0, progress=False)
  assert not (tmp_path / "o3").exists() and _leftovers(tmp_path) == []


def test_text_files_with_a_small_bpe(tmp_path, make_docs):
  src = tmp_path / "txt"
  (src / "sub").mkdir(parents=True)
  docs = make_docs(30, seed=4)
  for i, text in enumerate(docs):
    (src / ("sub" if i % 2 else "") / f"doc{i:02d}.txt").write_text(text, encoding="utf-8")
  out = str(tmp_path / "out")
  m = prepare.prepare("text_files", out, input=str(src), tokenizer="bpe:300", num_workers=0, progress=False)
  assert m["vocab_size"] == 300 and m["eot_id"] == 0 and os.path.isfile(os.path.join(out, "tokenizer.json"))
  tok = tokenizers.get_tokenizer("bpe:300", out)
  stream = _stream(out)
  assert stream.max() < 300 and (stream == 0).sum() == 30
  order = sorted(range(30), key=lambda i: ("sub/" if i % 2 else "") + f"doc{i:02d}.txt")
  assert tok.decode(stream.tolist()) == "".join(docs[i] + "<|endoftext|>" for i in order)


def test_concurrent_prepares_of_one_output_agree(tmp_path, make_docs, monkeypatch):
  (tmp_path / "t.txt").write_text(" ".join(make_docs(20)))
  out, results, errors = str(tmp_path / "out"), [], []

  def run():
    try:
      results.append(prepare.prepare("text_files", out, input=str(tmp_path / "t.txt"), num_workers=0, progress=False))
    except Exception as e:  # noqa: BLE001 - any failure of a thread is collected and asserted on below
      errors.append(e)

  threads = [threading.Thread(target=run) for _ in range(3)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert not errors and len(results) == 3
  assert len({r["content_hash"] for r in results}) == 1
  assert _leftovers(tmp_path) == []

  # force the losing side of the race: the output appears between the check and the rename
  real, calls = prepare._existing, []

  def late(output, recipe_):
    calls.append(output)
    return None if len(calls) == 1 else real(output, recipe_)

  monkeypatch.setattr(prepare, "_existing", late)
  again = prepare.prepare("text_files", out, input=str(tmp_path / "t.txt"), num_workers=0, progress=False)
  assert len(calls) == 2 and again == results[0] and _leftovers(tmp_path) == []


def test_shakespeare_splits_and_ensure_prepared_cache(tmp_path, monkeypatch):
  monkeypatch.setenv("FFNJAX_CACHE", str(tmp_path / "cache"))
  cfg = data.default_config()
  path = prepare.ensure_prepared(cfg)
  assert path == str(tmp_path / "cache" / "data" / "shakespeare-gpt2")
  m = tokenstore.read_manifest(path)
  assert m["splits"]["train"]["num_documents"] == 38 and m["splits"]["heldout"]["num_documents"] == 4
  assert m["splits"]["heldout"]["num_tokens"] > 100_000
  for split in ("train", "heldout"):
    assert tokenstore.read_json(os.path.join(path, split, "manifest.json"))["split"] == split
  mtime = os.path.getmtime(os.path.join(path, "manifest.json"))
  assert prepare.ensure_prepared(cfg) == path
  assert os.path.getmtime(os.path.join(path, "manifest.json")) == mtime
  heldout = tokenizers.get_tokenizer("gpt2").decode(_stream(path, "heldout")[:40].tolist())
  assert "MACBETH" in heldout.upper()  # heldout plays in key order: macbeth first


def test_ensure_prepared_errors(tmp_path, stream_dir):
  cfg = data.default_config()
  cfg.source, cfg.path = "tokens", str(tmp_path / "none")
  with pytest.raises(FileNotFoundError, match="ffnjax.data.prepare"):
    prepare.ensure_prepared(cfg)
  cfg.path = stream_dir()
  with pytest.raises(ValueError, match="data.tokenizer='gpt2', but"):
    prepare.ensure_prepared(cfg)
  cfg.tokenizer = "bpe:65000"
  assert prepare.ensure_prepared(cfg) == cfg.path


def test_cli(tmp_path, make_docs):
  src = tmp_path / "txt"
  src.mkdir()
  for i, text in enumerate(make_docs(5)):
    (src / f"{i}.txt").write_text(text)
  out = str(tmp_path / "out")
  env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  cmd = [
    sys.executable,
    "-m",
    "ffnjax.data.prepare",
    "--source=text_files",
    f"--input={src}",
    f"--output={out}",
    "--num_workers=0",
  ]
  run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
  assert run.returncode == 0, run.stderr
  assert "5 documents" in run.stdout and "MB/s" in run.stdout and f"wrote {out}" in run.stdout
  again = subprocess.run(cmd[:-1] + ["--tokenizer=bpe:300"], capture_output=True, text=True, env=env, timeout=120)
  assert again.returncode != 0 and "already holds different prepared data" in again.stderr
