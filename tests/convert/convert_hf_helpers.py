"""Tiny random Hugging Face Llama/Mistral models built locally with transformers (torch, CPU, fp32; no hub)."""

from __future__ import annotations

import numpy as np
import pytest

HF_HELP = (
  "tests/convert need torch and transformers (the [hf] extra): "
  "pip install torch==2.13.0 transformers==5.23.0   (CI: pip install -e .[test,hf])"
)

TOL = 1e-4  # max abs logit difference, fp32 (logits are O(1): the weights are rescaled below)
TINY = dict(
  vocab_size=256,
  hidden_size=64,
  intermediate_size=96,
  num_hidden_layers=3,
  num_attention_heads=4,
  num_key_value_heads=2,
  max_position_embeddings=64,
  rms_norm_eps=1e-5,
)


def require_hf():
  """(torch, transformers), or a test failure that says what to install (never a skip)."""
  try:
    import torch
    import transformers
  except ImportError as e:
    pytest.fail(f"{HF_HELP} ({e})", pytrace=False)
  return torch, transformers


def build_hf(kind: str = "llama", seed: int = 0, **overrides):
  """A random LlamaForCausalLM / MistralForCausalLM whose logits are O(1) and whose norms are not all ones."""
  torch, transformers = require_hf()
  fields = {**TINY, **overrides}
  torch.manual_seed(seed)
  if kind == "llama":
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**fields))
  else:
    fields.setdefault("sliding_window", None)
    model = transformers.MistralForCausalLM(transformers.MistralConfig(**fields))
  gen = torch.Generator().manual_seed(seed + 1)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if p.ndim == 1:  # RMSNorm scales: random, so a swapped norm would show
        p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=gen))
      elif "embed_tokens" in name:  # std 1/4: tied heads then give logits of a few units, like untied ones
        p.copy_(0.25 * torch.randn(p.shape, generator=gen))
      else:  # [out, in]
        p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)
  return model.eval()


def save_hf(model, path, **kwargs) -> str:
  model.save_pretrained(str(path), **kwargs)
  return str(path)


def hf_logits(model, tokens: np.ndarray) -> np.ndarray:
  torch, _ = require_hf()
  with torch.no_grad():
    return model(torch.tensor(np.asarray(tokens), dtype=torch.long)).logits.float().numpy()


def load_hf_dir(path):
  _, transformers = require_hf()
  return transformers.AutoModelForCausalLM.from_pretrained(str(path), dtype="float32").eval()


def tokens(batch: int = 2, length: int = 24, vocab: int = 256, seed: int = 0) -> np.ndarray:
  return np.random.RandomState(seed).randint(0, vocab, (batch, length)).astype(np.int32)
