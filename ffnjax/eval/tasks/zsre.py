"""zsRE knowledge capacity (paper App. D): token-by-token accuracy of the answer to a question.

Records of the zsRE evaluation set used by MEND/ROME (`zsre_mend_eval.json`, 19,086 records; fields src,
answers, subject, rephrase, alt, loc, loc_ans, ...). Prompt = tokens of `src` (end-of-text when empty), target =
tokens of " " + answers[0]. Token k of the target is compared with the argmax after the prompt and target tokens
1..k-1 (teacher forcing); an instance's accuracy is the fraction of matches, the score is the mean over
instances. One forward pass over prompt + target computes all of them (a causal model's prediction at a position
depends only on the tokens before it). Files: DATA_DIR/zsre/zsre_mend_eval.json or DATA_DIR/zsre_mend_eval.json.
"""

from __future__ import annotations

import numpy as np

from ffnjax.eval.sources import DataError
from ffnjax.eval.tasks.base import Encoded, Task, mean_metrics


def encode_instance(tokenizer, src: str, answer: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
  prompt = tuple(tokenizer.encode(src)) or (tokenizer.prefix_token_id,)
  return prompt, tuple(tokenizer.encode(" " + answer))


class ZsRE(Task):
  name = "zsre"
  split = "eval"
  files = ("zsre/zsre_mend_eval", "zsre_mend_eval")
  fields = ("src", "answers")
  higher_is_better = {"acc": True}
  primary_metric = "acc"
  greedy_prediction = True  # the teacher-forced argmax at each answer position

  def check(self, doc, index, where):
    answers = doc["answers"]
    if not isinstance(answers, list) or not answers or not isinstance(answers[0], str) or not answers[0]:
      raise DataError(f"{where}: record {index}: field 'answers' must be a non-empty list of strings, got {answers!r}")

  def encode(self, docs, tokenizer, max_length):
    requests = [encode_instance(tokenizer, d["src"], d["answers"][0]) for d in docs]
    texts = [(d["src"], " " + d["answers"][0]) for d in docs]
    return Encoded(requests, texts, np.arange(len(docs) + 1, dtype=np.int64))

  def process(self, doc, scores, lo, hi):
    return {
      "acc": float(scores.num_greedy[lo]) / float(scores.num_tokens[lo]),
      "gold": " " + doc["answers"][0],
      "gold_ll": float(scores.ll[lo]),
      "gold_tokens": int(scores.num_tokens[lo]),
    }

  def aggregate(self, per_doc):
    return mean_metrics(per_doc, ["acc"])
