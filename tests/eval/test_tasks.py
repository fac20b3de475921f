"""Every formatting rule against hand-written records in the upstream formats (lm-eval 0.4.x task definitions)."""

import ast
import math
import os

import numpy as np
import pytest

from ffnjax.eval import engine, metrics
from ffnjax.eval.tasks import get_task
from ffnjax.eval.tasks.hellaswag import preprocess
from ffnjax.eval.tasks.lambada import split_last_word
from ffnjax.eval.tasks.wikitext import count_bytes, count_words, detokenize

HELLASWAG = {  # the first record of Hugging Face hellaswag validation (ActivityNet)
  "ind": 24,
  "activity_label": "Roof shingle removal",
  "ctx_a": "A man is sitting on a roof.",
  "ctx_b": "he",
  "ctx": "A man is sitting on a roof. he",
  "endings": [
    "is using wrap to wrap a pair of skis.",
    "is ripping level tiles off.",
    "is holding a rubik's cube.",
    "starts pulling up roofing on a roof.",
  ],
  "source_id": "activitynet~v_-JhWjGDPHMY",
  "split": "val",
  "split_type": "indomain",
  "label": "3",
}


def test_hellaswag_prompt_and_choices():
  task = get_task("hellaswag")
  assert task.requests(HELLASWAG) == [
    ("Roof shingle removal: A man is sitting on a roof. He", " is using wrap to wrap a pair of skis."),
    ("Roof shingle removal: A man is sitting on a roof. He", " is ripping level tiles off."),
    ("Roof shingle removal: A man is sitting on a roof. He", " is holding a rubik's cube."),
    ("Roof shingle removal: A man is sitting on a roof. He", " starts pulling up roofing on a roof."),
  ]
  assert task.doc_to_target(HELLASWAG) == 3
  # ctx_b.capitalize() lowercases the rest; an empty ctx_b leaves a trailing space that preprocess strips
  doc = dict(HELLASWAG, ctx_a="Then", ctx_b="THE Man JUMPS")
  assert task.doc_to_text(doc) == "Roof shingle removal: Then The man jumps"
  assert task.doc_to_text(dict(HELLASWAG, ctx_b="")) == "Roof shingle removal: A man is sitting on a roof."


def test_hellaswag_preprocess_wikihow_markup():
  text = "Home and Garden: [header] How to grow tomatoes [title] Pick a sunny spot. [step] Tomatoes need light. "
  assert preprocess(text) == "Home and Garden: How to grow tomatoes. Pick a sunny spot. Tomatoes need light."
  # one pass of "  " -> " ": three spaces left by a removed bracket become two, as in lm-eval
  assert preprocess("a [x]  b") == "a  b"
  # strip runs first, so a bracket at the start leaves a leading space behind
  assert preprocess(" [substeps] Wash them.") == " Wash them."


def test_piqa():
  doc = {
    "goal": "How do I ready a guinea pig cage for it's new occupants?",
    "sol1": "Provide the guinea pig with a cage full of a few inches of bedding made of ripped paper strips.",
    "sol2": "Provide the guinea pig with a cage full of a few inches of bedding made of ripped jeans material.",
    "label": 0,
  }
  task = get_task("piqa")
  ctx = "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:"
  assert task.requests(doc) == [(ctx, " " + doc["sol1"]), (ctx, " " + doc["sol2"])]
  assert task.doc_to_target(doc) == 0


@pytest.mark.parametrize("name", ["arc_easy", "arc_challenge"])
def test_arc_label_lookup(name):
  task = get_task(name)
  letters = {
    "question": "Which factor will most likely cause a person to develop a fever?",
    "choices": {
      "text": [
        "a leg muscle relaxing after exercise",
        "a bacterial population in the bloodstream",
        "several viral particles on the skin",
        "carbohydrates being digested",
      ],
      "label": ["A", "B", "C", "D"],
    },
    "answerKey": "B",
  }
  numbers = {"question": "Q?", "choices": {"text": ["x", "y", "z"], "label": ["1", "2", "3"]}, "answerKey": "3"}
  assert task.doc_to_target(letters) == 1 and task.doc_to_target(numbers) == 2
  assert task.requests(letters)[1] == (
    "Question: Which factor will most likely cause a person to develop a fever?\nAnswer:",
    " a bacterial population in the bloodstream",
  )
  assert task.chance([letters, numbers]) == pytest.approx((1 / 4 + 1 / 3) / 2)


def test_winogrande_partial_scoring():
  doc = {
    "sentence": "Sarah was a much better surgeon than Maria so _ always got the harder cases.",
    "option1": "Sarah",
    "option2": "Maria",
    "answer": "1",
  }
  task = get_task("winogrande")
  assert task.requests(doc) == [
    ("Sarah was a much better surgeon than Maria so Sarah", " always got the harder cases."),
    ("Sarah was a much better surgeon than Maria so Maria", " always got the harder cases."),
  ]
  assert task.doc_to_target(doc) == 0 and task.doc_to_target(dict(doc, answer="2")) == 1
  # the blank at the very end: an empty continuation after the delimiter
  assert task.requests(dict(doc, sentence="The winner was _"))[0] == ("The winner was Sarah", " ")
  assert task.higher_is_better == {"acc": True}


def test_lambada_split_on_single_spaces():
  assert split_last_word("the cat sat on the mat") == ("the cat sat on the", " mat")
  # split(" ") keeps empty words and newlines: a double space leaves a trailing space in the context, which the
  # engine then moves to the continuation
  assert split_last_word("the cat sat on the  mat") == ("the cat sat on the ", " mat")
  assert split_last_word("line one\nend") == ("line", " one\nend")


def test_wikitext_detokenizer():
  page = (
    " = Robert Boulter = \n Robert Boulter is an English film , television and theatre actor . He had a "
    "guest @-@ starring role in 2000 , earning $ 1 @,@ 000 @.@ 5 ( approximately ) . \n = = Career = = \n"
    ' He \'s in " The Bill " ; N others : yes ! why ? \n'
  )
  assert detokenize(page) == (
    " = Robert Boulter =\nRobert Boulter is an English film, television and theatre actor. He had a "
    "guest-starring role in 2000, earning $ 1,000.5 (approximately).\n== Career ==\n"
    'He\'s in "The Bill"; 1 others: yes! why?\n'
  )
  assert detokenize("the players ' union") == "the players' union"


def test_wikitext_counts_on_the_original_page():
  page = " = Title = \n Some text here . \n"
  # re.split on a page that starts and ends with whitespace yields empty strings at both ends: lm-eval counts them
  assert count_words(page) == len(["", "=", "Title", "=", "Some", "text", "here", ".", ""]) == 9
  assert count_bytes("naïve") == 6


def test_metric_definitions():
  values = [1.0, 0.0, 1.0, 1.0]
  assert metrics.mean(values) == 0.75
  assert metrics.mean_stderr(values) == pytest.approx(np.std(values, ddof=1) / 2)
  assert math.isnan(metrics.mean_stderr([1.0]))
  lls = [-2.0, -4.0]
  assert metrics.perplexity(lls) == pytest.approx(math.exp(3.0))
  assert metrics.weighted_perplexity(lls, [2, 4]) == pytest.approx(math.exp(1.0))
  assert metrics.bits_per_byte(lls, [3, 3]) == pytest.approx(1.0 / math.log(2))
  # the bootstrap stderr of exp(-mean) is close to the delta method's exp(-mean) * sem
  x = np.random.default_rng(0).normal(-3.0, 1.0, 500)
  delta = math.exp(-x.mean()) * x.std(ddof=1) / math.sqrt(len(x))
  assert metrics.perplexity_stderr(x) == pytest.approx(delta, rel=0.1)


def test_multiple_choice_acc_and_acc_norm():
  task = get_task("piqa")
  doc = {"goal": "g", "sol1": "a much longer answer", "sol2": "short", "label": 0}
  # raw LL prefers the short answer, per-character LL the long one
  scores = engine.Scores(ll=np.array([-10.0, -6.0]), num_greedy=np.zeros(2, int), num_tokens=np.ones(2, int))
  out = task.process(doc, scores, 0, 2)
  assert (out["prediction"], out["acc"], out["acc_norm"]) == (1, 0.0, 1.0)
  agg = task.aggregate([out, dict(out, acc=1.0)])
  assert agg["acc"] == 0.5 and agg["acc_norm"] == 1.0 and agg["acc_stderr"] == pytest.approx(0.5)


# The first validation record of super_glue/boolq (lm-eval's source): question lower-case without "?", label 0/1.
BOOLQ = {
  "question": "do iran and afghanistan speak the same language",
  "passage": "Persian language -- Persian (/ˈpɜːrʒən, -ʃən/), also known by its endonym Farsi (فارسی fārsi "
  "(fɒːɾˈsiː) ( listen)), is one of the Western Iranian languages within the Indo-Iranian branch of "
  "the Indo-European language family.",
  "idx": 0,
  "label": 1,
}


def test_boolq_prompt_choices_and_label_fields():
  task = get_task("boolq")
  ctx = BOOLQ["passage"] + "\nQuestion: do iran and afghanistan speak the same language?\nAnswer:"
  assert task.requests(BOOLQ) == [(ctx, " no"), (ctx, " yes")]
  assert task.doc_to_target(BOOLQ) == 1 and task.doc_to_target(dict(BOOLQ, label=0)) == 0
  # google/boolq and TFDS bool_q carry the gold as answer: true/false
  google = {"question": BOOLQ["question"], "passage": BOOLQ["passage"], "answer": False, "title": "Persian language"}
  assert task.doc_to_target(google) == 0 and task.requests(google) == task.requests(BOOLQ)
  assert task.higher_is_better == {"acc": True} and task.primary_metric == "acc"
  assert task.chance([BOOLQ]) == 0.5


def test_openbookqa_stem_choices_and_gold():
  # the first test record of Hugging Face openbookqa, config main
  doc = {
    "id": "8-343",
    "question_stem": "A person wants to start saving money so that they can afford a nice "
    "vacation at the end of the year. After looking over their budget and expenses, they decide the best way "
    "to save money is to",
    "choices": {
      "text": [
        "make more phone calls",
        "quit eating lunch out",
        "buy less with monopoly money",
        "have lunch with friends",
      ],
      "label": ["A", "B", "C", "D"],
    },
    "answerKey": "B",
  }
  task = get_task("openbookqa")
  assert task.requests(doc) == [(doc["question_stem"], " " + t) for t in doc["choices"]["text"]]
  assert task.doc_to_target(doc) == 1
  assert task.doc_to_target(dict(doc, answerKey=" D")) == 3  # lm-eval strips the key: answerKey.lstrip()
  assert task.higher_is_better == {"acc": True, "acc_norm": True} and task.primary_metric == "acc_norm"
  assert task.chance([doc]) == 0.25


@pytest.mark.parametrize(
  "name,doc",
  [
    ("boolq", BOOLQ),
    (
      "openbookqa",
      {
        "question_stem": "Which is a metal",
        "choices": {"text": ["iron", "wood"], "label": ["A", "B"]},
        "answerKey": "A",
      },
    ),
  ],
)
def test_boolq_openbookqa_match_lm_eval_templates(name, doc):
  """Our requests equal what lm-eval 0.4's own task YAML renders (its Jinja templates, offline)."""
  import lm_eval
  import yaml
  from lm_eval.utils import apply_template

  root = os.path.join(os.path.dirname(lm_eval.__file__), "tasks")
  path = {"boolq": "super_glue/boolq/default.yaml", "openbookqa": "openbookqa/openbookqa.yaml"}[name]
  with open(os.path.join(root, path)) as f:
    spec = yaml.safe_load(f)
  text = spec["doc_to_text"]
  text = apply_template(text, doc) if "{{" in text else doc[text]
  choices = spec["doc_to_choice"]
  choices = choices if isinstance(choices, list) else ast.literal_eval(apply_template(choices, doc))  # a list literal
  target = spec["doc_to_target"]
  target = int(apply_template(target, doc)) if "{{" in target else int(doc[target])
  task = get_task(name)
  assert task.requests(doc) == [(text, " " + c) for c in choices]
  assert task.doc_to_target(doc) == target


def test_boolq_record_without_gold_is_refused():
  from ffnjax.eval.sources import DataError

  with pytest.raises(DataError, match="neither field 'label'.*nor 'answer'"):
    get_task("boolq").check({"question": "q", "passage": "p"}, 3, "boolq/validation.jsonl")
