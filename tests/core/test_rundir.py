"""ffnjax.core.rundir: the one path/I-O module, on local disk and on a real GCS API emulator."""

import os
import stat
import subprocess
import sys

import pytest

from ffnjax.core import rundir


def test_core_imports_without_jax():
  # Launchers (sweep.py, babysit.py) run on login nodes without JAX; they import ffnjax.core.
  code = "import sys, ffnjax.core.rundir; print('jax' in sys.modules, 'orbax' in sys.modules)"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.split() == ["False", "False"]


def test_is_remote_and_join():
  assert rundir.is_remote("gs://b/run") and rundir.is_remote("s3://b/x")
  assert not rundir.is_remote("runs/a") and not rundir.is_remote("/tmp/x")
  assert rundir.join("gs://b/run/", "checkpoints", "4") == "gs://b/run/checkpoints/4"
  assert rundir.join("runs/a", "config.json") == os.path.join("runs/a", "config.json")
  assert str(rundir.path("runs/a")) == os.path.abspath("runs/a")
  assert str(rundir.path("gs://b/run")) == "gs://b/run"
  assert rundir.local("gs://b/run") is None and rundir.local("x") == os.path.abspath("x")


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_local_writes_follow_the_umask_and_leave_no_temporaries(tmp_path, umask):
  old = os.umask(umask)
  try:
    rundir.write_json(tmp_path / "run" / "config.json", {"b": 1, "a": [1, 2]})
    rundir.write_text(tmp_path / "run" / "config.json", rundir.dumps({"a": 2}))  # overwrite in place
    metrics = rundir.Appender(tmp_path / "run" / "metrics.jsonl")
    metrics.write("{}\n")
    metrics.close()
  finally:
    os.umask(old)
  for name in ("config.json", "metrics.jsonl"):
    assert stat.S_IMODE(os.stat(tmp_path / "run" / name).st_mode) == 0o666 & ~umask, name
  assert sorted(os.listdir(tmp_path / "run")) == ["config.json", "metrics.jsonl"]
  assert rundir.read_json(tmp_path / "run" / "config.json") == {"a": 2}


def test_failed_write_keeps_the_old_file(tmp_path):
  target = tmp_path / "plan.json"
  rundir.write_json(target, {"v": 1})

  class Unserializable:
    pass

  with pytest.raises(TypeError):
    rundir.write_json(target, {"v": Unserializable()})
  with pytest.raises(TypeError):
    rundir.write_bytes(target, "not bytes")  # fails inside the temporary file's write
  assert rundir.read_json(target) == {"v": 1}
  assert os.listdir(tmp_path) == ["plan.json"]


def test_read_defaults_and_listing(tmp_path):
  assert rundir.read_json(tmp_path / "absent.json", default=None) is None
  assert rundir.read_text(tmp_path / "absent.txt", default="") == ""
  with pytest.raises(FileNotFoundError):
    rundir.read_text(tmp_path / "absent.txt")
  rundir.write_text(tmp_path / "d" / "x" / "a.txt", "a")
  rundir.write_text(tmp_path / "d" / "b.json", "{}")
  assert rundir.listdir(tmp_path / "d") == ["b.json", "x"]
  assert rundir.listdir(tmp_path / "nothing") == []
  assert list(rundir.walk_files(tmp_path / "d")) == ["b.json", "x/a.txt"]
  assert rundir.glob(tmp_path / "d", "*.json") == [str(tmp_path / "d" / "b.json")]
  rundir.rename(tmp_path / "d" / "x", tmp_path / "d" / "y")
  with pytest.raises(FileExistsError):
    rundir.rename(tmp_path / "d" / "y", tmp_path / "d" / "b.json")
  rundir.remove(tmp_path / "d" / "y")
  rundir.remove(tmp_path / "d" / "never-was")
  assert rundir.listdir(tmp_path / "d") == ["b.json"]


def test_check_writable_names_the_flag(tmp_path):
  (tmp_path / "a-file").write_text("")  # a directory under a file cannot be created, even by root
  with pytest.raises(PermissionError, match=r"^--output=.*a-file/sub is not writable"):
    rundir.check_writable(tmp_path / "a-file" / "sub", flag="--output")


def test_gcs_emulator_round_trip(gcs_bucket):
  root = f"{gcs_bucket}/run"
  assert not rundir.exists(root) and rundir.listdir(root) == []
  rundir.check_writable(root)
  rundir.write_json(rundir.join(root, "config.json"), {"train": {"steps": 8}})
  rundir.write_text(rundir.join(root, "sub", "a.txt"), "a")
  metrics = rundir.Appender(rundir.join(root, "metrics.jsonl"))
  metrics.write('{"step": 1}\n')
  metrics.write('{"step": 2}\n')
  metrics.close()
  rundir.Appender(rundir.join(root, "metrics.jsonl")).write('{"step": 3}\n')  # a resumed run keeps the old lines
  assert rundir.read_json(rundir.join(root, "config.json")) == {"train": {"steps": 8}}
  assert rundir.read_text(rundir.join(root, "metrics.jsonl")).splitlines() == [
    '{"step": 1}',
    '{"step": 2}',
    '{"step": 3}',
  ]
  assert rundir.listdir(root) == ["config.json", "metrics.jsonl", "sub"]
  assert list(rundir.walk_files(root)) == ["config.json", "metrics.jsonl", "sub/a.txt"]
  assert rundir.isdir(rundir.join(root, "sub")) and rundir.isfile(rundir.join(root, "config.json"))
  rundir.rename(rundir.join(root, "sub"), rundir.join(root, "moved"))
  assert list(rundir.walk_files(root)) == ["config.json", "metrics.jsonl", "moved/a.txt"]
  rundir.copy(rundir.join(root, "moved", "a.txt"), rundir.join(root, "b.txt"))
  assert rundir.read_text(rundir.join(root, "b.txt")) == "a"
  rundir.remove(rundir.join(root, "moved"))
  assert rundir.listdir(root) == ["b.txt", "config.json", "metrics.jsonl"]
