"""The paper's code path at CI size: configs/paper.py with a tiny model (GPT-2 vocabulary) and a few steps.

    --config=configs/rehearsal.py:baseline_rehearsal_4l   --config=configs/rehearsal.py:middle_50_rehearsal_4l
Same data path as the paper (FineWeb-Edu parquet through data.prepare, GPT-2 BPE) and the same evaluation (the
8 lm-eval tasks + zsRE from upstream-format files); give both:
    --config.data.input=PARQUET_DIR --config.eval.data_dir=EVAL_DIR   (e.g. from `python -m ffnjax.data.fixtures`)
"""

from configs import paper
from ffnjax.core.config import apply_name

SIZES = {
  "rehearsal_4l": dict(num_layers=4, d_model=64, d_ff=128, num_heads=4, train=dict(global_batch=4, peak_lr=3e-3)),
}


def get_config(arg: str = "baseline_rehearsal_4l"):
  config = paper.get_config("baseline_285m_12l")  # every paper setting, then CI sizes below
  config.model.update(dict(dtype="float32", remat="none"))
  config.data.update(dict(input="", seq_len=64))
  config.eval.update(dict(data_dir="", limit=6))
  config.train.update(
    dict(steps=4, warmup_steps=1, checkpoint_every=4, log_every=1, eval_every=0, async_checkpoints=False)
  )
  config.mesh.update(dict(data=1, fsdp=1, tensor=1))
  return apply_name(config, arg, SIZES)
