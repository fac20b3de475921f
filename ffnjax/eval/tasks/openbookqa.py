"""OpenBookQA (main, test), lm-eval's `openbookqa`: context question_stem, choices choices.text,
gold = choices.label.index(answerKey.lstrip()); acc, acc_norm.

Upstream: Hugging Face `openbookqa` config main, fields question_stem, choices{text, label}, answerKey.
TFDS `openbookqa` is built from the release's Data/Additional files (the same 500 test questions and answer
order, with facts added) as question{stem, choice_A..choice_D} and answerKey a class index; it is converted back.
"""

from __future__ import annotations

from ffnjax.eval.sources import TfdsSource
from ffnjax.eval.tasks.base import LabelledChoicesTask

_LETTERS = "ABCD"  # TFDS openbookqa ClassLabel names


def _from_tfds(ex: dict) -> dict:
  q = ex["question"]
  return {
    "question_stem": q["stem"],
    "choices": {"text": [q[f"choice_{c}"] for c in _LETTERS], "label": list(_LETTERS)},
    "answerKey": _LETTERS[ex["answerKey"]],
  }


class OpenBookQA(LabelledChoicesTask):
  name = "openbookqa"
  split = "test"
  fields = ("question_stem", "choices.text", "choices.label", "answerKey")
  tfds = TfdsSource("openbookqa", "test", _from_tfds)

  def answer_key(self, doc):
    return str(doc["answerKey"]).lstrip()  # lm-eval strips it too

  def doc_to_text(self, doc):
    return doc["question_stem"]
