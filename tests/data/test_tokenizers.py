"""Tokenizers: GPT-2 ids match OpenAI's, byte-level round trips, the small BPE's fixed end-of-text id."""

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ffnjax.data import tokenizers

_SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)


@pytest.fixture(scope="module")
def gpt2():
  return tokenizers.get_tokenizer("gpt2")


@pytest.fixture(scope="module")
def small_bpe(tmp_path_factory, make_docs):
  path = str(tmp_path_factory.mktemp("bpe") / tokenizers.TOKENIZER_FILE)
  return tokenizers.train_bpe(make_docs(200), 512, path)


def test_gpt2_known_ids(gpt2):
  assert gpt2.vocab_size == 50257 and gpt2.eot_id == 50256 and gpt2.spec == "gpt2"
  assert gpt2.encode("Hello world") == [15496, 995]
  assert gpt2.encode(" the") == [262]
  assert gpt2.encode("<|endoftext|>") == [50256]
  assert gpt2.decode([50256]) == "<|endoftext|>"
  # corpus text cannot forge a document boundary
  assert 50256 not in gpt2.encode_ordinary("a <|endoftext|> b")
  assert tokenizers.get_tokenizer("gpt2") is gpt2  # built once per process


@_SETTINGS
@given(st.text())
def test_gpt2_round_trips_any_text(text):
  tok = tokenizers.get_tokenizer("gpt2")
  assert tok.decode(tok.encode(text)) == text
  assert tok.decode(tok.encode_ordinary(text)) == text


def test_small_bpe_has_a_fixed_special_eot(small_bpe, make_docs, tmp_path):
  assert small_bpe.vocab_size == 512 and small_bpe.eot_id == tokenizers.BPE_EOT_ID == 0
  assert small_bpe.encode("<|endoftext|>") == [0]
  assert 0 not in small_bpe.encode_ordinary("x <|endoftext|> y")
  ids = small_bpe.encode_ordinary(make_docs(1, seed=9)[0])
  assert max(ids) < 512 and len(ids) > 0
  loaded = tokenizers.get_tokenizer("bpe:512", os.path.dirname(small_bpe.path))
  assert loaded.encode("photosynthesis of water") == small_bpe.encode("photosynthesis of water")
  # training is deterministic: the same corpus gives the same file
  again = tokenizers.train_bpe(make_docs(200), 512, str(tmp_path / "again.json"))
  assert open(again.path).read() == open(small_bpe.path).read()


@_SETTINGS
@given(st.text())
def test_small_bpe_round_trips_any_text(small_bpe, text):
  assert small_bpe.decode(small_bpe.encode(text)) == text
  assert small_bpe.decode(small_bpe.encode_ordinary(text)) == text


@pytest.mark.parametrize("spec", ["gpt3", "bpe:", "bpe:256", "bpe:x", "", "GPT2"])
def test_bad_specs_name_the_allowed_values(spec):
  with pytest.raises(ValueError, match=r"data.tokenizer=.*'gpt2', 'bpe:N'.*'hf:DIR'"):
    tokenizers.get_tokenizer(spec)


def test_hf_model_tokenizer(tmp_path):
  """hf:DIR reads an imported model's tokenizer.json; its end token comes from config.json."""
  import json

  trained = tokenizers.train_bpe(["to be or not to be, that is the question"] * 20, 300, str(tmp_path / "t.json"))
  model_dir = tmp_path / "model"
  model_dir.mkdir()
  (tmp_path / "t.json").rename(model_dir / "tokenizer.json")
  (model_dir / "config.json").write_text(json.dumps({"eos_token_id": 0}))
  tok = tokenizers.get_tokenizer(f"hf:{model_dir}")
  text = "to be, or not to be"
  assert tok.encode(text) == trained.encode(text) and tok.decode(tok.encode(text)) == text
  assert tok.eot_id == tok.prefix_token_id == 0  # no bos_token: lm-eval's prefix falls back to EOS
  assert 257 <= tok.vocab_size <= 300  # the file's own size: 256 bytes + <|endoftext|> + merges
  with pytest.raises(FileNotFoundError, match="tokenizer.json"):
    tokenizers.get_tokenizer(f"hf:{tmp_path / 'missing'}")


def test_prefix_token_is_bos_when_defined_else_eos(gpt2, small_bpe, tmp_path):
  """lm-eval's HFLM.prefix_token_id: BOS if the tokenizer has one, else EOS (GPT-2: both <|endoftext|>)."""
  import json

  assert gpt2.prefix_token_id == gpt2.eot_id == 50256 and small_bpe.prefix_token_id == small_bpe.eot_id == 0
  tokenizers.train_bpe(["to be or not to be"] * 20, 300, str(tmp_path / "tokenizer.json"))
  (tmp_path / "config.json").write_text(json.dumps({"eos_token_id": 0}))
  for bos in ("to", {"content": "to", "special": False}):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"bos_token": bos}))
    tok = tokenizers.get_tokenizer(f"hf:{tmp_path}")
    assert tok.prefix_token_id == tok.encode("to")[0] != tok.eot_id == 0
  (tmp_path / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>"}))
  with pytest.raises(ValueError, match="tokenizer_config.json: bos_token '<s>' is not in"):
    tokenizers.get_tokenizer(f"hf:{tmp_path}")


def test_bpe_needs_its_prepared_dir(tmp_path):
  with pytest.raises(ValueError, match="data_dir"):
    tokenizers.get_tokenizer("bpe:512")
  with pytest.raises(FileNotFoundError, match="ffnjax.data.prepare"):
    tokenizers.get_tokenizer("bpe:512", str(tmp_path))
  (tmp_path / "tokenizer.json").write_text("{not json")
  with pytest.raises(ValueError, match="tokenizer.json"):
    tokenizers.get_tokenizer("bpe:512", str(tmp_path))


def test_bpe_larger_than_requested_is_refused(small_bpe):
  with pytest.raises(ValueError, match="more than the requested"):
    tokenizers.get_tokenizer("bpe:300", os.path.dirname(small_bpe.path))


def test_gpt2_tokenizer_json_tokenizes_like_gpt2(gpt2, tmp_path):
  """What `convert --export_hf` writes for a gpt2 run: a tokenizer.json that Hugging Face loads, same ids."""
  from tokenizers import Tokenizer

  path = tmp_path / "tokenizer.json"
  path.write_text(tokenizers.gpt2_tokenizer_json())
  hf = Tokenizer.from_file(str(path))
  for text in ["Hello world!  It's 2024, naïve café", " leading space\n\nnew  lines   x", "a<|endoftext|>b"]:
    assert hf.encode(text, add_special_tokens=False).ids == gpt2.encode(text)
  assert hf.token_to_id("<|endoftext|>") == tokenizers.GPT2_EOT_ID
