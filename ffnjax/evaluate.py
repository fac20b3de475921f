"""`python -m ffnjax.evaluate --workdir=RUN_DIR [--step=N] --tasks=lambada_openai,wikitext --data_dir=DIR|embedded`
or `python -m ffnjax.evaluate --hf_model=HF_DIR --output=results.json --tasks=...` (a Hugging Face Llama/Mistral
directory, converted in memory exactly as `ffnjax.convert` imports it).

Restores a run's parameters only (no optimizer state), scores the tasks with lm-evaluation-harness semantics and
writes RUN_DIR/eval/results.json atomically (format: ffnjax/analysis/results.py, plus "step" and per-task
"below_chance"); with --records, one JSONL line per document. Flags left unset fall back to the run's
config.eval (tasks, data_dir, limit, max_length = data.seq_len when 0, token_budget).
"""

from __future__ import annotations

import os
import sys
import time

from absl import app, flags, logging

from ffnjax.core import rundir

HF_MESH = "data=1,fsdp=-1,tensor=1"  # --hf_model's default mesh: ffnjax.convert's, so a model too big for one
# device loads, and `evaluate --hf_model` scores exactly what `convert` then `evaluate --workdir` scores

def _mesh_config(config, override: str | None):
  mesh_cfg = config.mesh.copy_and_resolve_references() if config is not None else _default_mesh()
  for item in filter(None, (override or "").split(",")):
    key, _, value = item.partition("=")
    if key.strip() not in mesh_cfg or not value.strip().lstrip("-").isdigit():
      raise ValueError(f"--mesh={override!r}: expected 'data=N,fsdp=N,tensor=N' (N an integer, -1 = the rest)")
    mesh_cfg[key.strip()] = int(value)
  return mesh_cfg


def _default_mesh():
  import ml_collections

  return ml_collections.ConfigDict(dict(data=1, fsdp=1, tensor=1))


def tokenizer_spec(config, run_dir: str | None = None) -> str:
  """data.tokenizer with an `hf:PATH` made usable: a relative PATH (what ffnjax.convert writes: `hf:tokenizer`) is
  relative to the run directory, so a moved or copied run still finds its tokenizer."""
  from ffnjax.data import tokenizers

  spec = config.data.tokenizer
  if tokenizers.parse_spec(spec)[0] == "hf" and not os.path.isabs(spec[3:]) and "://" not in spec:
    if not run_dir:
      raise ValueError(f"data.tokenizer={spec!r} is relative to its run directory; pass the run directory")
    return "hf:" + rundir.join(run_dir, spec[3:])
  return spec


def load_tokenizer(config, tokenizer_dir: str | None = None, run_dir: str | None = None):
  """The run's tokenizer (see tokenizer_spec for `hf:` paths; a `bpe:N` lives next to the training data)."""
  from ffnjax.data import tokenizers

  spec = tokenizer_spec(config, run_dir)
  if tokenizers.parse_spec(spec)[0] in ("gpt2", "hf"):  # neither lives next to the training data
    return tokenizers.get_tokenizer(spec)
  if not tokenizer_dir:
    from ffnjax.data.prepare import default_dir

    tokenizer_dir = config.data.path or default_dir(config.data)
  return tokenizers.get_tokenizer(spec, tokenizer_dir)


def load_model(workdir: str | None, hf_model: str | None, step: int | None, mesh: str | None,
               tokenizer_dir: str | None = None):
  """(params, config, plan, mesh, step, tokenizer) of a run's checkpoint (default: the newest) or of a Hugging Face
  directory converted in memory (step 0, as ffnjax.convert imports it)."""
  from ffnjax.parallel import make_mesh
  from ffnjax.train import checkpoint
  from ffnjax.train.rundir import load_config

  if bool(workdir) == bool(hf_model):
    raise ValueError("give exactly one of --workdir=RUN_DIR (an ffnjax run) or --hf_model=DIR (a Hugging Face "
                     "model directory)")
  if hf_model:
    from ffnjax.convert import load_hf
    from ffnjax.convert.rundir import IMPORT_STEP

    the_mesh = make_mesh(_mesh_config(None, f"{HF_MESH},{mesh or ''}"))
    params, config, plan = load_hf(hf_model, the_mesh)
    config.mesh.update({a: int(the_mesh.shape[a]) for a in ("data", "fsdp", "tensor")})
    return params, config, plan, the_mesh, IMPORT_STEP, load_tokenizer(config, tokenizer_dir)
  config = load_config(workdir)
  if mesh:
    the_mesh = make_mesh(_mesh_config(config, mesh))
  else:
    try:
      the_mesh = make_mesh(config.mesh)
    except ValueError as e:  # trained on another slice: evaluation only needs data parallelism
      logging.warning("the run's mesh does not fit these devices (%s); evaluating with data=-1,fsdp=1,tensor=1", e)
      the_mesh = make_mesh(_mesh_config(config, "data=-1,fsdp=1,tensor=1"))
  if step is None:
    available = checkpoint.steps(workdir)
    step = max(available) if available else None  # restore_params names the missing checkpoints
  params, config, plan = checkpoint.restore_params(workdir, step, mesh=the_mesh)
  return params, config, plan, the_mesh, step, load_tokenizer(config, tokenizer_dir, run_dir=workdir)


def run(workdir: str | None = None, *, hf_model: str | None = None, step: int | None = None,
        tasks: str | None = None, data_dir: str | None = None, limit: int | None = None,
        max_length: int | None = None, token_budget: int | None = None, output: str | None = None,
        records: str | None = None, tokenizer_dir: str | None = None, mesh: str | None = None) -> dict:
  """Evaluates a checkpoint of `workdir` (or the Hugging Face model `hf_model`); returns the results it wrote."""
  from ffnjax.analysis.results import make_results, write_results
  from ffnjax.eval import evaluator
  from ffnjax.eval.tasks import parse_tasks
  from ffnjax.model import make_scorer

  start = time.perf_counter()
  if hf_model and not output:
    raise ValueError(f"--hf_model={hf_model}: give --output=FILE for the results (a model directory is not a run)")
  if tasks is not None:
    parse_tasks(tasks)  # fail on a bad task name before loading anything
  params, config, plan, the_mesh, step, tokenizer = load_model(workdir, hf_model, step, mesh, tokenizer_dir)
  ev = config.get("eval", {})
  tasks = tasks if tasks is not None else ev.get("tasks", "")
  parse_tasks(tasks)
  data_dir = data_dir if data_dir is not None else ev.get("data_dir", evaluator.EMBEDDED)
  limit = limit if limit is not None else ev.get("limit", 0)
  max_length = max_length or ev.get("max_length", 0) or config.data.seq_len
  token_budget = token_budget or ev.get("token_budget", 0) or 16384
  data_dir = evaluator.resolve_data_dir(data_dir)
  logits_fn = make_scorer(config, plan, params, mesh=the_mesh)  # packed hidden-state scoring (engine.py)
  logging.info("evaluating %s step %s on %s (max_length %d, token budget %d)", workdir or hf_model, step, tasks,
               max_length, token_budget)
  import jax

  writer = jax.process_index() == 0
  results = evaluator.evaluate(logits_fn, tokenizer, tasks, data_dir, limit, max_length, token_budget=token_budget,
                               mesh=the_mesh, records_path=records if writer else None)
  for name, res in results.items():
    logging.info("%s: %s (n=%d, %d requests, %d shapes, %.1fs)", name,
                 ", ".join(f"{k}={v:.4g}" for k, v in res.metrics.items() if not k.endswith("_stderr")),
                 res.num_examples, res.num_requests, len(res.shapes), res.wall_time_s)
  out = make_results(config.get("name") or plan.name, plan.to_json(),
                     {name: res.to_json() for name, res in results.items()},
                     seed=config.get("seed"), wall_time_s=time.perf_counter() - start, step=int(step),
                     data_dir=data_dir, limit=int(limit), max_length=int(max_length))
  output = output or rundir.join(workdir, "eval", "results.json")
  if writer:
    write_results(output, out)
    logging.info("wrote %s", output)
  return out


def _define_flags():  # only when run as a program: importing this module (study runner, tests) adds no flags
  flags.DEFINE_string("workdir", None, "run directory (config.json, checkpoints/)")
  flags.DEFINE_string("hf_model", None, "a Hugging Face Llama/Mistral directory, converted in memory (instead of "
                      "--workdir; needs --output)")
  flags.DEFINE_integer("step", None, "checkpoint step (default: the latest)")
  flags.DEFINE_string("tasks", None, "comma-separated task names (default: config.eval.tasks)")
  flags.DEFINE_string("data_dir", None, "directory of upstream task files, or 'embedded' (default: config.eval.data_dir)")
  flags.DEFINE_integer("limit", None, "documents per task, 0 = all (default: config.eval.limit)")
  flags.DEFINE_integer("max_length", None, "model context in tokens (default: config.eval.max_length or data.seq_len)")
  flags.DEFINE_integer("token_budget", None, "tokens per scoring batch, bounds memory (default: config.eval.token_budget)")
  flags.DEFINE_string("output", None, "results file (default: RUN_DIR/eval/results.json)")
  flags.DEFINE_string("records", None, "per-document JSONL records file (default: none)")
  flags.DEFINE_string("tokenizer_dir", None, "where a bpe:N tokenizer.json lives (default: the run's data.path or the "
                      "prepared-data cache)")
  flags.DEFINE_string("mesh", None, "override the run's mesh, e.g. 'data=-1,fsdp=1,tensor=1'")
  flags.DEFINE_bool("verbose", False, "show the libraries' INFO logs (Orbax's restores)")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  logging.set_verbosity(logging.INFO if f.verbose else logging.WARNING)  # Orbax logs each restore at INFO
  try:
    run(f.workdir, hf_model=f.hf_model, step=f.step, tasks=f.tasks, data_dir=f.data_dir, limit=f.limit,
        max_length=f.max_length, token_budget=f.token_budget, output=f.output, records=f.records,
        tokenizer_dir=f.tokenizer_dir, mesh=f.mesh)
  except (ValueError, FileNotFoundError, KeyError) as e:  # bad input: one line naming it, no traceback
    print(f"ffnjax.evaluate: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
