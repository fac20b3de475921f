"""HellaSwag (validation), lm-eval's `hellaswag`: acc and acc_norm over 4 endings.

Upstream (Hugging Face `hellaswag`) fields: ctx_a, ctx_b, activity_label, endings, label (a string "0".."3").
TFDS `hellaswag` keeps only the joined `context` (ctx_a + " " + ctx_b without lm-eval's ctx_b.capitalize()), so
it cannot reproduce these prompts and is refused.
"""

from __future__ import annotations

import re

from ffnjax.eval.sources import DataError
from ffnjax.eval.tasks.base import MultipleChoiceTask


def preprocess(text: str) -> str:
  """lm-eval's hellaswag preprocess: WikiHow '[title]' markers become sentence breaks, other brackets go."""
  text = text.strip()
  text = text.replace(" [title]", ". ")
  text = re.sub("\\[.*?\\]", "", text)
  text = text.replace("  ", " ")
  return text


class HellaSwag(MultipleChoiceTask):
  name = "hellaswag"
  split = "validation"
  fields = ("ctx_a", "ctx_b", "activity_label", "endings", "label")
  tfds_refusal = (
    "hellaswag",
    "TFDS hellaswag has no ctx_a/ctx_b fields, so lm-eval's prompt "
    "(ctx_a + ' ' + ctx_b.capitalize()) cannot be rebuilt and the scores would silently differ",
  )

  def check(self, doc, index, where):
    try:
      label = int(doc["label"])
    except (TypeError, ValueError):
      label = -1
    if not 0 <= label < len(doc["endings"]):
      raise DataError(
        f"{where}: record {index}: field 'label'={doc['label']!r} must index 'endings' "
        f"(0..{len(doc['endings']) - 1}); the unlabeled test split cannot be scored"
      )

  def doc_to_text(self, doc):
    ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
    return preprocess(doc["activity_label"] + ": " + ctx)

  def doc_to_choice(self, doc):
    return [preprocess(ending) for ending in doc["endings"]]

  def doc_to_target(self, doc):
    return int(doc["label"])
