"""The task registry. Each task reads its upstream format from local files under DATA_DIR:

| task           | metrics                                        | file (DATA_DIR/...)                      | fields |
|----------------|------------------------------------------------|------------------------------------------|--------|
| lambada_openai | acc, perplexity                                | lambada_openai/test.*                    | text |
| wikitext       | word_perplexity, byte_perplexity, bits_per_byte | wikitext/test.*                          | page |
| hellaswag      | acc, acc_norm                                  | hellaswag/validation.*                   | ctx_a, ctx_b, activity_label, endings, label |
| piqa           | acc, acc_norm                                  | piqa/validation.*  (or TFDS piqa/)       | goal, sol1, sol2, label |
| arc_easy       | acc, acc_norm                                  | arc_easy/test.*  (or TFDS ai2_arc/)      | question, choices{text,label}, answerKey |
| arc_challenge  | acc, acc_norm                                  | arc_challenge/test.*  (or TFDS ai2_arc/) | question, choices{text,label}, answerKey |
| winogrande     | acc                                            | winogrande/validation.* (or TFDS winogrande/) | sentence, option1, option2, answer |
| boolq          | acc                                            | boolq/validation.* (or TFDS bool_q/)     | question, passage, label (or answer) |
| openbookqa     | acc, acc_norm                                  | openbookqa/test.* (or TFDS openbookqa/)  | question_stem, choices{text,label}, answerKey |
| zsre           | acc (token accuracy)                           | zsre/zsre_mend_eval.json or zsre_mend_eval.json | src, answers |

`*` = .jsonl, .json, .parquet or HF hub parquet shards `<split>-*.parquet` (see ffnjax/eval/sources.py).
"""

from __future__ import annotations

from ffnjax.core.errors import TaskError
from ffnjax.eval.tasks.arc import ARC
from ffnjax.eval.tasks.base import Task
from ffnjax.eval.tasks.boolq import BoolQ
from ffnjax.eval.tasks.hellaswag import HellaSwag
from ffnjax.eval.tasks.lambada import LambadaOpenAI
from ffnjax.eval.tasks.openbookqa import OpenBookQA
from ffnjax.eval.tasks.piqa import PIQA
from ffnjax.eval.tasks.wikitext import WikiText
from ffnjax.eval.tasks.winogrande import WinoGrande
from ffnjax.eval.tasks.zsre import ZsRE

TASKS: dict[str, Task] = {
  t.name: t
  for t in (
    LambadaOpenAI(),
    WikiText(),
    HellaSwag(),
    PIQA(),
    ARC("arc_easy", "ARC-Easy"),
    ARC("arc_challenge", "ARC-Challenge"),
    WinoGrande(),
    BoolQ(),
    OpenBookQA(),
    ZsRE(),
  )
}


class UnknownTaskError(TaskError):
  """A task name not in the registry; the message lists the known ones."""


def get_task(name: str) -> Task:
  if name not in TASKS:
    raise UnknownTaskError(f"unknown eval task {name!r}; valid tasks: {', '.join(TASKS)}")
  return TASKS[name]


def parse_tasks(spec: str | list[str] | tuple[str, ...]) -> list[Task]:
  """'lambada_openai,wikitext' (or a list) -> tasks, in order, without repeats."""
  names = [n.strip() for n in (spec.split(",") if isinstance(spec, str) else spec) if n.strip()]
  if not names:
    raise UnknownTaskError(f"no eval tasks given; valid tasks: {', '.join(TASKS)}")
  return [get_task(n) for n in dict.fromkeys(names)]


__all__ = ["TASKS", "Task", "UnknownTaskError", "get_task", "parse_tasks"]
