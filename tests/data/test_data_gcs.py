"""Prepared token data on gs:// (GCS emulator): prepare --output=gs://, and training batches from data.path=gs://."""

import os

import numpy as np

from ffnjax import data
from ffnjax.core import rundir
from ffnjax.data import pipeline, prepare, tokenstore


def _cfg(path, **kw):
  cfg = data.default_config()
  cfg.update(dict(dict(source="tokens", path=path, tokenizer="bpe:65000", seq_len=15), **kw))
  return cfg


def test_batches_from_gcs_equal_local_ones(stream_dir, gcs_bucket, tmp_path, monkeypatch):
  monkeypatch.setenv("FFNJAX_CACHE", str(tmp_path / "cache"))
  local = stream_dir()
  remote = f"{gcs_bucket}/tokens"
  tokenstore.upload(local, remote)
  assert tokenstore.is_prepared(remote) and tokenstore.read_manifest(remote) == tokenstore.read_manifest(local)
  here, there = pipeline.TrainData(_cfg(local), global_batch=8), pipeline.TrainData(_cfg(remote), global_batch=8)
  for step in (0, 3, 11):
    np.testing.assert_array_equal(there.batch(step), here.batch(step))
  mirror = tokenstore.mirror_dir(remote, str(tmp_path / "cache"))
  assert rundir.read_text(os.path.join(mirror, tokenstore.MANIFEST)) == rundir.read_text(f"{remote}/manifest.json")
  # A second reader reuses the mirror while the remote manifest is unchanged.
  before = os.path.getmtime(os.path.join(mirror, "train", tokenstore.MANIFEST))
  pipeline.TrainData(_cfg(remote), global_batch=8).batch(0)
  assert os.path.getmtime(os.path.join(mirror, "train", tokenstore.MANIFEST)) == before


def test_prepare_to_gcs_uploads_manifests_last_and_is_idempotent(gcs_bucket, tmp_path, make_docs, monkeypatch):
  monkeypatch.setenv("FFNJAX_CACHE", str(tmp_path / "cache"))
  src = tmp_path / "txt"
  src.mkdir()
  for i, text in enumerate(make_docs(12, seed=1)):
    (src / f"doc{i:02d}.txt").write_text(text, encoding="utf-8")
  out = f"{gcs_bucket}/prepared"
  m = prepare.prepare("text_files", out, input=str(src), tokenizer="bpe:300", num_workers=0, progress=False)
  assert tokenstore.read_manifest(out) == m and "tokenizer.json" in rundir.listdir(out)
  again = prepare.prepare("text_files", out, input=str(src), tokenizer="bpe:300", num_workers=0, progress=False)
  assert again == m
  batch = pipeline.TrainData(_cfg(out, source="tokens", tokenizer="bpe:300"), global_batch=2).batch(0)
  assert batch.shape == (2, 16) and batch.max() < 300
