"""Config overrides that shrink configs/tiny.py's 4-layer models to a few-second CLI training run (tests only)."""

SMOKE_FLAGS = [
  "--config.model.d_model=32",
  "--config.model.d_ff=64",
  "--config.model.num_heads=2",
  "--config.model.ffn_pad_multiple=32",
  "--config.data.seq_len=32",
  "--config.train.global_batch=8",
  "--config.train.warmup_steps=2",
  "--config.train.log_every=1",
]
