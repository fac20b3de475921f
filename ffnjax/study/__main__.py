"""`python -m ffnjax.study --config=configs/study.py:tiny --workdir=DIR`: the placement study, end to end.

Trains the baseline and every grid point, evaluates each, then writes the analysis (report.md, figures); see
ffnjax/study/runner.py. Resumable: rerun the same command after an interruption.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from ffnjax.core import studygrid
from ffnjax.study.runner import run_study

_STUDY = config_flags.DEFINE_config_file("config", None, "Study config, e.g. configs/study.py:tiny.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Study directory: one run directory per grid point.")


def main(argv):
  del argv
  logging.set_verbosity(logging.ERROR)  # Orbax warns on every read-only restore; progress is printed
  try:
    report = run_study(_STUDY.value, _WORKDIR.value, log=lambda m: print(m, file=sys.stderr, flush=True))
  except studygrid.StudyError as e:
    print(f"ffnjax.study: {e}", file=sys.stderr)
    sys.exit(2)
  except (ValueError, FileNotFoundError, PermissionError) as e:
    print(f"ffnjax.study: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(2)
  if report:
    print(f"report: {report}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)
