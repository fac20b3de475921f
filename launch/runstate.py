"""Is a run finished? Read from its run directory without importing JAX or Orbax (launchers run anywhere).

A run is finished when its final step, `train.steps` in RUN/config.json, has a committed Orbax checkpoint.
This mirrors how Orbax itself (`ffnjax.train.checkpoint.steps`) recognises a committed step:
  local disk: `checkpoints/<step>` is a directory (in-progress saves are `<step>.orbax-checkpoint-tmp-*`);
  gs://     : `checkpoints/<step>/commit_success.txt` exists (GCS has no atomic rename).
Every path is read through ffnjax.core.rundir (etils.epath; gs:// needs `pip install -e .[gcs]`), the module the
trainer writes with, so whatever store the trainer can write to, this can read.
"""

from __future__ import annotations

import json
import os
import sys

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:  # a bare checkout (not pip-installed) still finds ffnjax
  sys.path.insert(1, _REPO)

from ffnjax.core import rundir  # JAX-free


class RunStateError(RuntimeError):
  pass


def is_gcs(path: str) -> bool:
  return path.startswith("gs://")


def join(root: str, *parts: str) -> str:
  return rundir.join(root, *parts)


def final_step(run_dir: str) -> int | None:
  """`train.steps` from RUN/config.json (written when training starts), or None before that."""
  path = join(run_dir, "config.json")
  try:
    text = rundir.read_text(path, default=None)
  except ImportError as e:  # gs:// without gcsfs
    raise RunStateError(f"cannot read {path}: {e}; install the GCS support: pip install -e '.[gcs]'") from None
  if text is None:
    return None
  try:
    return int(json.loads(text)["train"]["steps"])
  except (ValueError, KeyError, TypeError) as e:
    raise RunStateError(f"{path}: no integer train.steps ({e})") from None


def has_checkpoint(run_dir: str, step: int) -> bool:
  step_dir = join(run_dir, "checkpoints", str(step))
  if rundir.is_remote(run_dir):
    return rundir.exists(join(step_dir, "commit_success.txt"))
  return rundir.isdir(step_dir)


def is_finished(run_dir: str, final: int | None = None) -> bool:
  """True when the final step (`final`, else config.json's train.steps) has a committed checkpoint."""
  final = final_step(run_dir) if final is None else final
  return final is not None and has_checkpoint(run_dir, final)
