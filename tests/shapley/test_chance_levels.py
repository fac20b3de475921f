"""--chance: chance levels for the open-vocabulary accuracy tasks, which have none of their own."""

import pytest

from ffnjax.eval.tasks import parse_tasks
from ffnjax.shapley.run import parse_chance

TASKS = parse_tasks("lambada_openai,zsre,hellaswag,wikitext")


def test_levels_for_open_vocabulary_tasks():
  assert parse_chance(None, TASKS) == {}
  assert parse_chance("lambada_openai=0, zsre=0.01", TASKS) == {"lambada_openai": 0.0, "zsre": 0.01}


@pytest.mark.parametrize(
  "spec, says",
  [
    ("hellaswag=0.1", "has a chance level of its own"),  # a choice task keeps 1 / choices
    ("wikitext=0", "no accuracy"),
    ("arc_easy=0", "is not one of --tasks"),
    ("zsre", "TASK=LEVEL"),
    ("zsre=1.5", "LEVEL in [0, 1]"),
    ("zsre=x", "LEVEL in [0, 1]"),
  ],
)
def test_refusals_name_the_item(spec, says):
  with pytest.raises(ValueError, match=r".*") as e:
    parse_chance(spec, TASKS)
  assert says in str(e.value)
