"""The trainer as steps + hooks, the metric writers (Weights & Biases offline), and the progress figures."""

import glob
import json
import math
import os
import pty
import select
import struct
import subprocess
import sys
import time

import pytest

from ffnjax.train.loop import Trainer, train
from ffnjax.train.metrics import Pace, progress_line

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class FakeClock:
  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


def test_tokens_per_s_and_eta_leave_out_the_compile_step():
  clock = FakeClock()
  pace = Pace(total=101, tokens_per_step=1000, clock=clock)
  clock.now = 30.0  # step 1 compiles: 30 s
  assert pace.window(1) == {} and math.isnan(pace.eta(1))
  pace.compiled(1)
  assert pace.window(1) == {} and math.isnan(pace.eta(1))  # no step has run after the compile yet
  clock.now += 10 * 0.5  # steps 2..11 at 0.5 s each
  assert pace.window(11) == {"tokens_per_s": 2000.0, "step_time_s": 0.5}
  assert pace.eta(11) == pytest.approx(90 * 0.5)  # with the compile counted it would be 35 / 11 * 90 = 286 s
  clock.now += 7.0  # a validation pass: left out of the tokens/s window ...
  pace.exclude(7.0)
  clock.now += 2 * 0.25  # ... then steps 12, 13 at 0.25 s
  assert pace.window(13) == {"tokens_per_s": 4000.0, "step_time_s": 0.25}
  assert pace.eta(13) == pytest.approx((5.0 + 7.0 + 0.5) / 12 * 88)  # the ETA keeps recurring work such as validation
  line = progress_line(13, 101, {"loss": 3.0, "lr": 1e-3, "tokens_per_s": 4000.0}, pace.eta(13))
  assert line == "step 13/101 | loss 3.0000 | lr 1.00e-03 | 4.0k tok/s | ETA 1m31s"


def test_hooks_run_every_n_steps_in_order_and_stop_ends_the_loop(tmp_path, make_config):
  trainer = Trainer(make_config(steps=8), str(tmp_path / "run"), log=False)
  calls = []
  trainer.add_hook(lambda info: calls.append(("every2", info.step, info.final)), every=2)
  trainer.add_hook(lambda info: info.stop() if info.step == 3 else None)
  trainer.add_hook(lambda info: calls.append(("at1", info.step, info.final)), every=100, at=[1], final=False)
  trainer.add_hook(lambda info: calls.append(("last", info.step, info.final)), every=100)
  infos = list(trainer.training_steps())
  assert [i.step for i in infos] == [1, 2, 3]
  assert [i.compile_step for i in infos] == [True, False, False]
  assert calls == [("at1", 1, False), ("every2", 2, False), ("last", 3, True)]  # every2 ran before stop() at 3
  assert math.isfinite(infos[-1].loss) and infos[-1].tokens == 8 * 32 and not infos[-1].preempted


def _wandb_records(run_file):
  """The records of a W&B `.wandb` file (LevelDB log format: 32 KiB blocks of crc32, length, type, data)."""
  from wandb.proto import wandb_internal_pb2

  raw = open(run_file, "rb").read()
  block, pos, part, records = 32768, 7, b"", []  # a 7-byte header (":W&B", version)
  while pos + 7 <= len(raw):
    if block - pos % block < 7:  # a block's trailer too short for a record header is padding
      pos += block - pos % block
      continue
    _, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
    if kind == 0 or pos + 7 + length > len(raw):  # the end (or a record still being written)
      break
    part += raw[pos + 7 : pos + 7 + length]
    pos += 7 + length
    if kind in (1, 4):  # FULL or LAST: a record is complete
      record = wandb_internal_pb2.Record()
      record.ParseFromString(part)
      records.append(record)
      part = b""
  return records


def test_wandb_offline_run_holds_the_logged_scalars(tmp_path, make_config, monkeypatch):
  for var, value in {
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "WANDB_CONFIG_DIR": tmp_path / "wb-config",
    "WANDB_CACHE_DIR": tmp_path / "wb-cache",
    "WANDB_DATA_DIR": tmp_path / "wb-data",
  }.items():
    monkeypatch.setenv(var, str(value))
  workdir = str(tmp_path / "run")
  train(make_config(steps=4, log_every=2, wandb_project="ffnjax-test"), workdir, log=False)
  run_files = glob.glob(os.path.join(workdir, "wandb", "offline-run-*", "run-*.wandb"))
  assert len(run_files) == 1, run_files
  deadline = time.time() + 60  # W&B's service process writes the file after finish() returns: wait for its end
  records = _wandb_records(run_files[0])
  while not any(r.WhichOneof("record_type") == "exit" for r in records):
    assert time.time() < deadline, "the W&B run file was not completed (no exit record)"
    time.sleep(0.2)
    records = _wandb_records(run_files[0])
  history = {}
  for r in records:
    if r.WhichOneof("record_type") == "history":
      row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
      history[row["_step"]] = row
  logged = {row["step"]: row for row in map(json.loads, open(os.path.join(workdir, "metrics.jsonl")))}
  assert sorted(history) == sorted(logged) == [2, 4]
  for step, row in logged.items():
    for key in ("loss", "grad_norm", "lr", "tokens_per_s"):
      assert history[step][key] == pytest.approx(row[key], rel=1e-12), (step, key)
  run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
  assert run.project == "ffnjax-test" and run.display_name == "middle_50_tiny_4l"


def test_wandb_project_without_wandb_is_refused_before_anything_runs(make_config, monkeypatch):
  from ffnjax.train import experiment

  experiment.validate(make_config(wandb_project="p"))
  monkeypatch.setitem(sys.modules, "wandb", None)  # as if the [wandb] extra were not installed
  with pytest.raises(ValueError, match=r"train.wandb_project='p' needs Weights & Biases: pip install -e '.\[wandb\]'"):
    experiment.validate(make_config(wandb_project="p"))


def test_first_line_comes_before_jax_loads(tmp_path):
  """On a terminal (a pseudo-terminal here) the first line names what starts before the config and JAX load."""
  argv = [
    sys.executable,
    "-m",
    "ffnjax.train",
    "--config=configs/tiny.py:middle_50_tiny_4l",
    f"--workdir={tmp_path / 'run'}",
  ]
  leader, follower = pty.openpty()
  start = time.perf_counter()
  proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=follower)
  os.close(follower)
  text = b""
  try:
    while b"\n" not in text and select.select([leader], [], [], 60)[0]:
      text += os.read(leader, 4096)
    seconds = time.perf_counter() - start
  finally:
    proc.kill()
    proc.wait()
    os.close(leader)
  line = text.decode().splitlines()[0] if text else ""
  assert line.startswith(f"ffnjax.train: configs/tiny.py:middle_50_tiny_4l in {tmp_path / 'run'}: loading"), line
  assert seconds < 8, f"first line after {seconds:.1f} s (2 s on a quiet machine; this bound allows for a loaded one)"
