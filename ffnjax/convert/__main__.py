"""`python -m ffnjax.convert --hf_model=HF_DIR --output=RUN_DIR` (import), `--gguf=FILE --output=RUN_DIR` (import of
a Llama-architecture GGUF file, dequantized to float32; see ffnjax.convert.gguf) or
`python -m ffnjax.convert --workdir=RUN_DIR [--step=N] --export_hf=HF_DIR` (export to LlamaForCausalLM).

Import writes RUN_DIR/config.json, plan.json and an Orbax checkpoint at step 0 (params, empty opt_state, meta)
that `ffnjax.eval --workdir=RUN_DIR` and `ffnjax.shapley --checkpoint=RUN_DIR` read. The parameters are
loaded tensor by tensor onto the mesh given by --mesh (default fsdp over every device), so a model larger than one
device's memory imports.
"""

from __future__ import annotations

import sys

from absl import flags, logging

from ffnjax.convert import export_run_dir, import_to_run_dir
from ffnjax.convert.gguf import import_gguf_to_run_dir
from ffnjax.core import cli, meshspec
from ffnjax.core.errors import UsageError
from ffnjax.parallel import make_mesh

_HF_MODEL = flags.DEFINE_string("hf_model", None, "Import: a local Hugging Face Llama/Mistral directory.")
_GGUF = flags.DEFINE_string("gguf", None, "Import: a Llama-architecture GGUF file (llama.cpp's format).")
_OUTPUT = flags.DEFINE_string("output", None, "Import: the new ffnjax run directory.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Export: an ffnjax run directory.")
_STEP = flags.DEFINE_integer("step", None, "Export: checkpoint step (default: the newest).", lower_bound=0)
_EXPORT_HF = flags.DEFINE_string(
  "export_hf", None, "Export: output directory for config.json + model.safetensors + tokenizer.json."
)
_PARAM_DTYPE = flags.DEFINE_enum(
  "param_dtype", None, ["float32", "bfloat16", "float16"], "Import: parameter dtype (default: the checkpoint's)."
)
_DTYPE = flags.DEFINE_enum(
  "dtype", None, ["float32", "bfloat16", "float16"], "Import: compute dtype (default: the parameter dtype)."
)
_SEQ_LEN = flags.DEFINE_integer(
  "seq_len", None, "Import: data.seq_len (default: max_position_embeddings, capped at a sliding window).", lower_bound=1
)
_EXPORT_DTYPE = flags.DEFINE_enum(
  "export_dtype", None, ["float32", "bfloat16", "float16"], "Export: tensor dtype (default: model.param_dtype)."
)
_MESH = cli.define_mesh("mesh", "data:1,fsdp:-1,tensor:1", "Mesh the parameters are loaded onto (-1 = the rest).")
_NO_METADATA = flags.DEFINE_bool(
  "ignore_ffnjax_plan",
  False,
  "Import: ignore the 'ffnjax' layer-plan block of an ffnjax export and import every layer as standard.",
)


def _mesh(spec: str):
  return make_mesh(meshspec.parse(spec))


def main(argv):
  if len(argv) > 1:
    raise UsageError(f"unexpected arguments {argv[1:]}")

  logging.set_verbosity(logging.WARNING)
  importing = bool(_HF_MODEL.value or _GGUF.value or _OUTPUT.value)
  exporting = bool(_WORKDIR.value or _EXPORT_HF.value)
  if (
    importing == exporting
    or (importing and not (bool(_HF_MODEL.value) != bool(_GGUF.value) and _OUTPUT.value))
    or (exporting and not (_WORKDIR.value and _EXPORT_HF.value))
  ):
    raise UsageError(
      "give either --hf_model=DIR or --gguf=FILE, with --output=RUN_DIR (import), or "
      "--workdir=RUN_DIR --export_hf=DIR (export)"
    )
  mesh = _mesh(_MESH.value)
  if _GGUF.value:
    out = import_gguf_to_run_dir(
      _GGUF.value, _OUTPUT.value, mesh, param_dtype=_PARAM_DTYPE.value, dtype=_DTYPE.value, seq_len=_SEQ_LEN.value
    )
    print(
      f"imported {_GGUF.value} as {out['name']} ({out['plan']}, {out['params']:,} parameters, "
      f"{_PARAM_DTYPE.value or 'float32'}) into {_OUTPUT.value} (checkpoint step {out['step']})"
    )
  elif importing:
    out = import_to_run_dir(
      _HF_MODEL.value,
      _OUTPUT.value,
      mesh,
      param_dtype=_PARAM_DTYPE.value,
      dtype=_DTYPE.value,
      seq_len=_SEQ_LEN.value,
      use_metadata=not _NO_METADATA.value,
    )
    print(
      f"imported {_HF_MODEL.value} as {out['name']} ({out['plan']}, {out['params']:,} parameters) into "
      f"{_OUTPUT.value} (checkpoint step {out['step']})"
    )
  else:
    out = export_run_dir(_WORKDIR.value, _EXPORT_HF.value, _STEP.value, _EXPORT_DTYPE.value, mesh=mesh)
    extra = (
      f"; {out['params_padding']:,} of them zero FFN weights/padding of deactivated or narrower layers"
      if out["params_padding"]
      else ""
    )
    print(
      f"exported {_WORKDIR.value} to {_EXPORT_HF.value}: LlamaForCausalLM, intermediate_size="
      f"{out['intermediate_size']}, {out['params_exported']:,} parameters ({out['dtype']}){extra}; "
      f"tokenizer files: {', '.join(out['tokenizer_files']) or 'none'}"
    )
    if out.get("tokenizer_missing"):
      print(f"ffnjax.convert: warning: no tokenizer exported: {out['tokenizer_missing']}", file=sys.stderr)


if __name__ == "__main__":
  cli.run(main, prog="ffnjax.convert", user_errors=(ValueError, FileNotFoundError, KeyError))
