"""The distributed path: 2 local processes (JAX multi-controller runtime, gloo CPU collectives) == 1 process.

Each process emulates 4 CPU devices, so the global mesh (data 2 x fsdp 2 x tensor 2) is the same 8 devices as
the one-process run; each process loads its half of the global batch. Real processes on localhost (a free port
from binding port 0), always killed on failure or timeout.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = [
  "--config=configs/tiny.py:middle_50_tiny_4l",
  "--config.model.d_model=32",
  "--config.model.d_ff=64",
  "--config.model.num_heads=2",
  "--config.model.ffn_pad_multiple=32",
  "--config.data.seq_len=32",
  "--config.train.global_batch=8",
  "--config.train.steps=4",
  "--config.train.warmup_steps=1",
  "--config.train.log_every=1",
  "--config.train.checkpoint_every=4",
  "--config.train.async_checkpoints=False",
]
FLAGS = TINY + ["--config.mesh.data=2", "--config.mesh.fsdp=2", "--config.mesh.tensor=2"]
TOLERANCE = 1e-5  # same global mesh, batch and program; only the order of fp32 cross-process sums may differ


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def env():
  return {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | {"PYTHONUNBUFFERED": "1", "JAX_PLATFORMS": "cpu"}


def run_two(flags, workdir, timeout=300):
  """Starts process 0 and 1 of a 2-process run; returns ([returncodes], [stderr]); kills both on any failure."""
  port = free_port()
  procs = [
    subprocess.Popen(
      [
        sys.executable,
        "-m",
        "ffnjax.train",
        *flags,
        f"--workdir={workdir}",
        "--cpu_devices=4",
        f"--coordinator=127.0.0.1:{port}",
        "--num_processes=2",
        f"--process_id={i}",
      ],
      cwd=REPO,
      env=env(),
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
      text=True,
    )
    for i in range(2)
  ]
  try:
    errors = [p.communicate(timeout=timeout)[1] for p in procs]
  finally:
    for p in procs:  # never leave a process behind, whatever happened
      if p.poll() is None:
        p.kill()
        p.wait()
  return [p.returncode for p in procs], errors


def metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_scaleout_two_processes_equal_one_process(tmp_path):
  one, two = str(tmp_path / "one"), str(tmp_path / "two")
  single = subprocess.run(
    [sys.executable, "-m", "ffnjax.train", *FLAGS, f"--workdir={one}", "--cpu_devices=8"],
    cwd=REPO,
    env=env(),
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert single.returncode == 0, single.stderr[-2000:]
  codes, errors = run_two(FLAGS, two)
  assert codes == [0, 0], errors[0][-2000:] + errors[1][-2000:]

  a, b = metrics(one), metrics(two)
  assert [r["step"] for r in b] == [1, 2, 3, 4]  # one line per step: only process 0 writes metrics
  assert [r["step"] for r in a] == [1, 2, 3, 4]
  diffs = [abs(x["loss"] - y["loss"]) for x, y in zip(a, b)]
  print(
    f"losses 1 process {[r['loss'] for r in a]}\n       2 processes {[r['loss'] for r in b]}\n"
    f"max |diff| = {max(diffs):.3g}"
  )
  assert max(diffs) < TOLERANCE, diffs
  assert a[-1]["loss"] < a[0]["loss"]  # it trained
  assert os.path.isfile(os.path.join(two, "config.json"))  # written by process 0
  assert os.path.isdir(os.path.join(two, "checkpoints", "4"))  # saved by both (Orbax coordinates)


@pytest.mark.parametrize(
  "mesh,message",
  [
    (["--config.mesh.data=16", "--config.mesh.fsdp=1", "--config.mesh.tensor=1"], "needs 16 devices but only 8"),
    # only the tensor axis spans the processes: each would feed different rows to a replicated batch
    (["--config.mesh.data=1", "--config.mesh.fsdp=1", "--config.mesh.tensor=8"], "must be split across processes"),
  ],
)
def test_scaleout_two_process_errors_are_clear(tmp_path, mesh, message):
  codes, errors = run_two(TINY + mesh, str(tmp_path / "run"), timeout=180)
  assert codes[0] != 0 and codes[1] != 0
  for err in errors:
    assert message in err, err[-2000:]
