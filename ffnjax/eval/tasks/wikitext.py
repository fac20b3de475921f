"""WikiText (wikitext-2-raw-v1, document level, test), lm-eval's `wikitext`: word_perplexity, byte_perplexity,
bits_per_byte from rolling loglikelihood over disjoint windows of max_length tokens.

The text scored is the page passed through lm-eval's wikitext detokenizer; words (`len(re.split(r"\\s+", page))`)
and UTF-8 bytes are counted on the original page. Upstream: Hugging Face `EleutherAI/wikitext_document_level`
(config wikitext-2-raw-v1), field page. lm-eval gives these metrics no stderr (written as null).
"""

from __future__ import annotations

import math
import re

import numpy as np

from ffnjax.eval import engine
from ffnjax.eval import metrics as metrics_lib
from ffnjax.eval.sources import DataError
from ffnjax.eval.tasks.base import Encoded, Task


def detokenize(page: str) -> str:
  """lm-eval's wikitext_detokenizer: undoes WikiText's spaced-out punctuation and @-@ style separators."""
  string = page
  # contractions
  string = string.replace("s '", "s'")
  string = re.sub(r"/' [0-9]/", r"/'[0-9]/", string)
  # number separators
  string = string.replace(" @-@ ", "-")
  string = string.replace(" @,@ ", ",")
  string = string.replace(" @.@ ", ".")
  # punctuation
  string = string.replace(" : ", ": ")
  string = string.replace(" ; ", "; ")
  string = string.replace(" . ", ". ")
  string = string.replace(" ! ", "! ")
  string = string.replace(" ? ", "? ")
  string = string.replace(" , ", ", ")
  # double brackets
  string = re.sub(r"\(\s*([^\)]*?)\s*\)", r"(\1)", string)
  string = re.sub(r"\[\s*([^\]]*?)\s*\]", r"[\1]", string)
  string = re.sub(r"{\s*([^}]*?)\s*}", r"{\1}", string)
  string = re.sub(r"\"\s*([^\"]*?)\s*\"", r'"\1"', string)
  string = re.sub(r"'\s*([^']*?)\s*'", r"'\1'", string)
  # miscellaneous
  string = string.replace("= = = =", "====")
  string = string.replace("= = =", "===")
  string = string.replace("= =", "==")
  string = string.replace(" " + chr(176) + " ", chr(176))
  string = string.replace(" \n", "\n")
  string = string.replace("\n ", "\n")
  string = string.replace(" N ", " 1 ")
  string = string.replace(" 's", "'s")
  return string


def count_words(page: str) -> int:
  """lm-eval counts words on the original page, before detokenization."""
  return len(re.split(r"\s+", page))


def count_bytes(page: str) -> int:
  return len(page.encode("utf-8"))


class WikiText(Task):
  name = "wikitext"
  split = "test"
  fields = ("page",)
  higher_is_better = {"word_perplexity": False, "byte_perplexity": False, "bits_per_byte": False}

  def check(self, doc, index, where):
    if not isinstance(doc["page"], str):
      raise DataError(f"{where}: record {index}: field 'page' must be a string, got {type(doc['page']).__name__}")

  def encode(self, docs, tokenizer, max_length):
    requests, offsets = [], [0]
    for doc in docs:
      requests += engine.rolling_requests(
        tokenizer.encode(detokenize(doc["page"])), tokenizer.prefix_token_id, max_length
      )
      offsets.append(len(requests))
    return Encoded(requests, [], np.asarray(offsets, np.int64))

  def process(self, doc, scores, lo, hi):
    return {
      "ll": float(np.sum(scores.ll[lo:hi])),
      "words": count_words(doc["page"]),
      "bytes": count_bytes(doc["page"]),
      "windows": hi - lo,
    }

  def record(self, doc, values, encoded, scores, lo, hi, tokenizer):
    # One rolling request per page (lm-eval's loglikelihood_rolling has no is_greedy).
    return {
      "requests": [{"context": "", "continuation": detokenize(doc["page"]), "ll": values["ll"], "is_greedy": None}],
      **values,
    }

  def aggregate(self, per_doc):
    lls = [d["ll"] for d in per_doc]
    words = [d["words"] for d in per_doc]
    num_bytes = [d["bytes"] for d in per_doc]
    return {
      "word_perplexity": metrics_lib.weighted_perplexity(lls, words),
      "word_perplexity_stderr": math.nan,
      "byte_perplexity": metrics_lib.weighted_perplexity(lls, num_bytes),
      "byte_perplexity_stderr": math.nan,
      "bits_per_byte": metrics_lib.bits_per_byte(lls, num_bytes),
      "bits_per_byte_stderr": math.nan,
    }
