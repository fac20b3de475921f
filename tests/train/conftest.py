import pytest

from configs import tiny


def train_config(name="middle_50_tiny_4l", **train):
  """A very small run: 4 layers, d=32, 8 x 32 tokens per step."""
  config = tiny.get_config(name)
  config.model.update(dict(d_model=32, d_ff=64, num_heads=2, ffn_pad_multiple=32))
  config.data.seq_len = 32
  config.train.update(
    dict(global_batch=8, steps=8, warmup_steps=2, checkpoint_every=4, log_every=2, async_checkpoints=False) | train
  )
  return config


@pytest.fixture
def make_config():
  return train_config
