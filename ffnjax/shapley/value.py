"""The Shapley value function over a real model: v(S) = benchmark metric with only the sub-layers in S kept.

Requests are tokenized once per task; every coalition is scored by the same jitted forward with a different
[L, 2] keep mask (an array input), so the whole analysis compiles one program per batch shape, not one per
coalition (`compilations` exposes the count).
"""

from __future__ import annotations

import math
import sys
import time
from typing import Iterable, Sequence

import numpy as np

from ffnjax.eval import evaluator
from ffnjax.eval.tasks import parse_tasks
from ffnjax.model import make_logits_fn
from ffnjax.shapley.players import keep_mask, players_from_layer_types
from ffnjax.train.metrics import format_duration

# Perplexity-like tasks enter the value as -log(perplexity) (the mean log-likelihood per word or token): larger is
# better, like accuracy, and it stays well-conditioned when ablations push perplexity to 1e9, where raw
# -perplexity would let the few worst coalitions dominate every Shapley value.
_PERPLEXITY = ("word_perplexity", "perplexity")


def task_value(result: evaluator.TaskResult) -> float:
  """acc_norm where defined, else acc; else -log(perplexity)."""
  if result.primary_metric and result.primary_metric in result.metrics:
    return float(result.metrics[result.primary_metric])
  for name in _PERPLEXITY:
    if name in result.metrics:
      return -math.log(float(result.metrics[name]))
  raise ValueError(f"task {result.task}: no accuracy or perplexity metric to use as a Shapley value "
                   f"(metrics: {sorted(result.metrics)})")


class ModelValue:
  """Callable value function with a batch form, for the estimators in ffnjax.shapley."""

  def __init__(self, config, plan, params, tokenizer, *, tasks: str, data_dir: str = evaluator.EMBEDDED,
               limit: int = 1000, max_length: int = 0, token_budget: int = 16384, mesh=None,
               expected: int | None = None, log=None):
    self.plan = plan
    self.players = players_from_layer_types(plan.layer_types)
    self.logits = make_logits_fn(config, plan, params, mesh, with_keep=True)
    max_length = max_length or config.data.seq_len
    self.prepared = [evaluator.prepare(t, tokenizer, data_dir, limit, max_length) for t in parse_tasks(tasks)]
    self.token_budget, self.mesh = token_budget, mesh
    self.expected, self.done, self._t0 = expected, 0, time.perf_counter()
    self._log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    chances = [p.task.chance(p.docs) for p in self.prepared]
    # The value's chance level: the mean of the tasks' chance levels, when every task is an accuracy task.
    self.chance = float(np.mean(chances)) if all(c is not None for c in chances) and self._all_accuracy() else None

  def _all_accuracy(self) -> bool:
    return all(p.task.primary_metric for p in self.prepared)

  @property
  def num_players(self) -> int:
    return len(self.players)

  @property
  def compilations(self) -> int:
    return self.logits.jitted._cache_size()

  def results_of_mask(self, mask: np.ndarray) -> list[evaluator.TaskResult]:
    fn = lambda tokens: self.logits(tokens, mask)  # noqa: E731 - the mask is an argument, not a constant
    return [evaluator.score(p, fn, token_budget=self.token_budget, mesh=self.mesh, progress_every_s=1e9)
            for p in self.prepared]

  def value_of_mask(self, mask: np.ndarray) -> float:
    return float(np.mean([task_value(r) for r in self.results_of_mask(mask)]))

  def task_results(self, coalitions: Sequence[Iterable[int]]) -> list[list[evaluator.TaskResult]]:
    """Per coalition, every task's result (per-task games, per-example scores): one evaluation serves all tasks."""
    out = []
    for c in coalitions:
      out.append(self.results_of_mask(keep_mask(self.players, c, self.plan.num_layers)))
      self.done += 1
      self._progress()
    return out

  def batch(self, coalitions: Sequence[Iterable[int]]) -> list[float]:
    """The task-mean value of each coalition."""
    return [float(np.mean([task_value(r) for r in results])) for results in self.task_results(coalitions)]

  def __call__(self, coalition: Iterable[int]) -> float:
    return self.batch([coalition])[0]

  def _progress(self) -> None:
    elapsed = time.perf_counter() - self._t0
    rate = self.done / elapsed
    if self.expected:
      eta = (self.expected - self.done) / rate if rate else float("nan")
      self._log(f"coalitions {self.done}/{self.expected} | {rate:.2f}/s | ETA {format_duration(eta)}")
    else:
      self._log(f"coalitions {self.done} | {rate:.2f}/s")
