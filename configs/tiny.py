"""A CPU-sized model with the paper's grammar, trained on the embedded Shakespeare corpus.

--config=configs/tiny.py:baseline_tiny_8l      --config=configs/tiny.py:final_50_tiny_8l
"""

from ffnjax.core.config import apply_name
from ffnjax.train.experiment import default_config

SIZES = {
  "tiny_8l": dict(num_layers=8, d_model=96, d_ff=384, num_heads=4, train=dict(global_batch=16, peak_lr=3e-3)),
  "tiny_4l": dict(num_layers=4, d_model=64, d_ff=256, num_heads=4, train=dict(global_batch=8, peak_lr=3e-3)),
}


def get_config(arg: str = "baseline_tiny_8l"):
  config = default_config()
  config.model.update(dict(vocab_size=4096, dtype="float32", remat="none", init_std=0.02))
  config.data.update(dict(source="shakespeare", tokenizer="bpe:4096", seq_len=128))
  config.train.update(
    dict(steps=150, warmup_steps=15, schedule="cosine", checkpoint_every=50, log_every=10, eval_every=0)
  )
  config.mesh.update(dict(data=1, fsdp=1, tensor=1))
  return apply_name(config, arg, SIZES)
