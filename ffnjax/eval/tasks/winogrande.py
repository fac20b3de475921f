"""WinoGrande (winogrande_xl, validation), lm-eval's `winogrande`: partial scoring, acc.

One context per option, `sentence[:i] + option` with i the index of "_", and the shared continuation
" " + sentence[i + 1:].strip(); gold = {"1": 0, "2": 1}[answer]. Upstream (Hugging Face `winogrande`,
config winogrande_xl) fields: sentence, option1, option2, answer. TFDS `winogrande` (its validation split is the
same dev.jsonl) stores answer as a class index and is converted back.
"""

from __future__ import annotations

from ffnjax.eval.sources import DataError, TfdsSource
from ffnjax.eval.tasks.base import MultipleChoiceTask

_ANSWERS = {"1": 0, "2": 1}


def _from_tfds(ex: dict) -> dict:
  return {
    "sentence": ex["sentence"],
    "option1": ex["option1"],
    "option2": ex["option2"],
    "answer": str(int(ex["label"]) + 1),
  }


def partial_context(doc: dict, option: str) -> str:
  return doc["sentence"][: doc["sentence"].index("_")] + option


def partial_target(doc: dict) -> str:
  return doc["sentence"][doc["sentence"].index("_") + 1 :].strip()


class WinoGrande(MultipleChoiceTask):
  name = "winogrande"
  split = "validation"
  fields = ("sentence", "option1", "option2", "answer")
  tfds = TfdsSource("winogrande", "validation", _from_tfds)
  normalized = False  # lm-eval reports acc only
  higher_is_better = {"acc": True}
  primary_metric = "acc"

  def check(self, doc, index, where):
    if "_" not in doc["sentence"]:
      raise DataError(f"{where}: record {index}: field 'sentence' has no '_' blank: {doc['sentence']!r}")
    if str(doc["answer"]) not in _ANSWERS:
      raise DataError(
        f"{where}: record {index}: field 'answer'={doc['answer']!r} must be '1' or '2' "
        "(the unlabeled test split cannot be scored)"
      )

  def doc_to_choice(self, doc):
    return [doc["option1"], doc["option2"]]

  def doc_to_target(self, doc):
    return _ANSWERS[str(doc["answer"])]

  def requests(self, doc):
    target = " " + partial_target(doc)
    return [(partial_context(doc, option), target) for option in self.doc_to_choice(doc)]
