"""BoolQ (validation), lm-eval's `boolq`: "{passage}\\nQuestion: {question}?\\nAnswer:" with choices " no" and
" yes"; acc.

Upstream: Hugging Face `super_glue` config boolq (fields question, passage, label 0 = no / 1 = yes), which is
what lm-eval 0.4 reads, or `google/boolq` (fields question, passage, answer true/false): either label field is
accepted. TFDS `bool_q` (its validation split is the same dev.jsonl) has question, passage, answer (bool).
"""

from __future__ import annotations

from ffnjax.eval.sources import DataError, TfdsSource
from ffnjax.eval.tasks.base import MultipleChoiceTask

_LABEL_FIELDS = ("label", "answer")  # super_glue/boolq, google/boolq (and TFDS bool_q)


def _from_tfds(ex: dict) -> dict:
  return {"question": ex["question"], "passage": ex["passage"], "answer": bool(ex["answer"])}


def _gold(doc: dict):
  for field in _LABEL_FIELDS:
    if field in doc:
      return field, doc[field]
  return None, None


class BoolQ(MultipleChoiceTask):
  name = "boolq"
  split = "validation"
  fields = ("question", "passage")
  tfds = TfdsSource("bool_q", "validation", _from_tfds)
  normalized = False  # lm-eval reports acc only
  higher_is_better = {"acc": True}
  primary_metric = "acc"

  def check(self, doc, index, where):
    field, value = _gold(doc)
    if field is None:
      raise DataError(
        f"{where}: record {index} has neither field 'label' (super_glue/boolq, 0 or 1) nor 'answer' "
        f"(google/boolq, true or false) (fields: {sorted(doc)})"
      )
    if value not in (0, 1, True, False) or isinstance(value, float):
      raise DataError(f"{where}: record {index}: field {field!r}={value!r} must be 0/1 or true/false")

  def doc_to_text(self, doc):
    return f"{doc['passage']}\nQuestion: {doc['question']}?\nAnswer:"

  def doc_to_choice(self, doc):
    return ["no", "yes"]

  def doc_to_target(self, doc):
    return int(_gold(doc)[1])
