"""Fixtures: the stand-in tokenizer and a random causal LM (see lm_helpers.py)."""

import pytest
from lm_helpers import PieceTokenizer, random_lm


@pytest.fixture(scope="session")
def tok():
  return PieceTokenizer()


@pytest.fixture(scope="session")
def lm(tok):
  return random_lm(tok.vocab_size)
