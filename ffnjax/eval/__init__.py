"""The evaluator: lm-evaluation-harness-identical loglikelihood scoring, tasks, and the embedded evaluation set.

Modules: `engine` (requests -> LL / is_greedy: packed hidden-state scoring for our model, bucketed logits batches
for any logits function), `tasks` (registry + one module per
task), `sources` (upstream files / TFDS dirs), `metrics` (aggregations, stderr), `evaluator` (prepare / score /
evaluate), `embedded` (the offline quick-start set). `python -m ffnjax.eval` is the command line.
"""

from ffnjax.eval.engine import (
  HiddenScorer,
  encode_pair,
  loglikelihood,
  loglikelihood_rolling,
  plan_batches,
  plan_packed,
  score_batches,
  score_packed,
)
from ffnjax.eval.evaluator import TaskRequests, TaskResult, evaluate, prepare, resolve_data_dir, score
from ffnjax.eval.sources import DataError
from ffnjax.eval.tasks import TASKS, UnknownTaskError, get_task, parse_tasks

__all__ = [
  "DataError",
  "HiddenScorer",
  "TASKS",
  "TaskRequests",
  "TaskResult",
  "UnknownTaskError",
  "encode_pair",
  "evaluate",
  "get_task",
  "loglikelihood",
  "loglikelihood_rolling",
  "parse_tasks",
  "plan_batches",
  "plan_packed",
  "prepare",
  "resolve_data_dir",
  "score",
  "score_batches",
  "score_packed",
]
