"""`python -m ffnjax.study --config=configs/study.py:tiny --workdir=DIR`: the placement study, end to end.

Trains the baseline and every grid point, evaluates each, then writes the analysis (report.md, figures); see
ffnjax/study/runner.py. Resumable: rerun the same command after an interruption.
"""

from __future__ import annotations

import sys

from absl import flags, logging
from ml_collections import config_flags

from ffnjax.core import cli
from ffnjax.core.errors import UsageError
from ffnjax.study.runner import run_study

_STUDY = config_flags.DEFINE_config_file("config", None, "Study config, e.g. configs/study.py:tiny.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Study directory: one run directory per grid point.")


def main(argv):
  if len(argv) > 1:
    raise UsageError(f"unexpected arguments {argv[1:]}")
  logging.set_verbosity(logging.ERROR)  # Orbax warns on every read-only restore; progress is printed
  report = run_study(_STUDY.value, _WORKDIR.value, log=lambda m: print(m, file=sys.stderr, flush=True))
  if report:
    print(f"report: {report}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  cli.run(main, prog="ffnjax.study", user_errors=(ValueError, FileNotFoundError, PermissionError))
