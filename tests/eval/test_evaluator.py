"""prepare/score/evaluate over upstream-format files: metrics, records, zsRE teacher forcing, bad input."""

import json
import os

import numpy as np
import pytest
from lm_helpers import naive_logprobs, random_lm

from ffnjax.eval import DataError, UnknownTaskError, evaluate, prepare, score
from ffnjax.eval.tasks.zsre import encode_instance

HELLASWAG = [
  {
    "activity_label": "Cat",
    "ctx_a": "The cat sat on the mat.",
    "ctx_b": "she",
    "endings": ["is the king.", "sat on the mat.", "does appear in the play.", "is a [title] question."],
    "label": "1",
  },
  {
    "activity_label": "Play",
    "ctx_a": "Which character does appear in the play?",
    "ctx_b": "",
    "endings": ["Hamlet.", "Macbeth.", "Lear.", "The cat."],
    "label": "0",
  },
  {
    "activity_label": "King",
    "ctx_a": "He is the king.",
    "ctx_b": "the",
    "endings": ["king is in the play.", "cat is on the mat.", "answer is the question.", "mat is the cat."],
    "label": "3",
  },
]
ZSRE = [
  {
    "subject": "Hamlet",
    "src": "In which play does the character Hamlet appear?",
    "answers": ["Hamlet"],
    "rephrase": "",
    "alt": "",
    "loc": "",
    "loc_ans": "",
    "pred": "",
    "cond": "",
  },
  {"subject": "X", "src": "Which king is the character of the play?", "answers": ["King Lear of the play"]},
  {"subject": "Y", "src": "", "answers": ["the cat sat on the mat"]},
]


def write_jsonl(path, records):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in records)


@pytest.fixture
def data_dir(tmp_path):
  d = tmp_path / "data"
  write_jsonl(str(d / "hellaswag" / "validation.jsonl"), HELLASWAG)
  write_jsonl(
    str(d / "lambada_openai" / "test.jsonl"),
    [
      {"text": "the cat sat on the mat and the cat sat on the mat"},
      {"text": "he is the king of the play"},
      {"text": "which character does appear in the play hamlet"},
    ],
  )
  write_jsonl(
    str(d / "wikitext" / "test.jsonl"),
    [
      {"page": " = Hamlet = \n The king is in the play . He is the king @-@ character . \n" * 3},
      {"page": ""},
      {"page": " the cat sat on the mat , and she sat on the cat . \n"},
    ],
  )
  os.makedirs(d / "zsre")
  with open(d / "zsre" / "zsre_mend_eval.json", "w") as f:
    json.dump(ZSRE, f)
  return str(d)


def test_evaluate_end_to_end(tok, lm, data_dir, tmp_path):
  records = str(tmp_path / "records.jsonl")
  results = evaluate(
    lm,
    tok,
    "hellaswag,lambada_openai,wikitext,zsre",
    data_dir,
    limit=0,
    max_length=16,
    token_budget=64,
    records_path=records,
  )
  assert list(results) == ["hellaswag", "lambada_openai", "wikitext", "zsre"]
  hs = results["hellaswag"].to_json()
  assert hs["num_examples"] == 3 and hs["chance"] == 0.25
  assert set(hs["metrics"]) == {"acc", "acc_stderr", "acc_norm", "acc_norm_stderr"}
  assert hs["below_chance"] == (hs["metrics"]["acc_norm"] < 0.25)
  assert set(results["lambada_openai"].metrics) == {"acc", "acc_stderr", "perplexity", "perplexity_stderr"}
  assert results["lambada_openai"].chance is None and not results["lambada_openai"].below_chance
  wt = results["wikitext"].metrics
  assert wt["bits_per_byte"] == pytest.approx(np.log2(wt["byte_perplexity"]))
  lines = [json.loads(line) for line in open(records)]
  assert len(lines) == 3 + 3 + 3 + 3
  first = lines[0]
  assert first["task"] == "hellaswag" and first["doc_id"] == 0 and first["gold"] == 1
  assert [r["continuation"] for r in first["requests"]] == [
    " is the king.",
    " sat on the mat.",
    " does appear in the play.",
    " is a. question.",
  ]
  assert first["prediction"] == int(np.argmax([r["ll"] for r in first["requests"]]))
  # the records' LLs are the engine's: lambada acc is the mean of is_greedy, perplexity exp(-mean LL)
  lam = [r for r in lines if r["task"] == "lambada_openai"]
  lls = [r["requests"][0]["ll"] for r in lam]
  assert results["lambada_openai"].metrics["perplexity"] == pytest.approx(np.exp(-np.mean(lls)))
  wiki = [r for r in lines if r["task"] == "wikitext"]
  assert wiki[1]["ll"] == 0.0 and wiki[1]["windows"] == 0  # an empty page scores nothing
  assert wiki[0]["windows"] > 1  # longer than max_length: several disjoint windows
  assert all(isinstance(r["prediction"], str) for r in lines if r["task"] == "zsre")


def test_prepare_once_score_many(tok, data_dir):
  prepared = prepare("hellaswag", tok, data_dir, limit=2, max_length=32)
  assert len(prepared.docs) == 2 and prepared.num_requests == 8
  a = score(prepared, random_lm(tok.vocab_size, seed=1))
  b = score(prepared, random_lm(tok.vocab_size, seed=2))
  again = score(prepared, random_lm(tok.vocab_size, seed=1))
  assert a.metrics == again.metrics
  assert len(prepared._plans) == 1  # the batch plan is built once
  assert a.num_examples == b.num_examples == 2


def test_zsre_single_pass_equals_token_by_token_loop(tok, data_dir):
  lm = random_lm(tok.vocab_size, seed=5, scale=1.0)
  prepared = prepare("zsre", tok, data_dir, max_length=64)
  result = score(prepared, lm, records=True, token_budget=32)
  for rec, doc in zip(result.records, ZSRE):
    prompt, target = encode_instance(tok, doc["src"], doc["answers"][0])
    seq, hits, argmaxes = list(prompt), 0, []
    for t in target:  # compare the argmax with the next target token, then append the target token
      argmaxes.append(int(np.argmax(naive_logprobs(lm, seq)[-1])))
      hits += argmaxes[-1] == t
      seq.append(t)
    assert rec["acc"] == pytest.approx(hits / len(target))
    assert rec["prediction"] == tok.decode(argmaxes)
  assert result.metrics["acc"] == pytest.approx(np.mean([r["acc"] for r in result.records]))


def test_zsre_accuracy_counts_partial_matches(tok, tmp_path):
  """A model that always predicts token 'the' gets exactly the fraction of 'the' tokens in each answer."""
  import jax.numpy as jnp

  the = tok.encode(" the")[0]

  def always_the(tokens):
    return jnp.zeros(tokens.shape + (tok.vocab_size,)).at[..., the].set(1.0)

  with open(tmp_path / "zsre_mend_eval.json", "w") as f:  # the top-level file name is accepted too
    json.dump([{"src": "q?", "answers": [a]} for a in ["the cat the mat", "the the", "cat"]], f)
  prepared = prepare("zsre", tok, str(tmp_path), max_length=32)
  result = score(prepared, always_the)
  per_doc = [0.5, 1.0, 0.0]
  assert result.metrics["acc"] == pytest.approx(np.mean(per_doc))
  assert result.metrics["acc_stderr"] == pytest.approx(np.std(per_doc, ddof=1) / np.sqrt(3))


# ------------------------------------------------------------------------------------------------- bad input


def test_unknown_task_names_the_valid_ones(tok, data_dir):
  with pytest.raises(
    UnknownTaskError,
    match=r"unknown eval task 'hellaswagg'; valid tasks: lambada_openai, "
    r"wikitext, hellaswag, piqa, arc_easy, arc_challenge, winogrande, boolq, "
    r"openbookqa, zsre",
  ):
    evaluate(None, tok, "hellaswag,hellaswagg", data_dir)


def test_missing_file_names_the_expected_paths(tok, data_dir):
  with pytest.raises(DataError) as e:
    prepare("piqa", tok, data_dir)
  assert "task piqa: no data file" in str(e.value)
  assert os.path.join(data_dir, "piqa", "validation.jsonl") in str(e.value)
  assert "TFDS dir " + os.path.join(data_dir, "piqa") in str(e.value)


def test_missing_field_names_file_record_and_field(tok, tmp_path):
  path = str(tmp_path / "winogrande" / "validation.jsonl")
  write_jsonl(
    path,
    [
      {"sentence": "A _ b", "option1": "x", "option2": "y", "answer": "1"},
      {"sentence": "A _ b", "option1": "x", "answer": "2"},
    ],
  )
  with pytest.raises(
    DataError,
    match=rf"{path}: record 1 has no field 'option2' \(fields: \['answer', 'option1', "
    r"'sentence'\]\)",
  ):
    prepare("winogrande", tok, str(tmp_path))


def test_nested_field_and_bad_values(tok, tmp_path):
  path = str(tmp_path / "arc_easy" / "test.jsonl")
  write_jsonl(path, [{"question": "q", "choices": {"text": ["a", "b"]}, "answerKey": "A"}])
  with pytest.raises(DataError, match="record 0 has no field 'choices.label'"):
    prepare("arc_easy", tok, str(tmp_path))
  write_jsonl(path, [{"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "C"}])
  with pytest.raises(DataError, match=r"answerKey='C' is not one of choices.label=\['A', 'B'\]"):
    prepare("arc_easy", tok, str(tmp_path))
  path = str(tmp_path / "winogrande" / "validation.jsonl")
  write_jsonl(path, [{"sentence": "A _ b", "option1": "x", "option2": "y", "answer": ""}])
  with pytest.raises(DataError, match="field 'answer'='' must be '1' or '2'"):
    prepare("winogrande", tok, str(tmp_path))


def test_malformed_json_names_the_line(tok, tmp_path):
  path = tmp_path / "lambada_openai" / "test.jsonl"
  os.makedirs(path.parent)
  path.write_text('{"text": "a b"}\n{"text": \n')
  with pytest.raises(DataError, match=rf"{path}:2: not a JSON object per line"):
    prepare("lambada_openai", tok, str(tmp_path))


def test_parquet_and_json_array_exports(tok, tmp_path):
  import pyarrow as pa
  import pyarrow.parquet as pq

  os.makedirs(tmp_path / "piqa")
  rows = [{"goal": "g1", "sol1": "a", "sol2": "b", "label": 1}, {"goal": "g2", "sol1": "c", "sol2": "d", "label": 0}]
  pq.write_table(pa.Table.from_pylist(rows), str(tmp_path / "piqa" / "validation-00000-of-00001.parquet"))
  assert prepare("piqa", tok, str(tmp_path)).docs == rows
  with open(tmp_path / "piqa" / "validation.json", "w") as f:
    json.dump(rows[:1], f)
  assert prepare("piqa", tok, str(tmp_path)).docs == rows[:1]  # .json comes before the parquet shards


def test_tfds_piqa_is_read_and_refused_variants_are_named(tok, tmp_path):
  import tensorflow_datasets as tfds

  os.makedirs(tmp_path / "piqa")  # a (mocked) prepared TFDS dir
  with tfds.testing.mock_data(num_examples=4):
    prepared = prepare("piqa", tok, str(tmp_path), limit=3)
  assert len(prepared.docs) == 3 and prepared.num_requests == 6
  assert all(set(d) == {"goal", "sol1", "sol2", "label"} and d["label"] in (0, 1) for d in prepared.docs)
  os.makedirs(tmp_path / "hellaswag")
  with pytest.raises(DataError, match="TFDS hellaswag has no ctx_a/ctx_b fields"):
    prepare("hellaswag", tok, str(tmp_path))
  os.makedirs(tmp_path / "lambada")
  with pytest.raises(DataError, match="TFDS lambada is the original LAMBADA release, not the OpenAI variant"):
    prepare("lambada_openai", tok, str(tmp_path))


def test_tfds_label_conversions():
  from ffnjax.eval.tasks import arc, winogrande

  ex = {"question": "q", "choices": {"text": ["a", "b", "c"], "label": [0, 1, 2]}, "answerKey": 2, "id": "x"}
  assert arc._from_tfds(ex) == {
    "question": "q",
    "choices": {"text": ["a", "b", "c"], "label": ["A", "B", "C"]},
    "answerKey": "C",
  }
  assert winogrande._from_tfds({"sentence": "s _", "option1": "a", "option2": "b", "label": 1})["answer"] == "2"


def test_tfds_boolq_and_openbookqa(tok, tmp_path):
  import tensorflow_datasets as tfds

  from ffnjax.eval.tasks import boolq, openbookqa

  assert boolq._from_tfds({"question": "q", "passage": "p", "answer": True, "title": "t"}) == {
    "question": "q",
    "passage": "p",
    "answer": True,
  }
  ex = {
    "question": {"stem": "s", "choice_A": "a", "choice_B": "b", "choice_C": "c", "choice_D": "d"},
    "fact1": "f",
    "answerKey": 3,
  }
  assert openbookqa._from_tfds(ex) == {
    "question_stem": "s",
    "choices": {"text": ["a", "b", "c", "d"], "label": ["A", "B", "C", "D"]},
    "answerKey": "D",
  }
  for name in ("bool_q", "openbookqa"):
    os.makedirs(tmp_path / name)  # (mocked) prepared TFDS dirs
  with tfds.testing.mock_data(num_examples=3):
    assert prepare("boolq", tok, str(tmp_path)).num_requests == 6
    assert prepare("openbookqa", tok, str(tmp_path)).num_requests == 12
