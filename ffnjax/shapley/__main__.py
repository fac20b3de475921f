"""`python -m ffnjax.shapley --checkpoint=RUN_DIR|--hf_model=DIR --tasks=... --method=block|exact|permutation
--level=3 --limit=1000 --output=DIR`

One game per task, as arXiv 2409.14381 (default: its six tasks, 1,000 examples each, acc_norm where defined else
acc). Per task: single-sub-layer ablation (it gives the cornerstones), then the chosen Shapley estimator. Every
evaluated coalition (each task's value and per-example scores) is appended to OUTPUT/coalitions.jsonl, so an
interrupted run resumes where it stopped. Writes OUTPUT/shapley.json (per task: values, drops, cornerstones,
shares; then shares averaged over tasks and the task-mean summary) and figures (one panel per task plus the mean).
Every value, drop and share carries a 95 % bootstrap interval over the task's examples (--resamples,
--bootstrap_seed); a cornerstone needs its drop's interval to exclude 0. OUTPUT/shapley.md holds the tables.
Extensions (ours, docs/method.md): --game=task_mean, --perplexity_value, --value=gold_ll|gold_ll_norm,
--target_ci (a pilot sizes the run: examples per task for that half-width; it stops there unless
--continue_after_pilot), --player_layers (a sub-game of some layers' sub-layers).
"""

from __future__ import annotations

from absl import flags, logging

from ffnjax.core import bootstrap, cli
from ffnjax.core.errors import UsageError
from ffnjax.shapley import summary
from ffnjax.shapley.pertask import GAMES, PAPER_LIMIT, PAPER_TASKS, VALUES
from ffnjax.shapley.run import METHODS, run

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "An ffnjax run directory.")
_HF_MODEL = flags.DEFINE_string("hf_model", None, "A local Hugging Face Llama/Mistral directory.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).", lower_bound=0)
_TASKS = flags.DEFINE_string("tasks", ",".join(PAPER_TASKS), "Comma-separated tasks; one game per task.")
_DATA_DIR = flags.DEFINE_string("data_dir", "embedded", "Task data directory, or 'embedded'.")
_METHOD = flags.DEFINE_enum("method", "block", METHODS, "Shapley estimator.")
_LEVEL = flags.DEFINE_integer("level", 3, "Block estimator level K (blocks of 1..K-1 adjacent players).", lower_bound=1)
_PERMUTATIONS = flags.DEFINE_integer("permutations", 64, "Permutations for --method=permutation.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Permutation sampling seed.")
_LIMIT = flags.DEFINE_integer("limit", PAPER_LIMIT, "Examples per task (the paper: 1000).", lower_bound=0)
_MAX_LENGTH = flags.DEFINE_integer("max_length", 0, "Scoring length (0 = the model's data.seq_len).", lower_bound=0)
_TOKEN_BUDGET = flags.DEFINE_integer("token_budget", 16384, "Tokens per scoring batch.", lower_bound=1)
_OUTPUT = flags.DEFINE_string("output", None, "Output directory.")
_CHANCE_TOL = flags.DEFINE_float(
  "chance_tolerance",
  0.02,
  "A removal leaving a task at most this far above its "
  "chance level is a collapse (cornerstone); written into shapley.json.",
)
_GAME = flags.DEFINE_enum(
  "game",
  "per_task",
  GAMES,
  "per_task: the paper's reading. task_mean (our extension): also "
  "read cornerstones and shares from the game on the task-mean value.",
)
_PERPLEXITY_VALUE = flags.DEFINE_bool(
  "perplexity_value",
  False,
  "Admit tasks without an accuracy metric (wikitext) with -log(perplexity) as their value (our extension).",
)
_VALUE = flags.DEFINE_enum(
  "value",
  "acc",
  VALUES,
  "acc: the paper's value (acc_norm where defined, else acc). "
  "gold_ll: mean log-likelihood of the gold continuation; gold_ll_norm: per token, averaged "
  "over examples (ours: lower-noise values; cornerstones still come from accuracy).",
)
_RESAMPLES = flags.DEFINE_integer(
  "resamples", bootstrap.RESAMPLES, "Bootstrap resamples of each task's examples (intervals).", lower_bound=10
)
_BOOT_SEED = flags.DEFINE_integer(
  "bootstrap_seed", bootstrap.SEED, "Seed of the bootstrap resamples (intervals are stable for a fixed seed)."
)
_PLAYER_LAYERS = flags.DEFINE_string(
  "player_layers",
  None,
  "Play only these layers' sub-layers (1-based: '1-2', "
  "'1,3'); every other sub-layer stays kept (ours: a cheaper sub-game).",
)
_CHANCE = flags.DEFINE_string(
  "chance",
  None,
  "Chance levels for open-vocabulary accuracy tasks, which have none: 'lambada_openai=0,zsre=0' (ours: a "
  "guess over the vocabulary is right with probability ~1/vocab), so their cornerstones can be read.",
)
_TARGET_CI = flags.DEFINE_float(
  "target_ci",
  None,
  "Wanted half-width of the 95 % intervals of the single-ablation "
  "drops: a pilot prints the examples each task needs, then stops (see "
  "--continue_after_pilot).",
)
_PILOT_LIMIT = flags.DEFINE_integer(
  "pilot_limit",
  50,
  "Examples per task of the --target_ci pilot (unused when OUTPUT's cache already holds the single ablation).",
  lower_bound=2,
)
_CONTINUE = flags.DEFINE_bool(
  "continue_after_pilot", False, "With --target_ci: run the full analysis after the pilot instead of stopping."
)


def main(argv):
  if len(argv) > 1:
    raise UsageError(f"unexpected arguments {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  if not _OUTPUT.value:
    raise UsageError("--output=DIR is required")
  result = run(
    _CHECKPOINT.value,
    _HF_MODEL.value,
    _STEP.value,
    _TASKS.value,
    _DATA_DIR.value,
    _METHOD.value,
    _LEVEL.value,
    _PERMUTATIONS.value,
    _SEED.value,
    _LIMIT.value,
    _MAX_LENGTH.value,
    _TOKEN_BUDGET.value,
    _OUTPUT.value,
    _CHANCE_TOL.value,
    _GAME.value,
    _PERPLEXITY_VALUE.value,
    value=_VALUE.value,
    resamples=_RESAMPLES.value,
    bootstrap_seed=_BOOT_SEED.value,
    target_ci=_TARGET_CI.value,
    pilot_limit=_PILOT_LIMIT.value,
    continue_after_pilot=_CONTINUE.value,
    player_layers=_PLAYER_LAYERS.value,
    chance=_CHANCE.value,
  )
  if "pilot" in result:
    _print_pilot(result["pilot"])
  if result.get("stopped_after_pilot"):
    print(
      f"stopped after the pilot (wrote {_OUTPUT.value}/pilot.json); pass --limit=N --continue_after_pilot to "
      f"run the analysis"
    )
    return
  print(
    f"{result['method']} Shapley values of {len(result['players'])} players on {len(result['tasks'])} task(s) "
    f"({result['coalitions_evaluated']} coalitions evaluated, {result['compilations']} compilation(s)); "
    f"value [95 % interval], {result['intervals']['resamples']} bootstrap resamples of the examples"
  )
  for line in summary.summary_lines(result):
    print(line)
  print(
    f"wrote {_OUTPUT.value}/shapley.json and {_OUTPUT.value}/shapley.md (per player: drop, value, share; "
    f"'{summary.COVERS}' marks an interval that covers 0)"
  )


def _print_pilot(pilot: dict) -> None:
  w = pilot["target_half_width"]
  print(f"examples needed for 95 % intervals of half-width {w:g} (from {pilot['from']}):")
  for name, t in pilot["tasks"].items():
    print(
      f"  {name} ({t['metric']}, n = {t['num_examples']}): single-ablation drop half-width median "
      f"{t['drop_half_width_median']:.4f}, max {t['drop_half_width_max']:.4f} ({t['widest']}) -> "
      f"{t['examples_for_median_drop']} examples for the median drop, {t['examples_for_every_drop']} for every "
      f"drop, {t['examples_for_v_full']} for v(N)"
    )


if __name__ == "__main__":
  cli.run(main, prog="ffnjax.shapley", user_errors=(ValueError, FileNotFoundError, KeyError))
