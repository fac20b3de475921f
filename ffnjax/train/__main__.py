"""`python -m ffnjax.train --config=configs/paper.py:NAME --workdir=DIR [--config.train.steps=200]`.

Resumes from the newest complete checkpoint in --workdir. SIGTERM: finish the step, save, exit 0.
Multi-process: launched by launch/ scripts; JAX's runtime is initialised from flags or the environment.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config, e.g. configs/tiny.py:baseline_tiny_8l.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, config).")
_COORD = flags.DEFINE_string("coordinator", "", "host:port of process 0 for multi-process runs.")
_NPROC = flags.DEFINE_integer("num_processes", 0, "Number of processes (multi-process runs).")
_PID = flags.DEFINE_integer("process_id", -1, "This process's index (multi-process runs).")
_DEVICES = flags.DEFINE_integer("cpu_devices", 0, "Emulate this many CPU devices (testing sharding on CPU).")
_MAX_STEPS = flags.DEFINE_integer("max_steps", 0, "Stop after this step (the schedule still uses train.steps).")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Show the libraries' INFO logs (Orbax's saves and restores).")


def main(argv):
  del argv
  import jax

  if _DEVICES.value:
    jax.config.update("jax_num_cpu_devices", _DEVICES.value)
  from ffnjax.parallel.distributed import maybe_initialize
  maybe_initialize(_COORD.value, _NPROC.value, _PID.value)
  from ffnjax.train.checkpoint import CheckpointMismatch, CheckpointUnreadable
  from ffnjax.train.loop import NonFiniteLoss, train

  # Orbax logs every save at INFO; progress goes to stderr.
  logging.set_verbosity(logging.INFO if _VERBOSE.value else logging.WARNING)
  try:
    summary = train(_CONFIG.value, _WORKDIR.value, max_steps=_MAX_STEPS.value or None)
  except (ValueError, PermissionError, CheckpointMismatch, CheckpointUnreadable, NonFiniteLoss,
          FileNotFoundError) as e:
    sys.exit(f"ffnjax.train: {type(e).__name__}: {e}")
  logging.info("done: %s", summary)


def _flag(argv: list[str], name: str) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith(f"--{name}="):
      return arg.split("=", 1)[1]
    if arg == f"--{name}" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _say_starting(argv: list[str]) -> None:
  """The first line, before the config (whose defaults load the model, hence JAX) is read: what is starting."""
  config, workdir = _flag(argv, "config"), _flag(argv, "workdir")
  if config and workdir:
    print(f"ffnjax.train: {config} in {workdir}: loading the config and JAX, then the data and the state…",
          file=sys.stderr, flush=True)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  _say_starting(sys.argv)
  app.run(main)
