"""Upstream-format files for arXiv 2409.14381's six tasks, written by hand for tests (no downloads).

Every file has the Hugging Face fields of the dataset lm-eval reads (super_glue/boolq, ai2_arc, piqa,
winogrande_xl, openbookqa main) under DATA_DIR/<task>/<split>.jsonl. The right answer is a line of plain English in
the style of the training corpus; the wrong ones are random letters, the same words shuffled or another line's
end, in turn, so a small model trained on Shakespeare for a few steps is above chance on the choice tasks without
being perfect, and removing sub-layers changes its scores.
BoolQ's answers are " no"/" yes" whatever the record; its labels alternate, so any model sits at chance there.
"""

import json
import os

import numpy as np

PHRASES = [
  "the king is dead and the queen is here",
  "my lord I will go with you to the court",
  "good night sweet prince and flights of angels",
  "what is the matter with you my good lord",
  "I do love thee with all my heart and soul",
  "come let us go in and speak with the duke",
  "the night is long that never finds the day",
  "now is the winter of our discontent",
  "all the world is a stage and all the men and women",
  "I have done the deed and heard you not a noise",
  "the lady doth protest too much methinks",
  "to be or not to be that is the question",
  "what light through yonder window breaks",
  "a horse a horse my kingdom for a horse",
  "the course of true love never did run smooth",
  "there is nothing either good or bad",
  "if music be the food of love play on",
  "I am a man more sinned against than sinning",
  "the fault dear brother is not in our stars",
  "we are such stuff as dreams are made on",
]


def _wrong(rng, like: str, i: int) -> str:
  """A wrong answer of three kinds in turn: random letters in `like`'s word lengths (easy), `like`'s words
  shuffled (needs word order), the end of another line (needs the question)."""
  words = like.split()
  if i % 3 == 0:
    letters = np.array(list("bcdfghjklmnpqrstvwxz"))
    return " ".join("".join(rng.choice(letters, len(w))) for w in words)
  if i % 3 == 1 and len(set(words)) > 1:
    while True:
      shuffled = " ".join(rng.permutation(words))
      if shuffled != like:
        return shuffled
  other = PHRASES[int(rng.integers(len(PHRASES)))].split()
  return " ".join(other[len(other) // 2 :]) if " ".join(other[len(other) // 2 :]) != like else "and so the night"


def records(task: str, n: int, seed: int = 0) -> list[dict]:
  rng = np.random.default_rng(seed)
  out = []
  for i in range(n):
    good = PHRASES[i % len(PHRASES)]
    words = good.split(" ")
    stem, tail = " ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2 :])
    if task == "boolq":
      out.append({"question": "is " + stem, "passage": good, "idx": i, "label": i % 2})
    elif task in ("arc_easy", "arc_challenge", "openbookqa"):
      k = 4
      gold = int(rng.integers(k))
      texts = [_wrong(rng, tail, i) for _ in range(k)]
      texts[gold] = tail
      labels = list("ABCD")
      if task == "openbookqa":
        out.append(
          {
            "id": f"{i}-1",
            "question_stem": stem,
            "choices": {"text": texts, "label": labels},
            "answerKey": labels[gold],
          }
        )
      else:
        out.append(
          {
            "id": f"Mercury_{i}",
            "question": stem,
            "choices": {"text": texts, "label": labels},
            "answerKey": labels[gold],
          }
        )
    elif task == "piqa":
      gold = int(rng.integers(2))
      sols = [_wrong(rng, tail, i), _wrong(rng, tail, i)]
      sols[gold] = tail
      out.append({"goal": stem, "sol1": sols[0], "sol2": sols[1], "label": gold})
    elif task == "winogrande":
      j = len(words) // 2
      options = [words[j], _wrong(rng, words[j] + " " + words[j - 1], i).split()[0]]
      gold = int(rng.integers(2))
      if gold:
        options.reverse()
      out.append(
        {
          "sentence": " ".join(words[:j] + ["_"] + words[j + 1 :]),
          "option1": options[0],
          "option2": options[1],
          "answer": str(gold + 1),
        }
      )
    else:
      raise ValueError(task)
  return out


FILES = {
  "boolq": "boolq/validation.jsonl",
  "arc_easy": "arc_easy/test.jsonl",
  "arc_challenge": "arc_challenge/test.jsonl",
  "piqa": "piqa/validation.jsonl",
  "winogrande": "winogrande/validation.jsonl",
  "openbookqa": "openbookqa/test.jsonl",
}


def write(data_dir: str, n: int = 16) -> str:
  for i, (task, rel) in enumerate(FILES.items()):
    path = os.path.join(data_dir, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
      for rec in records(task, n, seed=i):
        f.write(json.dumps(rec) + "\n")
  return data_dir
