"""`ffnjax.eval` against lm-evaluation-harness 0.4.13 itself (its HFLM, via ffnjax/eval/lmeval_ref/), per
request, on the same Hugging Face directory and the same upstream-format records of every task.

The model is a tiny random LlamaForCausalLM (logits O(1)) with SmolLM2's tokenizer (from the imported GGUF), so
BOS (1) != EOS (2): an empty context and WikiText's first rolling window must use BOS, as lm-eval's
`HFLM.prefix_token_id` does. max_length=48 makes the longer documents truncate and roll over several windows.
The SmolLM2 test compares WikiText per-page LLs of the real model with lm-eval, and shows what EOS would cost.
"""

import copy
import json
import os
import shutil

import numpy as np
import pytest

from ffnjax.eval.lmeval_ref import LMEVAL_HELP, SUPPORTED

MAX_LENGTH = 48
LL_TOL = 5e-4  # nats per request or WikiText page (a sum of windows), fp32 both sides; measured <= 1.3e-4
PAGE = (
  " = Valkyria Chronicles III = \n \n Senjō no Valkyria 3 : Unrecorded Chronicles is a tactical role @-@ "
  "playing video game developed by Sega and Media.Vision for the PlayStation Portable . Released in January "
  "2011 in Japan , it is the third game in the Valkyria series . \n"
)
PAGE2 = (
  " = Robert Boulter = \n \n Robert Boulter is an English film , television and theatre actor . He had a "
  "guest @-@ starring role on the television series The Bill in 2000 . \n"
)
RECORDS = {
  "lambada_openai/test": [
    {"text": "The sun rises in the east and sets in the west"},
    {"text": "She opened the door with her key and stepped inside the house"},
  ],
  "wikitext/test": [{"page": PAGE}, {"page": PAGE2}],
  "hellaswag/validation": [
    {
      "activity_label": "Removing ice from car",
      "ctx_a": "Then, the man writes over the snow covering the window "
      "of a car, and a woman wearing winter clothes smiles.",
      "ctx_b": "then",
      "endings": [
        ", the man adds wax to the windshield and cuts it.",
        ", a person board a ski lift, while two "
        "men supporting the head of the person wearing winter clothes snow as the we girls sled.",
        ", the man puts on a christmas coat, knitted with netting.",
        ", the man continues removing the snow on his car.",
      ],
      "label": "3",
    },
    {
      "activity_label": "Baking cookies",
      "ctx_a": "A female chef in white uniform shows a stack of baking pans "
      "in a large kitchen [title] presenting them.",
      "ctx_b": "the pans",
      "endings": [
        "contain egg yolks and baking soda.",
        "are then sprinkled with brown sugar.",
        "are placed in a strainer on the counter.",
        "are filled with pastries and loaded into the oven.",
      ],
      "label": "3",
    },
  ],
  "piqa/validation": [
    {
      "goal": "How do I ready a guinea pig cage for it's new occupants?",
      "sol1": "Provide the guinea pig with a cage full of a few inches of bedding made of ripped paper strips.",
      "sol2": "Provide the guinea pig with a cage full of a few inches of bedding made of ripped jeans material.",
      "label": 0,
    },
    {
      "goal": "dresser",
      "sol1": "replace drawer with bobby pin ",
      "sol2": "finish, woodgrain with  bobby pin ",
      "label": 1,
    },
  ],
  "winogrande/validation": [
    {
      "sentence": "Sarah was a much better surgeon than Maria so _ always got the easier cases.",
      "option1": "Sarah",
      "option2": "Maria",
      "answer": "2",
    },
    {
      "sentence": "They were worried the wine would ruin the bed and the blanket, but the _ was't ruined.",
      "option1": "blanket",
      "option2": "bed",
      "answer": "2",
    },
  ],
  "arc_easy/test": [
    {
      "question": "Which statement best explains why photosynthesis is the foundation of most food webs?",
      "choices": {
        "text": [
          "Sunlight is the source of energy for nearly all ecosystems.",
          "Most ecosystems are found on land instead of in water.",
          "Carbon dioxide is more available than other gases.",
          "The producers in all ecosystems are plants.",
        ],
        "label": ["A", "B", "C", "D"],
      },
      "answerKey": "A",
    },
    {
      "question": "Which is a renewable resource?",
      "choices": {"text": ["coal", "wind", "oil"], "label": ["1", "2", "3"]},
      "answerKey": "2",
    },
  ],
  "arc_challenge/test": [
    {
      "question": "An astronomer observes that a planet rotates faster after a meteorite impact. Which is the "
      "most likely effect of this increase in rotation?",
      "choices": {
        "text": [
          "Planetary density will decrease.",
          "Planetary years will become longer.",
          "Planetary days will become shorter.",
          "Planetary gravity will become stronger.",
        ],
        "label": ["A", "B", "C", "D"],
      },
      "answerKey": "C",
    }
  ],
  "boolq/validation": [
    {
      "question": "is the sun a star",
      "passage": "The Sun is the star at the center of the Solar System. It is a nearly perfect ball of hot plasma.",
      "label": 1,
      "idx": 0,
    },
    {
      "question": "can penguins fly",
      "passage": "Penguins are a group of aquatic flightless birds living almost exclusively in the south.",
      "label": 0,
      "idx": 1,
    },
  ],
  "openbookqa/test": [
    {
      "id": "7-980",
      "question_stem": "The sun is responsible for",
      "choices": {
        "text": [
          "puppies learning new tricks",
          "children growing up and getting old",
          "flowers wilting in a vase",
          "plants sprouting, blooming and wilting",
        ],
        "label": ["A", "B", "C", "D"],
      },
      "answerKey": "D",
    },
    {
      "id": "7-584",
      "question_stem": "When standing miles away from Mount Rushmore",
      "choices": {
        "text": [
          "the mountains seem very close",
          "the mountains are boring",
          "the mountains look the same as from up close",
          "the mountains seem smaller than in photographs",
        ],
        "label": ["A", "B", "C", "D"],
      },
      "answerKey": "D",
    },
  ],
}


def _write_data(root) -> str:
  for stem, records in RECORDS.items():
    path = os.path.join(root, stem + ".jsonl")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
      f.writelines(json.dumps(r) + "\n" for r in records)
  return str(root)


def _require_lmeval():
  try:
    import lm_eval  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
  except ImportError as e:
    pytest.fail(f"{LMEVAL_HELP} ({e})", pytrace=False)


def _tiny_hf_dir(path, tokenizer_dir) -> str:
  """A random LlamaForCausalLM (vocab = SmolLM2's) whose logits are O(1), saved with SmolLM2's tokenizer."""
  import torch
  import transformers

  cfg = transformers.LlamaConfig(
    vocab_size=49152,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    rms_norm_eps=1e-5,
    bos_token_id=1,
    eos_token_id=2,
    tie_word_embeddings=True,
  )
  torch.manual_seed(0)
  model = transformers.LlamaForCausalLM(cfg).eval()
  gen = torch.Generator().manual_seed(1)
  with torch.no_grad():
    for name, p in model.named_parameters():
      scale = 0.5 if "embed_tokens" in name else p.shape[-1] ** -0.5
      p.copy_(
        1.0 + 0.3 * torch.randn(p.shape, generator=gen) if p.ndim == 1 else scale * torch.randn(p.shape, generator=gen)
      )
  model.save_pretrained(str(path))
  for name in os.listdir(tokenizer_dir):
    shutil.copyfile(os.path.join(tokenizer_dir, name), os.path.join(path, name))
  return str(path)


def _ours(run_dir, data_dir, tasks, tmp_path) -> dict:
  """{task: [(context, continuation, ll, is_greedy), ...]} from `ffnjax.eval` records."""
  from ffnjax.eval.run import run

  records = str(tmp_path / "records.jsonl")
  run(
    run_dir,
    tasks=",".join(tasks),
    data_dir=data_dir,
    max_length=MAX_LENGTH,
    output=str(tmp_path / "r.json"),
    records=records,
  )
  out: dict = {t: [] for t in tasks}
  for line in open(records):
    rec = json.loads(line)
    out[rec["task"]] += [(r["context"], r["continuation"], r["ll"], r["is_greedy"]) for r in rec["requests"]]
  return out


@pytest.fixture(scope="module")
def both(smollm2_run, tmp_path_factory):
  _require_lmeval()
  from ffnjax.convert import import_to_run_dir
  from ffnjax.eval.lmeval_ref import run_lmeval

  tmp = tmp_path_factory.mktemp("vs_lmeval")
  hf_dir = _tiny_hf_dir(tmp / "hf", os.path.join(smollm2_run, "tokenizer"))
  data_dir = _write_data(tmp / "data")
  import_to_run_dir(hf_dir, str(tmp / "run"))
  ours = _ours(str(tmp / "run"), data_dir, SUPPORTED, tmp)
  theirs = run_lmeval(hf_dir, data_dir, SUPPORTED, max_length=MAX_LENGTH, batch_size=8)
  return ours, theirs


@pytest.mark.parametrize("task", SUPPORTED)
def test_every_request_matches_lm_eval(both, task):
  ours, theirs = both
  a, b = ours[task], theirs[task]["requests"]
  assert len(a) == len(b) > 0
  for (ctx, cont, ll, greedy), (ctx_ref, cont_ref, ll_ref, greedy_ref) in zip(a, b):
    assert (ctx, cont) == (ctx_ref, cont_ref)
    assert abs(ll - ll_ref) < LL_TOL, (task, ctx[-40:], cont, ll, ll_ref)
    assert greedy == greedy_ref
  print(f"{task}: {len(a)} requests, max |LL - lm-eval LL| {max(abs(x[2] - y[2]) for x, y in zip(a, b)):.2e}")


def test_smollm2_wikitext_pages_match_lm_eval_with_the_bos_prefix(smollm2, tmp_path):
  """Per-page rolling LLs of the real model; with EOS as the prefix (the old behaviour) they would not match."""
  _require_lmeval()
  from ffnjax.convert import smollm2 as smollm2_lib
  from ffnjax.eval import evaluate
  from ffnjax.eval.lmeval_ref import run_lmeval

  hf_dir = smollm2_lib.hf_dir()  # the imported run exported as float32 safetensors, once per cache
  data_dir = _write_data(tmp_path / "data")
  theirs = [r[2] for r in run_lmeval(hf_dir, data_dir, ["wikitext"], max_length=MAX_LENGTH)["wikitext"]["requests"]]

  def pages(tokenizer):
    path = str(tmp_path / f"records-{tokenizer.prefix_token_id}.jsonl")
    evaluate(smollm2._logits_fn(), tokenizer, "wikitext", data_dir, max_length=MAX_LENGTH, records_path=path)
    return [json.loads(line)["ll"] for line in open(path)]

  tok = smollm2.tokenizer
  assert tok.prefix_token_id == 1
  after = pages(tok)
  eos_prefixed = copy.copy(tok)  # the same tokenizer conditioned on EOS, as ffnjax did before
  eos_prefixed.prefix_token_id = tok.eot_id
  before = pages(eos_prefixed)
  print(
    f"SmolLM2 WikiText per-page LL (max_length {MAX_LENGTH}): lm-eval {np.round(theirs, 4).tolist()}, "
    f"ffnjax BOS prefix {np.round(after, 4).tolist()}, EOS prefix {np.round(before, 4).tolist()}"
  )
  np.testing.assert_allclose(after, theirs, atol=2e-3)  # 135M fp32, pages of ~60-80 tokens
  assert np.abs(np.asarray(before) - theirs).max() > 0.1
