"""What a task is: where its documents come from, the requests it asks, and how scores become metrics.

Three kinds, as in lm-evaluation-harness 0.4.x: multiple choice (one (context, " " + choice) request per choice;
acc = argmax LL, acc_norm = argmax LL / len(choice characters)), single loglikelihood requests (LAMBADA), and
rolling loglikelihood (WikiText). zsRE token accuracy scores (prompt, answer) token requests by their per-token
argmax matches (see zsre.py).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from ffnjax.eval import engine, sources
from ffnjax.eval import metrics as metrics_lib
from ffnjax.eval.sources import DataError, TfdsSource


@dataclasses.dataclass
class Encoded:
  """A task's token requests: document i owns requests[offsets[i]:offsets[i + 1]]."""

  requests: list[engine.EncodedRequest]
  texts: list[tuple[str, str]]  # (context, continuation) strings of each request, for records
  offsets: np.ndarray


class Task:
  name: str = ""
  split: str = ""
  fields: tuple[str, ...] = ()
  higher_is_better: dict[str, bool] = {}
  files: tuple[str, ...] = ()  # file stems under data_dir; default "<name>/<split>"
  tfds: TfdsSource | None = None
  tfds_refusal: tuple[str, str] | None = None  # (tfds dir name, why that variant would score differently)
  primary_metric: str | None = None  # decides below_chance
  greedy_prediction = False  # records show the argmax continuation (one request per document)

  # --- data ---------------------------------------------------------------------------------------------
  def stems(self) -> tuple[str, ...]:
    return self.files or (f"{self.name}/{self.split}",)

  def load(self, data_dir: str, limit: int = 0) -> list[dict]:
    """The first `limit` documents (0 = all), checked for the upstream fields."""
    files = sources.find_file(data_dir, self.stems())
    if files:
      where = files[0] if len(files) == 1 else f"{files[0]} (+{len(files) - 1} more shards)"
      docs = sources.read_records(files, limit)
    elif self.tfds is not None and sources.tfds_dir_exists(data_dir, self.tfds):
      where = os.path.join(data_dir, self.tfds.name) + f" (TFDS, split {self.tfds.split})"
      docs = sources.read_tfds(data_dir, self.tfds, limit)
    elif self.tfds_refusal and os.path.isdir(os.path.join(data_dir, self.tfds_refusal[0])):
      raise DataError(
        f"task {self.name}: {os.path.join(data_dir, self.tfds_refusal[0])} is a TFDS dir, but "
        f"{self.tfds_refusal[1]}; export the Hugging Face dataset to one of "
        f"{sources.candidate_paths(data_dir, self.stems())}"
      )
    else:
      hint = f", or a TFDS dir {os.path.join(data_dir, self.tfds.name.split('/')[0])}" if self.tfds else ""
      raise DataError(
        f"task {self.name}: no data file; expected one of {sources.candidate_paths(data_dir, self.stems())}{hint}"
      )
    if not docs:
      raise DataError(f"task {self.name}: {where} holds no records")
    sources.check_fields(docs, self.fields, where)
    for i, doc in enumerate(docs):
      self.check(doc, i, where)
    return docs

  def check(self, doc: dict, index: int, where: str) -> None:
    """Raises DataError for a record the task cannot score (beyond missing fields)."""

  # --- requests -----------------------------------------------------------------------------------------
  def requests(self, doc: dict) -> list[tuple[str, str]]:
    raise NotImplementedError

  def encode(self, docs: Sequence[dict], tokenizer, max_length: int) -> Encoded:
    cache: dict = {}
    requests, texts, offsets = [], [], [0]
    for doc in docs:
      pairs = self.requests(doc)
      texts += pairs
      requests += [engine.encode_pair(tokenizer, c, x, cache) for c, x in pairs]
      offsets.append(len(requests))
    return Encoded(requests, texts, np.asarray(offsets, np.int64))

  # --- metrics ------------------------------------------------------------------------------------------
  def chance(self, docs: Sequence[dict]) -> float | None:
    return None

  def process(self, doc: dict, scores: engine.Scores, lo: int, hi: int) -> dict:
    """Per-document values: metric inputs, plus `gold` and `prediction` for records."""
    raise NotImplementedError

  def aggregate(self, per_doc: Sequence[dict]) -> dict[str, float]:
    """Metric -> value and metric_stderr -> value (NaN, written as null, where lm-eval has no stderr)."""
    raise NotImplementedError

  def record(
    self, doc: dict, values: dict, encoded: Encoded, scores: engine.Scores, lo: int, hi: int, tokenizer
  ) -> dict:
    """One document's JSONL record: its requests with LL and is_greedy, gold, prediction and metric values."""
    requests = [
      {"context": c, "continuation": x, "ll": float(scores.ll[i]), "is_greedy": bool(scores.is_greedy[i])}
      for i, (c, x) in zip(range(lo, hi), encoded.texts[lo:hi])
    ]
    out = {"requests": requests, **values}
    if self.greedy_prediction and scores.greedy_tokens is not None:
      out["prediction"] = tokenizer.decode([int(t) for t in scores.greedy_tokens[lo]])
    return out


def mean_metrics(per_doc: Sequence[dict], names: Sequence[str]) -> dict[str, float]:
  out = {}
  for name in names:
    values = [d[name] for d in per_doc]
    out[name] = metrics_lib.mean(values)
    out[name + "_stderr"] = metrics_lib.mean_stderr(values)
  return out


class MultipleChoiceTask(Task):
  """One request (context, " " + choice) per choice; lm-eval's target_delimiter is a space."""

  normalized = True  # report acc_norm too
  higher_is_better = {"acc": True, "acc_norm": True}
  primary_metric = "acc_norm"

  def doc_to_text(self, doc: dict) -> str:
    raise NotImplementedError

  def doc_to_choice(self, doc: dict) -> list[str]:
    raise NotImplementedError

  def doc_to_target(self, doc: dict) -> int:
    raise NotImplementedError

  def requests(self, doc: dict) -> list[tuple[str, str]]:
    context = self.doc_to_text(doc)
    return [(context, " " + choice) for choice in self.doc_to_choice(doc)]

  def chance(self, docs: Sequence[dict]) -> float | None:
    # The expected accuracy of a uniform guess (1 / number of choices, averaged where questions differ).
    return float(np.mean([1.0 / len(self.doc_to_choice(d)) for d in docs]))

  def process(self, doc: dict, scores: engine.Scores, lo: int, hi: int) -> dict:
    lls = scores.ll[lo:hi]
    gold = self.doc_to_target(doc)
    pred = int(np.argmax(lls))
    # gold_ll / gold_tokens: the gold continuation's log-likelihood and length, for the Shapley
    # log-likelihood values (ffnjax.shapley --value=gold_ll|gold_ll_norm), which move when accuracy does not.
    out = {
      "gold": gold,
      "prediction": pred,
      "acc": float(pred == gold),
      "gold_ll": float(lls[gold]),
      "gold_tokens": int(scores.num_tokens[lo + gold]),
    }
    if self.normalized:
      lengths = np.array([float(len(c)) for c in self.doc_to_choice(doc)])
      out["acc_norm"] = float(int(np.argmax(lls / lengths)) == gold)
    return out

  def aggregate(self, per_doc: Sequence[dict]) -> dict[str, float]:
    return mean_metrics(per_doc, ["acc", "acc_norm"] if self.normalized else ["acc"])


class LabelledChoicesTask(MultipleChoiceTask):
  """Choices in `choices.text`, gold = `choices.label.index(answer_key(doc))` (ARC, OpenBookQA)."""

  def answer_key(self, doc: dict) -> str:
    return doc["answerKey"]

  def check(self, doc, index, where):
    labels, texts = doc["choices"]["label"], doc["choices"]["text"]
    if len(labels) != len(texts) or not texts:
      raise DataError(
        f"{where}: record {index}: choices.label ({len(labels)}) and choices.text ({len(texts)}) "
        "must be non-empty and of equal length"
      )
    if self.answer_key(doc) not in labels:
      raise DataError(
        f"{where}: record {index}: answerKey={doc['answerKey']!r} is not one of choices.label={list(labels)}"
      )

  def doc_to_choice(self, doc):
    return list(doc["choices"]["text"])

  def doc_to_target(self, doc):
    return list(doc["choices"]["label"]).index(self.answer_key(doc))
