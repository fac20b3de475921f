"""`python -m ffnjax.analysis --study=DIR` or `--table=FILE.csv|json --output=DIR`.

Writes report.md (RI tables, top-k, layer importance, runs and configs) and figures/ (PNG + SVG): RI against
ratio, layerwise importance, training-loss curves (studies only). The average RI's task set is `--tasks`: a
preset (table1, table2) or `task:metric,...`.
"""

from __future__ import annotations

from absl import flags

from ffnjax.analysis import load_table, write_report
from ffnjax.core import cli
from ffnjax.core.errors import UsageError

_STUDY = flags.DEFINE_string(
  "study", None, "Study directory: STUDY/<run>/eval/results.json (+ plan.json, config.json)."
)
_TABLE = flags.DEFINE_string(
  "table",
  None,
  "A results table: CSV or JSON with columns model, position, ratio, seed, "
  "task, metric, value [, num_layers, chance, higher_is_better, stderr, family].",
)
_OUTPUT = flags.DEFINE_string("output", None, "Output directory (default: the study directory; required with --table).")
_TASKS = flags.DEFINE_string("tasks", "table1", "Task set of the average RI: table1 | table2 | 'task:metric,...'.")
_CHANCE = flags.DEFINE_enum(
  "chance_rule",
  "family",
  ["family", "model"],
  "family: drop a task for a whole baseline family when the baseline or any model of it is "
  "not above chance (the paper's rule); model: only from that model's comparison.",
)
_TOP_K = flags.DEFINE_integer("top_k", 5, "Rows of the top-configurations tables.", lower_bound=1)
_RESAMPLES = flags.DEFINE_integer(
  "resamples", 1000, "Bootstrap resamples of the evaluation documents (intervals).", lower_bound=10
)
_BOOT_SEED = flags.DEFINE_integer(
  "bootstrap_seed", 0, "Seed of the bootstrap resamples (intervals are stable for a fixed seed)."
)


def main(argv):
  if len(argv) > 1:
    raise UsageError(f"unexpected arguments {argv[1:]}")
  if (_STUDY.value is None) == (_TABLE.value is None):
    raise UsageError("give exactly one of --study=DIR or --table=FILE.csv|json")
  if _TABLE.value and not _OUTPUT.value:
    raise UsageError("--table needs --output=DIR")
  if _STUDY.value:
    path = write_report(
      _STUDY.value,
      output_dir=_OUTPUT.value,
      tasks=_TASKS.value,
      top_k=_TOP_K.value,
      chance_rule=_CHANCE.value,
      resamples=_RESAMPLES.value,
      seed=_BOOT_SEED.value,
    )
  else:
    path = write_report(
      table=load_table(_TABLE.value),
      output_dir=_OUTPUT.value,
      tasks=_TASKS.value,
      top_k=_TOP_K.value,
      chance_rule=_CHANCE.value,
    )
  print(path)


if __name__ == "__main__":
  cli.run(main, prog="ffnjax.analysis")
