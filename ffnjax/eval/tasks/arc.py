"""ARC-Easy and ARC-Challenge (test), lm-eval's `arc_easy` / `arc_challenge`: acc, acc_norm.

"Question: {question}\\nAnswer:" with choices choices.text; gold = choices.label.index(answerKey) (labels are
"A".."E" or, for some questions, "1".."5"). Upstream: Hugging Face `allenai/ai2_arc` (configs ARC-Easy,
ARC-Challenge), fields question, choices{text, label}, answerKey. TFDS `ai2_arc/ARC-Easy|ARC-Challenge` maps
numeric labels to letters and stores them as class indices; the index lookup, and so the score, is unchanged.
"""

from __future__ import annotations

from ffnjax.eval.sources import TfdsSource
from ffnjax.eval.tasks.base import LabelledChoicesTask

_LETTERS = "ABCDE"  # TFDS ai2_arc ClassLabel names


def _from_tfds(ex: dict) -> dict:
  return {
    "question": ex["question"],
    "choices": {"text": list(ex["choices"]["text"]), "label": [_LETTERS[i] for i in ex["choices"]["label"]]},
    "answerKey": _LETTERS[ex["answerKey"]],
  }


class ARC(LabelledChoicesTask):
  split = "test"
  fields = ("question", "choices.text", "choices.label", "answerKey")

  def __init__(self, name: str, config: str):
    self.name = name
    self.tfds = TfdsSource(f"ai2_arc/{config}", "test", _from_tfds)

  def doc_to_text(self, doc):
    return f"Question: {doc['question']}\nAnswer:"
