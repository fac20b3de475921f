"""Evaluating a checkpoint: restore a run's parameters (or a Hugging Face directory converted in memory, exactly as
`ffnjax.convert` imports it), score the tasks with lm-evaluation-harness semantics, write the results.

Only the parameters are restored (no optimizer state); RUN_DIR/eval/results.json is written atomically (format:
ffnjax/analysis/results.py, plus "step" and per-task "below_chance"); with `records`, one JSONL line per
document. Arguments left unset fall back to the run's config.eval (tasks, data_dir, limit, max_length =
data.seq_len when 0, token_budget). `python -m ffnjax.eval` is the command line (__main__.py).
"""

from __future__ import annotations

import time

import jax
from absl import logging

from ffnjax.analysis.results import make_results, write_results
from ffnjax.convert import load_hf
from ffnjax.convert.runs import IMPORT_STEP
from ffnjax.core import meshspec, rundir
from ffnjax.eval import evaluator
from ffnjax.eval.tasks import parse_tasks
from ffnjax.model import make_scorer
from ffnjax.parallel import make_mesh
from ffnjax.train import checkpoint
from ffnjax.train.runconfig import load_config, load_tokenizer

HF_MESH = "data:1,fsdp:-1,tensor:1"  # --hf_model's default mesh: ffnjax.convert's, so a model too big for one
# device loads, and `eval --hf_model` scores exactly what `convert` then `eval --workdir` scores


def load_model(
  workdir: str | None, hf_model: str | None, step: int | None, mesh: str | None, tokenizer_dir: str | None = None
):
  """(params, config, plan, mesh, step, tokenizer) of a run's checkpoint (default: the newest) or of a Hugging Face
  directory converted in memory (step 0, as ffnjax.convert imports it)."""
  if bool(workdir) == bool(hf_model):
    raise ValueError(
      "give exactly one of --workdir=RUN_DIR (an ffnjax run) or --hf_model=DIR (a Hugging Face model directory)"
    )
  if hf_model:
    the_mesh = make_mesh(meshspec.parse(mesh or "", base=meshspec.parse(HF_MESH)))
    params, config, plan = load_hf(hf_model, the_mesh)
    config.mesh.update({a: int(the_mesh.shape[a]) for a in ("data", "fsdp", "tensor")})
    return params, config, plan, the_mesh, IMPORT_STEP, load_tokenizer(config, tokenizer_dir)
  config = load_config(workdir)
  if mesh:
    the_mesh = make_mesh(meshspec.parse(mesh, base=config.mesh))
  else:
    try:
      the_mesh = make_mesh(config.mesh)
    except ValueError as e:  # trained on another slice: evaluation only needs data parallelism
      logging.warning("the run's mesh does not fit these devices (%s); evaluating with data:-1,fsdp:1,tensor:1", e)
      the_mesh = make_mesh(meshspec.parse("data:-1,fsdp:1,tensor:1"))
  if step is None:
    available = checkpoint.steps(workdir)
    step = max(available) if available else None  # restore_params names the missing checkpoints
  params, config, plan = checkpoint.restore_params(workdir, step, mesh=the_mesh)
  return params, config, plan, the_mesh, step, load_tokenizer(config, tokenizer_dir, run_dir=workdir)


def run(
  workdir: str | None = None,
  *,
  hf_model: str | None = None,
  step: int | None = None,
  tasks: str | None = None,
  data_dir: str | None = None,
  limit: int | None = None,
  max_length: int | None = None,
  token_budget: int | None = None,
  output: str | None = None,
  records: str | None = None,
  tokenizer_dir: str | None = None,
  mesh: str | None = None,
) -> dict:
  """Evaluates a checkpoint of `workdir` (or the Hugging Face model `hf_model`); returns the results it wrote."""
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
  logging.info(
    "evaluating %s step %s on %s (max_length %d, token budget %d)",
    workdir or hf_model,
    step,
    tasks,
    max_length,
    token_budget,
  )

  writer = jax.process_index() == 0
  results = evaluator.evaluate(
    logits_fn,
    tokenizer,
    tasks,
    data_dir,
    limit,
    max_length,
    token_budget=token_budget,
    mesh=the_mesh,
    records_path=records if writer else None,
  )
  for name, res in results.items():
    logging.info(
      "%s: %s (n=%d, %d requests, %d shapes, %.1fs)",
      name,
      ", ".join(f"{k}={v:.4g}" for k, v in res.metrics.items() if not k.endswith("_stderr")),
      res.num_examples,
      res.num_requests,
      len(res.shapes),
      res.wall_time_s,
    )
  out = make_results(
    config.get("name") or plan.name,
    plan.to_json(),
    {name: res.to_json() for name, res in results.items()},
    seed=config.get("seed"),
    wall_time_s=time.perf_counter() - start,
    step=int(step),
    data_dir=data_dir,
    limit=int(limit),
    max_length=int(max_length),
  )
  output = output or rundir.join(workdir, "eval", "results.json")
  if writer:
    write_results(output, out)
    logging.info("wrote %s", output)
  return out
