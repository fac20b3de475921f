"""lm-evaluation-harness 0.4.13 as a reference scorer, offline, on a Hugging Face model dir and our task files.

    from ffnjax.eval.lmeval_ref import run_lmeval
    out = run_lmeval(hf_dir, data_dir, ["hellaswag", "lambada_openai"], limit=100, max_length=256)
    out["hellaswag"]["metrics"]    # {"acc": ..., "acc_stderr": ..., "acc_norm": ..., ...} as lm-eval reports them
    out["hellaswag"]["requests"]   # [(context, continuation, ll, is_greedy), ...] one per request, in document
                                   # order, choices in order (the order of ffnjax's Encoded.requests)
    out["wikitext"]["requests"]    # rolling tasks: [("", page_text, ll, None), ...] one per document

    python -m ffnjax.eval.lmeval_ref --hf_dir=DIR --data_dir=DIR --tasks=hellaswag,piqa [--limit=N]
        [--max_length=256] [--batch_size=16] [--output=results.json]

API (stable; other code and tests copy it): `run_lmeval(hf_dir, data_dir, tasks, *, limit=None, max_length=None,
batch_size=16, dtype="float32") -> {task: {"metrics": {name: float}, "requests": [...]}}` and `LMEVAL_HELP`.

The data are read from the files ffnjax's tasks read (DATA_DIR/<task>/<split>.jsonl|.json|.parquet, see
ffnjax/eval/sources.py): each lm-eval task config gets `dataset_path` = the `json`/`parquet` builder and
`dataset_kwargs.data_files` = those files, so nothing touches the hub (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE are
set before lm-eval is imported). The model is lm-eval's HFLM (transformers, torch, CPU unless `device` says
otherwise), exactly what a user running `lm_eval --model hf` gets. lm-eval is an optional extra:
`pip install -e .[lmeval]`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ffnjax.eval import sources
from ffnjax.eval.tasks import get_task

LMEVAL_HELP = (
  "lm-evaluation-harness is not installed; it is the optional extra [lmeval]: "
  "pip install -e '.[lmeval]'   (lm-eval==0.4.13, torch==2.13.0 CPU)"
)

# ffnjax task name -> the lm-eval task whose config we load and override (same name for every task we compare).
SUPPORTED = (
  "lambada_openai",
  "wikitext",
  "hellaswag",
  "piqa",
  "arc_easy",
  "arc_challenge",
  "winogrande",
  "boolq",
  "openbookqa",
)


def _offline_env() -> None:
  os.environ["HF_HUB_OFFLINE"] = "1"
  os.environ["HF_DATASETS_OFFLINE"] = "1"
  os.environ["TRANSFORMERS_OFFLINE"] = "1"
  os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def import_lm_eval():
  """The lm_eval module, or SystemExit(2) with the install line."""
  _offline_env()
  try:
    import lm_eval
    import lm_eval.evaluator
    import lm_eval.tasks
  except ImportError as e:
    raise SystemExit(f"{LMEVAL_HELP} ({e})") from None
  return lm_eval


def task_config(task_manager, name: str, data_dir: str) -> dict:
  """lm-eval's config of task `name`, reading our local upstream-format files instead of the hub."""
  from lm_eval.tasks._yaml_loader import load_yaml  # optional extra [lmeval], like every lm_eval import here

  if name not in SUPPORTED:
    raise ValueError(f"task {name!r}: no lm-eval reference wired up; supported: {', '.join(SUPPORTED)}")
  ours = get_task(name)
  files = sources.find_file(data_dir, ours.stems())
  if not files:
    raise FileNotFoundError(
      f"task {name}: no data file; expected one of {sources.candidate_paths(data_dir, ours.stems())}"
    )
  entry = task_manager.task_index[name]
  cfg = dict(load_yaml(entry.yaml_path, resolve_func=True))
  builder = "parquet" if files[0].endswith(".parquet") else "json"
  split = ours.split
  for key in ("training_split", "validation_split", "test_split", "fewshot_split"):
    cfg.pop(key, None)
  # Our file is the split the paper scores; lm-eval scores test_split when set, else validation_split.
  cfg.update(
    dataset_path=builder, dataset_name=None, dataset_kwargs={"data_files": {split: list(files)}}, test_split=split
  )
  if name == "wikitext":  # the data file holds the one split only
    cfg["training_split"] = cfg["validation_split"] = None
  return cfg


def run_lmeval(
  hf_dir: str,
  data_dir: str,
  tasks: str | Sequence[str],
  *,
  limit: int | None = None,
  max_length: int | None = None,
  batch_size: int = 16,
  dtype: str = "float32",
  device: str = "cpu",
) -> dict:
  """Runs lm-eval's HFLM on `tasks`; {task: {"metrics": {...}, "requests": [(ctx, cont, ll, is_greedy), ...]}}.

  `limit` = first N documents (None = all); `max_length` = the model's context (None = lm-eval's default from the
  model config). Rolling tasks (wikitext) give one ("", text, ll, None) per document.
  """
  import_lm_eval()
  from lm_eval import evaluator
  from lm_eval.models.huggingface import HFLM
  from lm_eval.tasks import TaskManager

  names = [t.strip() for t in (tasks.split(",") if isinstance(tasks, str) else tasks) if t.strip()]
  manager = TaskManager()
  configs = [task_config(manager, n, data_dir) for n in names]
  kwargs = dict(pretrained=hf_dir, batch_size=batch_size, dtype=dtype, device=device)
  if max_length:
    kwargs["max_length"] = max_length
  lm = HFLM(**kwargs)
  out = evaluator.simple_evaluate(
    model=lm, tasks=configs, limit=limit, log_samples=True, bootstrap_iters=0, num_fewshot=0
  )
  result = {}
  for name in names:
    metrics = {}
    for key, value in out["results"][name].items():
      if key in ("alias", "sample_len") or not isinstance(value, (int, float)):
        continue
      metric, _, filt = key.partition(",")
      metrics[metric] = float(value)
    samples = sorted(out["samples"][name], key=lambda s: s["doc_id"])
    requests = []
    for s in samples:
      for args, resp in zip(s["arguments"], s["resps"]):
        got = resp[0]
        if isinstance(got, (list, tuple)):
          requests.append((args[0], args[1], float(got[0]), bool(got[1])))
        else:  # rolling: the document's summed LL
          requests.append(("", args[0], float(got), None))
    result[name] = {"metrics": metrics, "requests": requests}
  return result
