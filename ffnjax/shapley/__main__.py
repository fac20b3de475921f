"""`python -m ffnjax.shapley --checkpoint=RUN_DIR|--hf_model=DIR --tasks=... --method=block|exact|permutation
--level=3 --limit=1000 --output=DIR`

One game per task, as arXiv 2409.14381 (default: its six tasks, 1,000 examples each, acc_norm where defined else
acc). Per task: single-sub-layer ablation (it gives the cornerstones), then the chosen Shapley estimator. Every
evaluated coalition (each task's value and per-example scores) is appended to OUTPUT/coalitions.jsonl, so an
interrupted run resumes where it stopped. Writes OUTPUT/shapley.json (per task: values, drops, cornerstones,
shares; then shares averaged over tasks and the task-mean summary) and figures (one panel per task plus the mean).
Extensions (ours, docs/method.md): --game=task_mean, --perplexity_value.
"""

from __future__ import annotations

from absl import flags, logging

from ffnjax.core import cli
from ffnjax.core.errors import UsageError
from ffnjax.shapley.pertask import GAMES, PAPER_LIMIT, PAPER_TASKS
from ffnjax.shapley.run import METHODS, run

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "An ffnjax run directory.")
_HF_MODEL = flags.DEFINE_string("hf_model", None, "A local Hugging Face Llama/Mistral directory.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).", lower_bound=0)
_TASKS = flags.DEFINE_string("tasks", ",".join(PAPER_TASKS), "Comma-separated tasks; one game per task.")
_DATA_DIR = flags.DEFINE_string("data_dir", "embedded", "Task data directory, or 'embedded'.")
_METHOD = flags.DEFINE_enum("method", "block", METHODS, "Shapley estimator.")
_LEVEL = flags.DEFINE_integer("level", 3, "Block estimator level K (blocks of 1..K-1 adjacent players).",
                                    lower_bound=1)
_PERMUTATIONS = flags.DEFINE_integer("permutations", 64, "Permutations for --method=permutation.",
                                           lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Permutation sampling seed.")
_LIMIT = flags.DEFINE_integer("limit", PAPER_LIMIT, "Examples per task (the paper: 1000).", lower_bound=0)
_MAX_LENGTH = flags.DEFINE_integer("max_length", 0, "Scoring length (0 = the model's data.seq_len).",
                                          lower_bound=0)
_TOKEN_BUDGET = flags.DEFINE_integer("token_budget", 16384, "Tokens per scoring batch.", lower_bound=1)
_OUTPUT = flags.DEFINE_string("output", None, "Output directory.")
_CHANCE_TOL = flags.DEFINE_float("chance_tolerance", 0.02, "A removal leaving a task at most this far above its "
                                  "chance level is a collapse (cornerstone); written into shapley.json.")
_GAME = flags.DEFINE_enum("game", "per_task", GAMES, "per_task: the paper's reading. task_mean (our extension): also "
                          "read cornerstones and shares from the game on the task-mean value.")
_PERPLEXITY_VALUE = flags.DEFINE_bool("perplexity_value", False, "Admit tasks without an accuracy metric "
                                      "(wikitext) with -log(perplexity) as their value (our extension).")


def main(argv):
  if len(argv) > 1:
    raise UsageError(f"unexpected arguments {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  if not _OUTPUT.value:
    raise UsageError("--output=DIR is required")
  result = run(_CHECKPOINT.value, _HF_MODEL.value, _STEP.value, _TASKS.value, _DATA_DIR.value, _METHOD.value,
               _LEVEL.value, _PERMUTATIONS.value, _SEED.value, _LIMIT.value, _MAX_LENGTH.value,
               _TOKEN_BUDGET.value, _OUTPUT.value, _CHANCE_TOL.value, _GAME.value, _PERPLEXITY_VALUE.value)
  print(f"{result['method']} Shapley values of {len(result['players'])} players on {len(result['tasks'])} task(s) "
        f"({result['coalitions_evaluated']} coalitions evaluated, {result['compilations']} compilation(s))")
  tol = result["cornerstone_rule"]["tolerance"]
  for name, entry in result["tasks"].items():
    if entry["cornerstones_defined"]:
      corner = ", ".join(entry["cornerstones"]) or "none"
    elif entry["chance"] is None:
      corner = "undefined (the metric has no chance level)"
    else:
      corner = f"undefined (v(N) = {entry['v_full']:.3f} is not above chance {entry['chance']:.3g} + {tol})"
    print(f"  {name}: {entry['metric']} v(N) = {entry['v_full']:.4f} (n = {entry['num_examples']}); "
          f"cornerstones (removal -> chance + {tol}): {corner}")
  print(f"wrote {_OUTPUT.value}/shapley.json")


if __name__ == "__main__":
  cli.run(main, prog="ffnjax.shapley", user_errors=(ValueError, FileNotFoundError, KeyError))
