"""Hugging Face LlamaForCausalLM / MistralForCausalLM import and LlamaForCausalLM export (local directories only).

    params, config, plan = load_hf(HF_DIR, mesh=None)     # safetensors + config.json -> ffnjax, tensor by tensor
    export_hf(params, config, plan, OUT_DIR)              # -> config.json + model.safetensors
    import_to_run_dir(HF_DIR, RUN_DIR)                    # an ffnjax run dir (config.json, plan.json, checkpoint 0)
    export_run_dir(RUN_DIR, OUT_DIR, step=None)

`python -m ffnjax.convert --hf_model=DIR --output=RUN_DIR` and `--workdir=RUN_DIR [--step=N] --export_hf=DIR`.
Layouts, the heterogeneous export policy (exact, zero FFNs) and the checks are in `ffnjax.convert.llama`.
"""

from ffnjax.convert.errors import ConvertError
from ffnjax.convert.llama import export_hf, load_hf
from ffnjax.convert.runs import export_run_dir, import_to_run_dir

__all__ = ["ConvertError", "load_hf", "export_hf", "import_to_run_dir", "export_run_dir"]
