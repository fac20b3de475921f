"""Prepare a task's requests once, score them with any logits function, aggregate to metrics.

    prepared = prepare("hellaswag", tokenizer, data_dir, limit=1000, max_length=1024)
    result = score(prepared, logits_fn)            # cheap to repeat with other logits functions (Shapley)
    result.metrics["acc_norm"], result.to_json()   # the task's entry of results.json

`evaluate(...)` does both for a list of tasks and optionally writes per-document JSONL records.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Sequence

import numpy as np

from ffnjax.core import rundir
from ffnjax.eval import embedded, engine
from ffnjax.eval.tasks import Task, get_task, parse_tasks
from ffnjax.eval.tasks.base import Encoded

EMBEDDED = "embedded"


def resolve_data_dir(data_dir: str) -> str:
  """'embedded' -> the embedded evaluation set (built once into the cache); other values unchanged."""
  if data_dir == EMBEDDED:
    return embedded.ensure_embedded()
  if not data_dir:
    raise ValueError("eval data_dir is empty: give a directory of upstream task files or 'embedded'")
  if not rundir.isdir(data_dir):
    raise FileNotFoundError(f"eval data_dir {data_dir}: no such directory")
  return data_dir


@dataclasses.dataclass
class TaskRequests:
  """A task's documents and token requests for one tokenizer and max_length; batch plans are cached."""

  task: Task
  docs: list[dict]
  encoded: Encoded
  tokenizer: object
  max_length: int
  data_dir: str
  _plans: dict = dataclasses.field(default_factory=dict, repr=False)

  @property
  def num_requests(self) -> int:
    return len(self.encoded.requests)

  def packed(self) -> engine.PackedPlan:
    """The packed plan of the hidden-state scorer (engine.plan_packed); built once."""
    if "packed" not in self._plans:
      try:
        self._plans["packed"] = engine.plan_packed(self.encoded.requests, self.max_length)
      except engine.RequestTooLong as e:
        doc = int(np.searchsorted(self.encoded.offsets, e.index, side="right")) - 1
        raise ValueError(
          f"task {self.task.name}: document {doc} of {self.data_dir}: {e}; raise max_length or leave the document out"
        ) from None
    return self._plans["packed"]

  def plan(
    self,
    token_budget: int = engine.DEFAULT_TOKEN_BUDGET,
    row_multiple: int = 1,
    min_bucket: int = engine.DEFAULT_MIN_BUCKET,
  ) -> engine.BatchPlan:
    key = (token_budget, row_multiple, min_bucket)
    if key not in self._plans:
      try:
        self._plans[key] = engine.plan_batches(
          self.encoded.requests,
          self.max_length,
          token_budget=token_budget,
          row_multiple=row_multiple,
          min_bucket=min_bucket,
        )
      except engine.RequestTooLong as e:
        doc = int(np.searchsorted(self.encoded.offsets, e.index, side="right")) - 1
        raise ValueError(
          f"task {self.task.name}: document {doc} of {self.data_dir}: {e}; raise max_length or leave the document out"
        ) from None
    return self._plans[key]


def prepare(task: str | Task, tokenizer, data_dir: str, limit: int = 0, max_length: int = 1024) -> TaskRequests:
  """Loads the first `limit` documents (0 = all) from data_dir and tokenizes every request."""
  if max_length < 1:
    raise ValueError(f"max_length={max_length}: must be >= 1")
  if limit < 0:
    raise ValueError(f"limit={limit}: must be >= 0 (0 = all documents)")
  task = get_task(task) if isinstance(task, str) else task
  data_dir = resolve_data_dir(data_dir)
  docs = task.load(data_dir, limit)
  return TaskRequests(task, docs, task.encode(docs, tokenizer, max_length), tokenizer, max_length, data_dir)


@dataclasses.dataclass
class TaskResult:
  task: str
  metrics: dict[str, float]  # metric and metric_stderr values (NaN = not defined)
  chance: float | None
  num_examples: int
  higher_is_better: dict[str, bool]
  primary_metric: str | None
  records: list[dict] | None = None
  num_requests: int = 0
  input_tokens: int = 0
  shapes: list[tuple[int, int]] = dataclasses.field(default_factory=list)
  wall_time_s: float = 0.0
  per_doc: list[dict] | None = None  # task.process values per document (metric inputs, gold, prediction)

  @property
  def below_chance(self) -> bool:
    """The primary accuracy metric (acc_norm where defined, else acc) is below chance."""
    if self.chance is None or self.primary_metric not in self.metrics:
      return False
    return bool(self.metrics[self.primary_metric] < self.chance)

  def to_json(self) -> dict:
    """The task's entry of results.json (NaN is written as null by the results writer)."""
    return {
      "metrics": dict(self.metrics),
      "chance": self.chance,
      "below_chance": self.below_chance,
      "num_examples": self.num_examples,
      "higher_is_better": dict(self.higher_is_better),
    }


def score(
  prepared: TaskRequests,
  logits_fn: engine.LogitsFn,
  *,
  token_budget: int = engine.DEFAULT_TOKEN_BUDGET,
  mesh=None,
  records: bool = False,
  min_bucket: int = engine.DEFAULT_MIN_BUCKET,
  progress_every_s: float = 30.0,
) -> TaskResult:
  """Scores prepared requests with `logits_fn` (int32 [B, T] -> logits [B, T, V], or an engine.HiddenScorer: the
  packed fast path) and aggregates the metrics."""
  start = time.perf_counter()
  task = prepared.task
  if isinstance(logits_fn, engine.HiddenScorer):
    packed = prepared.packed()
    (scores,) = engine.score_packed(
      packed,
      logits_fn,
      token_budget=token_budget,
      keep_greedy_tokens=records,
      label=task.name,
      progress_every_s=progress_every_s,
    )
    return aggregate(prepared, scores, records, packed.real_tokens, [packed.tokens.shape], start)
  plan = prepared.plan(token_budget, engine.data_parallel_size(mesh), min_bucket)
  scores = engine.score_batches(
    plan, logits_fn, mesh=mesh, keep_greedy_tokens=records, label=task.name, progress_every_s=progress_every_s
  )
  return aggregate(prepared, scores, records, plan.input_tokens, plan.shapes, start)


def aggregate(
  prepared: TaskRequests,
  scores: engine.Scores,
  records: bool = False,
  input_tokens: int = 0,
  shapes=(),
  start: float | None = None,
) -> TaskResult:
  """Per-request scores -> the task's metrics (and records)."""
  task = prepared.task
  offsets = prepared.encoded.offsets
  per_doc = [task.process(doc, scores, int(offsets[i]), int(offsets[i + 1])) for i, doc in enumerate(prepared.docs)]
  recs = None
  if records:
    recs = [
      {
        "task": task.name,
        "doc_id": i,
        **task.record(
          doc, per_doc[i], prepared.encoded, scores, int(offsets[i]), int(offsets[i + 1]), prepared.tokenizer
        ),
      }
      for i, doc in enumerate(prepared.docs)
    ]
  return TaskResult(
    task=task.name,
    metrics=task.aggregate(per_doc),
    chance=task.chance(prepared.docs),
    num_examples=len(prepared.docs),
    higher_is_better=dict(task.higher_is_better),
    primary_metric=task.primary_metric,
    records=recs,
    num_requests=prepared.num_requests,
    input_tokens=input_tokens,
    shapes=list(shapes),
    wall_time_s=time.perf_counter() - start if start is not None else 0.0,
    per_doc=per_doc,
  )


def evaluate(
  logits_fn: engine.LogitsFn,
  tokenizer,
  tasks: str | Sequence[str],
  data_dir: str,
  limit: int = 0,
  max_length: int = 1024,
  *,
  token_budget: int = engine.DEFAULT_TOKEN_BUDGET,
  mesh=None,
  records_path: str | None = None,
  progress_every_s: float = 30.0,
) -> dict[str, TaskResult]:
  """Prepares and scores each task; {task name: TaskResult}. With records_path, writes one JSONL line per
  document (task, doc_id, requests [{context, continuation, ll, is_greedy}], gold, prediction, metric values)."""
  data_dir = resolve_data_dir(data_dir)
  results = {}
  for task in parse_tasks(tasks):
    prepared = prepare(task, tokenizer, data_dir, limit, max_length)
    results[task.name] = score(
      prepared,
      logits_fn,
      token_budget=token_budget,
      mesh=mesh,
      records=records_path is not None,
      progress_every_s=progress_every_s,
    )
  if records_path is not None:
    write_records(records_path, [r for res in results.values() for r in res.records])
  return results


def write_records(path: str, records: Sequence[dict]) -> None:
  """JSON lines, written atomically (local or gs://)."""
  rundir.write_text(path, "".join(json.dumps(_jsonable(record), ensure_ascii=False) + "\n" for record in records))


def _jsonable(obj):
  if isinstance(obj, dict):
    return {k: _jsonable(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_jsonable(v) for v in obj]
  if isinstance(obj, (np.floating, float)):
    return float(obj) if math.isfinite(obj) else None
  if isinstance(obj, np.integer):
    return int(obj)
  if isinstance(obj, np.bool_):
    return bool(obj)
  return obj
