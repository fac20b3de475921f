"""Offline stand-ins in the upstream schemas: evaluation records and FineWeb-Edu parquet, for the rehearsal study.

    python -m ffnjax.data.fixtures --output=DIR [--records=6] [--documents=400]

writes DIR/eval/ (every task of ffnjax.data.fetch.EVAL_SOURCES, in the evaluator's layout, the same file names
and fields that `ffnjax.data.fetch --what=eval` writes) and DIR/fineweb-edu/sample-fixture/*.parquet (FineWeb-Edu
columns, `text` the one read). The text comes from the embedded Shakespeare corpus, so the numbers mean nothing:
these files exercise the paper's code path (file formats, fields, tokenizer, task set) without a download.
`records(task, n)` is also what the fetch tests serve in place of the Hugging Face Hub.
"""

from __future__ import annotations

import io
import json
import random
import sys

from absl import app, flags

from ffnjax.core import rundir


def _lines(seed: int = 0) -> list[str]:
  from ffnjax.data import shakespeare

  train, _ = shakespeare.split()
  # Stage directions ("[Exit]") would vanish in HellaSwag's preprocessing and leave empty choices.
  lines = [ln.strip() for text in train.values() for ln in text.splitlines()
           if len(ln.split()) >= 6 and "[" not in ln and "]" not in ln]
  random.Random(seed).shuffle(lines)
  return lines


def records(task: str, n: int, seed: int = 0) -> list[dict]:
  """`n` records of `task` in its upstream (Hugging Face / MEND) schema."""
  rng = random.Random(f"{task}-{seed}")
  lines = _lines(seed)
  pick = lambda: lines[rng.randrange(len(lines))]  # noqa: E731
  words = lambda k: " ".join(pick().split()[:k])  # noqa: E731
  out = []
  for i in range(n):
    if task == "lambada_openai":
      out.append({"text": pick()})
    elif task == "wikitext":
      out.append({"page": f" = {words(3)} = \n {pick()} {pick()} \n = = {words(2)} = = \n {pick()} \n"})
    elif task == "hellaswag":
      out.append({"ind": i, "activity_label": words(2), "ctx_a": words(8), "ctx_b": words(3).lower(),
                  "ctx": "", "endings": [words(6) for _ in range(4)], "source_id": f"fixture~{i}",
                  "split": "val", "split_type": "indomain", "label": str(rng.randrange(4))})
    elif task == "piqa":
      out.append({"goal": words(8), "sol1": words(6), "sol2": words(6), "label": rng.randrange(2)})
    elif task == "winogrande":
      a, b = words(1), words(1)
      out.append({"sentence": f"{words(5)} _ {words(5)}.", "option1": a, "option2": b,
                  "answer": str(rng.randrange(1, 3))})
    elif task in ("arc_easy", "arc_challenge"):
      labels = ["A", "B", "C", "D"]
      out.append({"id": f"fixture-{i}", "question": words(10) + "?",
                  "choices": {"text": [words(4) for _ in labels], "label": labels},
                  "answerKey": labels[rng.randrange(4)]})
    elif task == "boolq":
      out.append({"question": words(7).lower(), "passage": f"{pick()} {pick()}", "idx": i,
                  "label": rng.randrange(2)})
    elif task == "openbookqa":
      labels = ["A", "B", "C", "D"]
      out.append({"id": f"fixture-{i}", "question_stem": words(9),
                  "choices": {"text": [words(3) for _ in labels], "label": labels},
                  "answerKey": labels[rng.randrange(4)]})
    elif task == "zsre":
      subject = words(2)
      out.append({"subject": subject, "src": f"What is {subject} known for?", "pred": "",
                  "rephrase": f"{subject} is known for what?", "alt": words(2), "answers": [words(2)],
                  "loc": f"nq question: {words(6)}", "loc_ans": words(2), "cond": ""})
    else:
      raise ValueError(f"fixtures: no records for task {task!r}")
  return out


def write_eval(output: str, n: int = 6, seed: int = 0) -> dict[str, str]:
  """Every evaluation set of `ffnjax.data.fetch` with `n` records, in its layout; returns task -> path."""
  from ffnjax.data.fetch import EVAL_SOURCES

  paths = {}
  for source in EVAL_SOURCES:
    path = rundir.join(output, source.file)
    recs = records(source.task, n, seed)
    # zsre_mend_eval.json is one JSON array; the hub sets are JSON lines.
    rundir.write_text(path, json.dumps(recs) if path.endswith(".json") else "".join(json.dumps(r) + "\n" for r in recs))
    paths[source.task] = path
  return paths


def write_fineweb_edu(output: str, documents: int = 400, shards: int = 2, seed: int = 0) -> str:
  """`shards` parquet files with the FineWeb-Edu columns; returns their directory."""
  import pyarrow as pa
  import pyarrow.parquet as pq

  rng = random.Random(seed)
  lines = _lines(seed)
  per_shard = -(-documents // shards)
  for s in range(shards):
    texts = [" ".join(lines[rng.randrange(len(lines))] for _ in range(rng.randint(3, 12))) for _ in range(per_shard)]
    table = pa.table({"text": texts, "id": [f"<urn:fixture:{s}:{i}>" for i in range(per_shard)],
                      "dump": ["fixture"] * per_shard, "url": [f"https://example.org/{s}/{i}" for i in range(per_shard)],
                      "score": [3.0] * per_shard, "int_score": [3] * per_shard,
                      "token_count": [len(t.split()) for t in texts]})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    rundir.write_bytes(rundir.join(output, f"{s:03d}_00000.parquet"), buffer.getvalue())
  return output


def main(argv):
  if len(argv) > 1:
    sys.exit(f"fixtures: unexpected arguments {argv[1:]}")
  f = flags.FLAGS
  write_eval(rundir.join(f.output, "eval"), f.records)
  print(write_fineweb_edu(rundir.join(f.output, "fineweb-edu", "sample-fixture"), f.documents))


if __name__ == "__main__":
  # Flags are defined here only: library imports (tests, the study) must not claim flag names.
  flags.DEFINE_string("output", None, "Writes OUTPUT/eval and OUTPUT/fineweb-edu/sample-fixture.")
  flags.DEFINE_integer("records", 6, "Records per evaluation task.")
  flags.DEFINE_integer("documents", 400, "FineWeb-Edu-format documents.")
  flags.mark_flag_as_required("output")
  app.run(main)
