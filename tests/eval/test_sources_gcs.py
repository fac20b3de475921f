"""Evaluation files read from a gs:// data_dir on the GCS emulator, exactly as from a local one."""

import io

import pyarrow as pa
import pyarrow.parquet as pq

from ffnjax.core import rundir
from ffnjax.data import fixtures
from ffnjax.eval import evaluator, sources
from ffnjax.eval.tasks import parse_tasks


def test_eval_data_dir_on_gcs_reads_every_task_like_a_local_dir(gcs_bucket, tmp_path, tok):
  local, remote = str(tmp_path / "eval"), f"{gcs_bucket}/eval"
  fixtures.write_eval(local, n=3)
  fixtures.write_eval(remote, n=3)
  assert evaluator.resolve_data_dir(remote) == remote
  for task in parse_tasks(
    "lambada_openai,wikitext,hellaswag,piqa,winogrande,arc_easy,arc_challenge,zsre,boolq,openbookqa"
  ):
    here = evaluator.prepare(task, tok, local, 0, 64)
    there = evaluator.prepare(task, tok, remote, 0, 64)
    assert there.docs == here.docs and there.num_requests == here.num_requests > 0, task.name


def test_parquet_shards_on_gcs_are_read_in_name_order(gcs_bucket):
  for i in (1, 0):  # written out of order
    buf = io.BytesIO()
    pq.write_table(pa.table({"text": [f"shard {i} doc {j}" for j in range(2)]}), buf)
    rundir.write_bytes(f"{gcs_bucket}/data/lambada_openai/test-0000{i}-of-00002.parquet", buf.getvalue())
  files = sources.find_file(f"{gcs_bucket}/data", ["lambada_openai/test"])
  assert [f.rsplit("/", 1)[1] for f in files] == ["test-00000-of-00002.parquet", "test-00001-of-00002.parquet"]
  assert [r["text"] for r in sources.read_records(files)] == [f"shard {i} doc {j}" for i in (0, 1) for j in (0, 1)]
