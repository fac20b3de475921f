"""`python -m ffnjax.eval --workdir=RUN_DIR [--step=N] --tasks=lambada_openai,wikitext --data_dir=DIR|embedded`
or `python -m ffnjax.eval --hf_model=HF_DIR --output=results.json --tasks=...` (a Hugging Face Llama/Mistral
directory, converted in memory exactly as `ffnjax.convert` imports it).

Restores a run's parameters only (no optimizer state), scores the tasks with lm-evaluation-harness semantics and
writes RUN_DIR/eval/results.json atomically (format: ffnjax/analysis/results.py, plus "step" and per-task
"below_chance"); with --records, one JSONL line per document. Flags left unset fall back to the run's
config.eval (tasks, data_dir, limit, max_length = data.seq_len when 0, token_budget).
"""

from __future__ import annotations

from absl import flags

from ffnjax.core import cli
from ffnjax.core.errors import UsageError
from ffnjax.eval.run import run

flags.DEFINE_string("workdir", None, "run directory (config.json, checkpoints/)")
flags.DEFINE_string(
  "hf_model", None, "a Hugging Face Llama/Mistral directory, converted in memory (instead of --workdir; needs --output)"
)
flags.DEFINE_integer("step", None, "checkpoint step (default: the latest)", lower_bound=0)
flags.DEFINE_string("tasks", None, "comma-separated task names (default: config.eval.tasks)")
flags.DEFINE_string("data_dir", None, "directory of upstream task files, or 'embedded' (default: config.eval.data_dir)")
flags.DEFINE_integer("limit", None, "documents per task, 0 = all (default: config.eval.limit)", lower_bound=0)
flags.DEFINE_integer(
  "max_length", None, "model context in tokens (default: config.eval.max_length or data.seq_len)", lower_bound=1
)
flags.DEFINE_integer(
  "token_budget", None, "tokens per scoring batch, bounds memory (default: config.eval.token_budget)", lower_bound=1
)
flags.DEFINE_string("output", None, "results file (default: RUN_DIR/eval/results.json)")
flags.DEFINE_string("records", None, "per-document JSONL records file (default: none)")
flags.DEFINE_string(
  "tokenizer_dir", None, "where a bpe:N tokenizer.json lives (default: the run's data.path or the prepared-data cache)"
)
cli.define_mesh("mesh", None, "override the run's mesh.")


def main(argv):
  if len(argv) > 1:
    raise UsageError(f"unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  run(
    f.workdir,
    hf_model=f.hf_model,
    step=f.step,
    tasks=f.tasks,
    data_dir=f.data_dir,
    limit=f.limit,
    max_length=f.max_length,
    token_budget=f.token_budget,
    output=f.output,
    records=f.records,
    tokenizer_dir=f.tokenizer_dir,
    mesh=f.mesh,
  )


if __name__ == "__main__":
  cli.run(main, prog="ffnjax.eval", user_errors=(ValueError, FileNotFoundError, KeyError))
