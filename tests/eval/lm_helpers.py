"""A stand-in tokenizer and small random causal LMs for the evaluator tests (fixtures: conftest.py)."""

import re

import jax
import jax.numpy as jnp
import numpy as np

# GPT-2's pre-tokenisation shape (a leading space belongs to the next word), so whether a context's trailing
# space moves to the continuation changes the tokens, as it does with the real BPE.
_PIECES = re.compile(r"""'(?:[sdmt]|ll|ve|re)| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")
_WORDS = (
  "the",
  "a",
  "cat",
  "sat",
  "on",
  "mat",
  "question",
  "answer",
  "is",
  "he",
  "she",
  "king",
  "play",
  "in",
  "which",
  "does",
  "character",
  "appear",
  "of",
  "to",
  "and",
  "hamlet",
  "macbeth",
  "lear",
)


class PieceTokenizer:
  """Reversible: known pieces (words with and without a leading space) get one id, anything else one id per
  character; printable ASCII, space and newline are always in the vocabulary."""

  def __init__(self, words=_WORDS):
    pieces = [chr(c) for c in range(32, 127)] + ["\n", "\n\n", "  "]
    pieces += [w for w in words] + [" " + w for w in words] + [" " + w.capitalize() for w in words]
    self.pieces = list(dict.fromkeys(pieces))
    self.ids = {p: i for i, p in enumerate(self.pieces)}
    self.eot_id = self.prefix_token_id = len(self.pieces)
    self.vocab_size = len(self.pieces) + 1
    self.spec = "pieces"

  def encode(self, text):
    out = []
    for piece in _PIECES.findall(text):
      if piece in self.ids:
        out.append(self.ids[piece])
      else:
        out += [self.ids.get(ch, self.ids["?"]) for ch in piece]
    return out

  def decode(self, ids):
    return "".join("<|endoftext|>" if i == self.eot_id else self.pieces[i] for i in ids)


def random_lm(vocab_size, d=16, seed=0, max_len=512, scale=4.0):
  """A causal LM: tanh(cumulative mean of embeddings + current-token and position embeddings) @ W.
  Position embeddings make any shift of the input change the logits."""
  k = jax.random.split(jax.random.key(seed), 4)
  emb = jax.random.normal(k[0], (vocab_size, d))
  cur = jax.random.normal(k[1], (vocab_size, d))
  pos = 0.5 * jax.random.normal(k[2], (max_len, d))
  w = scale * jax.random.normal(k[3], (d, vocab_size)) / np.sqrt(d)

  def forward(tokens):
    t = tokens.shape[1]
    x = emb[tokens]
    mean = jnp.cumsum(x, axis=1) / jnp.arange(1, t + 1, dtype=jnp.float32)[None, :, None]
    return jnp.tanh(mean + cur[tokens] + pos[:t]) @ w

  np_emb, np_cur, np_pos, np_w = (np.asarray(a, np.float64) for a in (emb, cur, pos, w))

  def reference(tokens):  # the same model in float64 numpy: one-at-a-time references compile nothing
    tokens = np.asarray(tokens)
    t = tokens.shape[1]
    mean = np.cumsum(np_emb[tokens], axis=1) / np.arange(1, t + 1)[None, :, None]
    return np.tanh(mean + np_cur[tokens] + np_pos[:t]) @ np_w

  logits_fn = jax.jit(forward)
  logits_fn.reference = reference
  return logits_fn


def naive_logprobs(logits_fn, tokens):
  """float64 log-softmax of one unpadded sequence."""
  if hasattr(logits_fn, "reference"):
    logits = logits_fn.reference(np.asarray([tokens]))[0]
  else:
    logits = np.asarray(logits_fn(jnp.asarray([tokens], jnp.int32)))[0].astype(np.float64)
  return (
    logits
    - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True))
    - logits.max(-1, keepdims=True)
  )
