"""OpenBookQA (main, test), lm-eval's `openbookqa`: context question_stem, choices choices.text,
gold = choices.label.index(answerKey.lstrip()); acc, acc_norm.

Upstream: Hugging Face `openbookqa` config main, fields question_stem, choices{text, label}, answerKey.
TFDS `openbookqa` is built from the release's Data/Additional files (the same 500 test questions and answer
order, with facts added) as question{stem, choice_A..choice_D} and answerKey a class index; it is converted back.
"""

from __future__ import annotations

from ffnjax.eval.sources import DataError, TfdsSource
from ffnjax.eval.tasks.base import MultipleChoiceTask

_LETTERS = "ABCD"  # TFDS openbookqa ClassLabel names


def _from_tfds(ex: dict) -> dict:
  q = ex["question"]
  return {"question_stem": q["stem"],
          "choices": {"text": [q[f"choice_{c}"] for c in _LETTERS], "label": list(_LETTERS)},
          "answerKey": _LETTERS[ex["answerKey"]]}


class OpenBookQA(MultipleChoiceTask):
  name = "openbookqa"
  split = "test"
  fields = ("question_stem", "choices.text", "choices.label", "answerKey")
  tfds = TfdsSource("openbookqa", "test", _from_tfds)

  def check(self, doc, index, where):
    labels, texts = doc["choices"]["label"], doc["choices"]["text"]
    if len(labels) != len(texts) or not texts:
      raise DataError(f"{where}: record {index}: choices.label ({len(labels)}) and choices.text ({len(texts)}) "
                      "must be non-empty and of equal length")
    if str(doc["answerKey"]).lstrip() not in labels:
      raise DataError(f"{where}: record {index}: answerKey={doc['answerKey']!r} is not one of "
                      f"choices.label={list(labels)}")

  def doc_to_text(self, doc):
    return doc["question_stem"]

  def doc_to_choice(self, doc):
    return list(doc["choices"]["text"])

  def doc_to_target(self, doc):
    return list(doc["choices"]["label"]).index(str(doc["answerKey"]).lstrip())
