"""The Shapley value function over a real model: v(S) = benchmark metric with only the sub-layers in S kept.

Requests are tokenized and packed once per task (ffnjax.eval.engine.plan_packed). `values(masks[K, L, 2])` scores
K coalitions together: the engine batches (coalition, row) pairs with one keep mask per row, so one forward pass
covers many coalitions, and every batch has the same shape whatever K is. What a coalition shares with the full
model (every sub-layer below its first removed one) is computed once per block of rows and reused (engine
score_packed(reuse=True)); a sub-layer no row of a batch keeps is skipped. The whole analysis compiles, per task
shape, one residual-streams program, one program that runs on from any boundary, and one output-head program,
not one per coalition or start layer (`compilations` exposes the count).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence

import numpy as np

from ffnjax.core.progress import Eta
from ffnjax.eval import engine, evaluator
from ffnjax.eval.tasks import parse_tasks
from ffnjax.model import make_scorer
from ffnjax.shapley.cache import CHUNK
from ffnjax.shapley.players import keep_masks, players_from_layer_types

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
  raise ValueError(
    f"task {result.task}: no accuracy or perplexity metric to use as a Shapley value "
    f"(metrics: {sorted(result.metrics)})"
  )


class ModelValue:
  """Callable value function with a batch form, for the estimators in ffnjax.shapley."""

  def __init__(
    self,
    config,
    plan,
    params,
    tokenizer,
    *,
    tasks: str,
    data_dir: str = evaluator.EMBEDDED,
    limit: int = 1000,
    max_length: int = 0,
    token_budget: int = 16384,
    mesh=None,
    expected: int | None = None,
    log=None,
  ):
    self.plan = plan
    self.players = players_from_layer_types(plan.layer_types)
    self.scorer = make_scorer(config, plan, params, mesh)
    max_length = max_length or config.data.seq_len
    self.prepared = [evaluator.prepare(t, tokenizer, data_dir, limit, max_length) for t in parse_tasks(tasks)]
    self.token_budget, self.mesh = token_budget, mesh
    self.expected, self.done, self._eta = expected, 0, Eta()
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
    return self.scorer.compilations()

  def mask_results(self, masks: np.ndarray) -> list[list[evaluator.TaskResult]]:
    """Each task's result under each keep mask (float [K, L, 2]), one batched pass per task: [task][k]."""
    masks = np.asarray(masks, np.float32)
    out = []
    for p in self.prepared:
      scores = engine.score_packed(
        p.packed(),
        self.scorer,
        masks,
        token_budget=self.token_budget,
        label=f"{p.task.name}: {len(masks)} coalitions",
        progress_every_s=60.0,
        fixed_shapes=True,
        reuse=True,
      )
      out.append([evaluator.aggregate(p, s) for s in scores])
    return out

  def values(self, masks: np.ndarray) -> np.ndarray:
    """The task-mean v of each keep mask (float [K, L, 2]): float64 [K]."""
    per_task = self.mask_results(masks)
    return np.asarray([np.mean([task_value(r[k]) for r in per_task]) for k in range(len(masks))], np.float64)

  def value_of_mask(self, mask: np.ndarray) -> float:
    return float(self.values(np.asarray(mask)[None])[0])

  def task_results(self, coalitions: Sequence[Iterable[int]], chunk: int = CHUNK) -> list[list[evaluator.TaskResult]]:
    """Per coalition, every task's result (per-task games, per-example scores); `chunk` coalitions per batched
    pass, progress reported after each."""
    coalitions = list(coalitions)
    out = []
    for start in range(0, len(coalitions), chunk):
      part = coalitions[start : start + chunk]
      per_task = self.mask_results(keep_masks(self.players, part, self.plan.num_layers))
      out += [[r[k] for r in per_task] for k in range(len(part))]
      self.done += len(part)
      self._progress()
    return out

  def batch(self, coalitions: Sequence[Iterable[int]], chunk: int = CHUNK) -> list[float]:
    """The task-mean value of each coalition."""
    return [float(np.mean([task_value(r) for r in results])) for results in self.task_results(coalitions, chunk)]

  def __call__(self, coalition: Iterable[int]) -> float:
    return self.batch([coalition])[0]

  def _progress(self) -> None:
    rate = self._eta.rate(self.done)
    if self.expected:
      self._eta.total = self.expected  # run.py sets `expected` once it knows what the cache already holds
      self._log(f"coalitions {self.done}/{self.expected} | {rate:.2f}/s | {self._eta.text(self.done)}")
    else:
      self._log(f"coalitions {self.done} | {rate:.2f}/s")
