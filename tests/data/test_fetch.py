"""ffnjax.data.fetch with the network replaced: `_hub` serves local fixtures in the upstream schemas."""

import hashlib
import json
import os

import pyarrow.parquet as pq
import pytest

from ffnjax.data import fetch, fixtures
from ffnjax.eval import tasks as tasks_lib


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
  calls = []
  by_dataset = {(s.repo, s.config, s.split): s.task for s in fetch.EVAL_SOURCES if s.repo}
  shards = fixtures.write_fineweb_edu(str(tmp_path / "hub" / "sample" / "10BT"), documents=20, shards=3)

  def hub(op, **kw):
    calls.append((op, kw))
    if op == "dataset":
      return fixtures.records(by_dataset[(kw["repo"], kw["config"], kw["split"])], 5)
    if op == "url":
      return json.dumps(fixtures.records("zsre", 7)).encode()
    if op == "list":
      return ["README.md", "data/CC-MAIN-2013-20/000_00000.parquet"] + [
        f"sample/10BT/{f}" for f in sorted(os.listdir(shards))
      ]
    if op == "download":
      return os.path.join(str(tmp_path / "hub"), kw["filename"])
    raise AssertionError(op)

  monkeypatch.setattr(fetch, "_hub", hub)
  return calls


def test_fetch_eval_writes_the_evaluators_layout_and_manifest(fake_hub, tmp_path):
  out = str(tmp_path / "eval")
  logs = []
  manifest = fetch.fetch_eval(out, log=logs.append)
  files = manifest["files"]
  assert set(files) == {s.file for s in fetch.EVAL_SOURCES}
  assert "boolq/validation.jsonl" in files and "openbookqa/test.jsonl" in files
  zsre = files["zsre/zsre_mend_eval.json"]
  assert zsre["records"] == 7 and zsre["expected_records"] == 19086
  for name, entry in files.items():
    with open(os.path.join(out, name), "rb") as f:
      assert hashlib.sha256(f.read()).hexdigest() == entry["sha256"]
  assert json.load(open(os.path.join(out, "manifest.json"))) == manifest
  # The evaluator reads every task it knows from these files, fields checked.
  for name, task in tasks_lib.TASKS.items():
    docs = task.load(out)
    assert len(docs) == (7 if name == "zsre" else 5)
  assert any("expected 19,086" in line for line in logs)  # a record count that differs from the paper's set
  # A second run keeps files whose sha256 matches and fetches nothing.
  fake_hub.clear()
  fetch.fetch_eval(out, log=logs.append)
  assert fake_hub == []
  with pytest.raises(fetch.FetchError, match="unknown \\['squad'\\]"):
    fetch.fetch_eval(out, ["squad"])


def test_fetch_fineweb_edu_shards(fake_hub, tmp_path):
  out = str(tmp_path / "fwe")
  manifest = fetch.fetch_fineweb_edu(out, "sample-10BT", max_shards=2, log=lambda m: None)
  assert sorted(manifest["files"]) == ["000_00000.parquet", "001_00000.parquet"]
  table = pq.read_table(os.path.join(out, "sample-10BT", "000_00000.parquet"))
  assert "text" in table.column_names and table.num_rows == 7
  with pytest.raises(fetch.FetchError, match="--subset='sample-1T'"):
    fetch.fetch_fineweb_edu(out, "sample-1T")


def test_no_network_is_one_line(monkeypatch, tmp_path):
  def offline(op, **kw):
    raise ConnectionError("Couldn't reach the Hub")

  monkeypatch.setattr(fetch, "_hub", offline)
  with pytest.raises(
    fetch.FetchError,
    match=r"lambada_openai: downloading EleutherAI/lambada_openai \(default\) test "
    r"failed \(ConnectionError: Couldn't reach the Hub\)",
  ):
    fetch.fetch_eval(str(tmp_path / "eval"), ["lambada_openai"])
  with pytest.raises(fetch.FetchError, match="listing HuggingFaceFW/fineweb-edu failed"):
    fetch.fetch_fineweb_edu(str(tmp_path / "fwe"), "sample-10BT")
