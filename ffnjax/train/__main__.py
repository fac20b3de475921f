"""`python -m ffnjax.train --config=configs/paper.py:NAME --workdir=DIR [--config.train.steps=200]`.

Resumes from the newest complete checkpoint in --workdir. SIGTERM: finish the step, save, exit 0.
Multi-process: launched by launch/ scripts; JAX's runtime is initialised from flags or the environment.
"""

from __future__ import annotations

import sys

from absl import flags, logging
from ml_collections import config_flags

from ffnjax.core import cli
from ffnjax.core.errors import FfnjaxError, UsageError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config, e.g. configs/tiny.py:baseline_tiny_8l.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, config).")
_COORD = flags.DEFINE_string("coordinator", "", "host:port of process 0 for multi-process runs.")
_NPROC = flags.DEFINE_integer("num_processes", 0, "Number of processes (multi-process runs).", lower_bound=0)
_PID = flags.DEFINE_integer("process_id", -1, "This process's index (multi-process runs).")
_DEVICES = flags.DEFINE_integer(
  "cpu_devices", 0, "Emulate this many CPU devices (testing sharding on CPU).", lower_bound=0
)
_MAX_STEPS = flags.DEFINE_integer(
  "max_steps", 0, "Stop after this step (the schedule still uses train.steps).", lower_bound=0
)


def main(argv):
  if len(argv) > 1:
    raise UsageError(f"unexpected arguments {argv[1:]}")
  # JAX is imported after flag parsing: --cpu_devices must be set before its backends start, and a flag or
  # config error is reported before the seconds JAX and Orbax take to import.
  import jax

  if _DEVICES.value:
    jax.config.update("jax_num_cpu_devices", _DEVICES.value)
  from ffnjax.parallel.distributed import maybe_initialize

  maybe_initialize(_COORD.value, _NPROC.value, _PID.value)
  from ffnjax.train.loop import NonFiniteLoss, train

  try:
    summary = train(_CONFIG.value, _WORKDIR.value, max_steps=_MAX_STEPS.value or None)
  except NonFiniteLoss as e:  # not bad input, but its message says what to change (nan_policy, lr): one line too
    raise FfnjaxError(f"{type(e).__name__}: {e}") from e
  logging.info("done: %s", summary)


def _say_starting(argv: list[str]) -> None:
  """The first line, at once: what is starting. Reading the config takes seconds (its defaults load the model, hence
  JAX), so this comes before it, from argv; on a terminal only, so piped stderr (job logs, bad-input checks) starts
  with the trainer's own lines or the one-line error."""
  config, workdir = cli.flag_value(argv, "config"), cli.flag_value(argv, "workdir")
  if config and workdir and sys.stderr.isatty():
    print(
      f"ffnjax.train: {config} in {workdir}: loading the config and JAX, then the data and the state…",
      file=sys.stderr,
      flush=True,
    )


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  _say_starting(sys.argv)
  cli.run(main, prog="ffnjax.train", user_errors=(ValueError, PermissionError, FileNotFoundError))
