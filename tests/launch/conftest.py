"""Helpers for the launch/ tests: a PATH with stub cluster tools (and without the real ones), fake run dirs.

Nothing here talks to a cluster or a cloud: every gcloud/sbatch/srun/scontrol is a stub that records its
arguments in $STUB_LOG. The real tools may be installed on this machine (gcloud is), so PATH is rebuilt
from scratch: the stub directory plus a directory of symlinks to the few system tools the scripts use.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LAUNCH = os.path.join(REPO, "launch")
if LAUNCH not in sys.path:
  sys.path.insert(0, LAUNCH)

_SYSTEM_DIRS = ("/usr/bin", "/bin", "/usr/sbin", "/sbin")
# What the launch scripts call besides the cluster tools.
_SYSTEM_TOOLS = (
  "bash",
  "env",
  "dirname",
  "basename",
  "cat",
  "grep",
  "mktemp",
  "rm",
  "mkdir",
  "cp",
  "git",
  "tar",
  "gzip",
  "sleep",
  "hostname",
  "stat",
  "date",
  "tail",
  "sed",
  "head",
  "kill",
  "chmod",
  "touch",
)


class Stubs:
  def __init__(self, root):
    self.bin = root / "stubs"
    self.sys = root / "sysbin"
    self.log = root / "stub.log"
    self.bin.mkdir()
    self.sys.mkdir()
    for tool in _SYSTEM_TOOLS:  # the system's own tools, from its base directories (never the caller's PATH)
      path = next((p for p in (f"{d}/{tool}" for d in _SYSTEM_DIRS) if os.access(p, os.X_OK)), None)
      if path:
        (self.sys / tool).symlink_to(path)
    self.log.write_text("")

  def add(self, name: str, body: str = "") -> None:
    """A stub that appends `name args...` to $STUB_LOG, then runs `body` (bash)."""
    script = self.bin / name
    script.write_text(f'#!/usr/bin/env bash\necho "{name} $*" >> "$STUB_LOG"\n{textwrap.dedent(body)}\n')
    script.chmod(0o755)

  def env(self, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TPU_", "JAX_COORDINATOR"))}
    env.update(PATH=f"{self.bin}:{self.sys}", STUB_LOG=str(self.log))
    for k in ("PROJECT", "ZONE", "TPU_NAME", "ACCELERATOR_TYPE", "TPU_VERSION"):
      env.pop(k, None)
    env.update({k: str(v) for k, v in extra.items()})
    return env

  def calls(self) -> list[str]:
    return [line for line in self.log.read_text().splitlines() if line]

  def run(self, argv, cwd=None, timeout=60, **env_extra) -> subprocess.CompletedProcess:
    return subprocess.run(
      [str(a) for a in argv], env=self.env(**env_extra), capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


@pytest.fixture
def stubs(tmp_path):
  return Stubs(tmp_path)


def make_run_dir(run_dir, final_step: int, checkpoint_steps=(), tmp_steps=()) -> str:
  """An orbax-looking run directory (local or gs://): config.json with train.steps, committed and in-progress
  checkpoints."""
  from ffnjax.core import rundir

  run_dir = os.fspath(run_dir)
  rundir.write_json(
    rundir.join(run_dir, "config.json"), {"name": os.path.basename(run_dir), "train": {"steps": final_step}}
  )
  for step in checkpoint_steps:
    for name in ("_CHECKPOINT_METADATA", "commit_success.txt"):
      rundir.write_text(rundir.join(run_dir, "checkpoints", str(step), name), "")
  for step in tmp_steps:  # a save interrupted by preemption
    rundir.write_text(rundir.join(run_dir, "checkpoints", f"{step}.orbax-checkpoint-tmp-1700000000", "x"), "")
  return run_dir


@pytest.fixture
def run_dir_factory():
  return make_run_dir
