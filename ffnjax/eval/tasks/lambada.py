"""LAMBADA, the OpenAI variant (test), lm-eval's `lambada_openai`: acc and perplexity.

Context = the text split on single spaces without its last word, continuation = " " + last word;
acc = the continuation is the greedy prediction; perplexity = exp(-mean LL over documents).
Upstream: Hugging Face `EleutherAI/lambada_openai` (config default), field text. TFDS `lambada` is the original
LAMBADA release (differently tokenized text, field `passage`), not the OpenAI variant, and is refused.
"""

from __future__ import annotations

from ffnjax.eval import metrics as metrics_lib
from ffnjax.eval.sources import DataError
from ffnjax.eval.tasks.base import Task, mean_metrics


def split_last_word(text: str) -> tuple[str, str]:
  words = text.split(" ")
  return " ".join(words[:-1]), " " + words[-1]


class LambadaOpenAI(Task):
  name = "lambada_openai"
  split = "test"
  fields = ("text",)
  higher_is_better = {"acc": True, "perplexity": False}
  tfds_refusal = (
    "lambada",
    "TFDS lambada is the original LAMBADA release, not the OpenAI variant that "
    "lambada_openai scores, so the numbers would silently differ",
  )
  primary_metric = "acc"
  greedy_prediction = True

  def check(self, doc, index, where):
    if not isinstance(doc["text"], str) or not doc["text"].strip():
      raise DataError(f"{where}: record {index}: field 'text' must be a non-empty string")

  def requests(self, doc):
    return [split_last_word(doc["text"])]

  def process(self, doc, scores, lo, hi):
    return {
      "ll": float(scores.ll[lo]),
      "acc": float(scores.is_greedy[lo]),
      "gold": split_last_word(doc["text"])[1],
      "gold_ll": float(scores.ll[lo]),
      "gold_tokens": int(scores.num_tokens[lo]),
    }

  def aggregate(self, per_doc):
    lls = [d["ll"] for d in per_doc]
    out = mean_metrics(per_doc, ["acc"])
    out["perplexity"] = metrics_lib.perplexity(lls)
    out["perplexity_stderr"] = metrics_lib.perplexity_stderr(lls)
    return out
