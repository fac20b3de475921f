"""Hugging Face directory <-> ffnjax run directory (config.json, plan.json, checkpoints/<step>/{params,meta})."""

from __future__ import annotations

import os
import shutil

import jax
import orbax.checkpoint as ocp

from ffnjax.convert import hf_config
from ffnjax.convert.errors import ConvertError
from ffnjax.convert.llama import export_hf, load_hf
from ffnjax.core import rundir
from ffnjax.data import tokenizers
from ffnjax.train import checkpoint
from ffnjax.train.checkpoint import restore_params
from ffnjax.train.runconfig import config_to_dict, init_run_dir, load_tokenizer, tokenizer_spec

IMPORT_STEP = 0
TOKENIZER_DIR = "tokenizer"  # RUN/tokenizer: the imported model's Hugging Face tokenizer files
TOKENIZER_FILES = (
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "tokenizer.model",
  "vocab.json",
  "merges.txt",
  "added_tokens.json",
  "generation_config.json",
)


def copy_tokenizer(src_dir: str, dst_dir: str) -> list[str]:
  names = [n for n in TOKENIZER_FILES if os.path.isfile(os.path.join(src_dir, n))]
  if names:
    os.makedirs(dst_dir, exist_ok=True)
    for name in names:
      shutil.copyfile(os.path.join(src_dir, name), os.path.join(dst_dir, name))
  return names


def import_to_run_dir(model_dir: str, run_dir: str, mesh=None, **load_kwargs) -> dict:
  """Imports a Hugging Face model into a new run directory with one checkpoint (step 0: params and meta, no
  opt_state item).

  `ffnjax.train.checkpoint.restore_params(run_dir)` and the evaluator read it. The tokenizer files, if the model
  directory has them, are copied to RUN/tokenizer and `data.tokenizer` is `hf:tokenizer` (relative to the run).
  """
  if checkpoint.steps(run_dir):  # before loading anything
    raise ConvertError(
      f"--output={run_dir} already has checkpoints {checkpoint.steps(run_dir)}; import into a new run directory"
    )
  params, config, plan = load_hf(model_dir, mesh, **load_kwargs)
  return save_import(
    run_dir,
    params,
    config,
    plan,
    mesh,
    source=os.path.abspath(model_dir),
    write_tokenizer=lambda dst: copy_tokenizer(model_dir, dst),
    tokenizer_files=[n for n in TOKENIZER_FILES if os.path.isfile(os.path.join(model_dir, n))],
  )


def save_import(
  run_dir: str,
  params,
  config,
  plan,
  mesh=None,
  *,
  source: str,
  write_tokenizer,
  tokenizer_files: list[str] | None = None,
) -> dict:
  """Writes an imported model as RUN/config.json, plan.json, checkpoint 0 and RUN/tokenizer (via
  `write_tokenizer(dir) -> file names`, on the lead process; the others pass `tokenizer_files` or get none)."""
  if checkpoint.steps(run_dir):
    raise ConvertError(
      f"--output={run_dir} already has checkpoints {checkpoint.steps(run_dir)}; import into a new run directory"
    )
  lead = jax.process_index() == 0  # every process loads its shards and joins the save; one writes the files
  tokenizer_dir = os.path.join(run_dir, TOKENIZER_DIR)
  copied = write_tokenizer(tokenizer_dir) if lead else list(tokenizer_files or [])
  if copied:
    # Relative to the run directory (ffnjax.train.runconfig.load_tokenizer resolves it), so a moved run still evaluates.
    config.data.tokenizer = hf_config.TOKENIZER_SPEC_PREFIX + TOKENIZER_DIR
  if mesh is not None:
    config.mesh.update({a: int(mesh.shape[a]) for a in ("data", "fsdp", "tensor") if a in mesh.shape})
  if lead:
    init_run_dir(run_dir, config, plan)
  meta = {
    "step": IMPORT_STEP,
    "config": config_to_dict(config),
    "plan": plan.to_json(),
    "hf_import": {"source": source, "tokenizer_files": copied},
  }
  mngr = checkpoint.manager(run_dir)
  try:
    # Orbax refuses an empty item ("Found empty item"), so an import has no opt_state item at all: params and meta
    # only, which is all that restore_params (the evaluator, the Shapley runner) reads.
    mngr.save(
      IMPORT_STEP,
      args=ocp.args.Composite(params=ocp.args.StandardSave(params), meta=ocp.args.JsonSave(meta)),
      force=True,
    )
    mngr.wait_until_finished()
  finally:
    mngr.close()
  return {
    "run_dir": run_dir,
    "step": IMPORT_STEP,
    "name": config.name,
    "plan": plan.name,
    "params": plan.param_count(),
    "tokenizer_files": copied,
  }


def export_run_dir(run_dir: str, output_dir: str, step: int | None = None, dtype: str | None = None, mesh=None) -> dict:
  """A run directory's checkpoint (default: the newest) -> a LlamaForCausalLM directory (+ its tokenizer files).

  The parameters are restored onto `mesh` (default: one device) and streamed to the file a tensor at a time.
  """
  params, config, plan = restore_params(run_dir, step, mesh=mesh)
  summary = export_hf(params, config, plan, output_dir, dtype=dtype)
  summary["tokenizer_files"] = []
  if jax.process_index() == 0:
    try:
      summary["tokenizer_files"] = export_tokenizer(config, run_dir, output_dir)
    except (FileNotFoundError, ValueError) as e:  # the weights are exported; say what is missing and why
      summary["tokenizer_missing"] = str(e)
  return summary


def export_tokenizer(config, run_dir: str, output_dir: str) -> list[str]:
  """The run's tokenizer as Hugging Face files in output_dir: an imported model's files, a trained bpe:N's
  tokenizer.json, or the GPT-2 BPE written as a tokenizer.json."""
  spec = tokenizer_spec(config, run_dir)  # resolves a run-relative hf:tokenizer
  kind = tokenizers.parse_spec(spec)[0]
  if kind == "hf":
    return copy_tokenizer(spec[len(hf_config.TOKENIZER_SPEC_PREFIX) :], output_dir)
  target = rundir.join(output_dir, tokenizers.TOKENIZER_FILE)
  if kind == "bpe":
    rundir.copy(load_tokenizer(config, run_dir=run_dir).path, target)  # found next to the run's training data
  else:
    rundir.write_text(target, tokenizers.gpt2_tokenizer_json())
  return [tokenizers.TOKENIZER_FILE]
