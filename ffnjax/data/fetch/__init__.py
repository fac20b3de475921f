"""`python -m ffnjax.data.fetch`: the one command that downloads. Evaluation sets and FineWeb-Edu shards.

    python -m ffnjax.data.fetch --what=eval --output=data/eval
    python -m ffnjax.data.fetch --what=fineweb_edu --subset=sample-10BT --output=data/fineweb-edu [--max_shards=N]

`--what=eval` writes every evaluation set in the evaluator's layout (ffnjax/eval/tasks/__init__.py), one JSON-lines
file per task with the upstream (Hugging Face) field names, and DIR/manifest.json (source, record count, sha256 of
each file). zsRE is the MEND/ROME `zsre_mend_eval.json` (19,086 records), kept byte for byte. An existing file
whose sha256 matches the manifest is not fetched again. `--what=fineweb_edu` downloads the parquet shards of one
FineWeb-Edu sample into OUTPUT/<subset>/ (column `text`), the input of `python -m ffnjax.data.prepare`.

Every network access goes through `_hub` (tests replace it with local fixtures in the upstream schemas). Outputs
may be any ffnjax.core.rundir path (local or gs://); every file is written atomically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import urllib.request

from ffnjax.core import rundir
from ffnjax.core.errors import DataError
from ffnjax.core.progress import Eta

MANIFEST = "manifest.json"


@dataclasses.dataclass(frozen=True)
class EvalSource:
  task: str  # ffnjax.eval task name
  file: str  # path under the output dir (the evaluator's layout)
  repo: str = ""  # Hugging Face dataset id
  config: str | None = None
  split: str = ""
  url: str = ""  # a plain file instead of a hub dataset (zsRE)
  expected_records: int | None = None


# The datasets lm-evaluation-harness 0.4 reads for these tasks (method.md §4), and the zsRE file of MEND/ROME.
EVAL_SOURCES: tuple[EvalSource, ...] = (
  EvalSource(
    "lambada_openai", "lambada_openai/test.jsonl", "EleutherAI/lambada_openai", "default", "test", expected_records=5153
  ),
  EvalSource(
    "wikitext",
    "wikitext/test.jsonl",
    "EleutherAI/wikitext_document_level",
    "wikitext-2-raw-v1",
    "test",
    expected_records=62,
  ),
  EvalSource("hellaswag", "hellaswag/validation.jsonl", "Rowan/hellaswag", None, "validation", expected_records=10042),
  EvalSource("piqa", "piqa/validation.jsonl", "baber/piqa", None, "validation", expected_records=1838),
  EvalSource(
    "winogrande",
    "winogrande/validation.jsonl",
    "allenai/winogrande",
    "winogrande_xl",
    "validation",
    expected_records=1267,
  ),
  EvalSource("arc_easy", "arc_easy/test.jsonl", "allenai/ai2_arc", "ARC-Easy", "test", expected_records=2376),
  EvalSource(
    "arc_challenge", "arc_challenge/test.jsonl", "allenai/ai2_arc", "ARC-Challenge", "test", expected_records=1172
  ),
  EvalSource("boolq", "boolq/validation.jsonl", "aps/super_glue", "boolq", "validation", expected_records=3270),
  EvalSource("openbookqa", "openbookqa/test.jsonl", "allenai/openbookqa", "main", "test", expected_records=500),
  EvalSource(
    "zsre",
    "zsre/zsre_mend_eval.json",
    url="https://rome.baulab.info/data/dsets/zsre_mend_eval.json",
    expected_records=19086,
  ),
)

FINEWEB_EDU_REPO = "HuggingFaceFW/fineweb-edu"
# Subset name -> folder in the hub repo, and its approximate size in GPT-2 tokens (the dataset card's names).
FINEWEB_EDU_SUBSETS = {
  "sample-10BT": ("sample/10BT", 10e9),
  "sample-100BT": ("sample/100BT", 100e9),
  "sample-350BT": ("sample/350BT", 350e9),
}


class FetchError(DataError):
  """A download that cannot be done as asked (unknown subset or task, bad output); the message says which."""


def _hub(op: str, **kw):
  """The only function that talks to the network.

  op="dataset": records of `datasets.load_dataset(repo, config, split=split)` as a list of dicts;
  op="url": the bytes at `url`; op="list": the file names of a hub dataset repo;
  op="download": a local path of `filename` of a hub dataset repo (huggingface_hub's cache).
  """
  if op == "dataset":
    import datasets  # the download path only; not a dependency of anything else

    return datasets.load_dataset(kw["repo"], kw["config"], split=kw["split"]).to_list()
  if op == "url":
    with urllib.request.urlopen(kw["url"], timeout=600) as response:
      return response.read()
  import huggingface_hub  # the download path only (comes with datasets)

  if op == "list":
    return huggingface_hub.list_repo_files(kw["repo"], repo_type="dataset")
  if op == "download":
    return huggingface_hub.hf_hub_download(kw["repo"], kw["filename"], repo_type="dataset")
  raise ValueError(f"_hub: unknown op {op!r}")


def _sha256(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def _present(path: str, known: dict | None) -> bool:
  """`path` exists and holds the bytes the manifest recorded (a changed or partial file is fetched again)."""
  return bool(known) and rundir.exists(path) and _sha256(rundir.read_bytes(path)) == known["sha256"]


def _read_manifest(output: str) -> dict:
  return rundir.read_json(rundir.join(output, MANIFEST), default={})


def _fetch_one(source: EvalSource) -> tuple[bytes, int]:
  """The file's bytes in the evaluator's layout and its record count."""
  if source.url:
    data = _hub("url", url=source.url)
    try:
      records = json.loads(data)
    except json.JSONDecodeError as e:
      raise FetchError(f"{source.task}: {source.url} is not JSON ({e})") from None
    if not isinstance(records, list):
      raise FetchError(f"{source.task}: {source.url} holds a {type(records).__name__}, expected a JSON array")
    return data, len(records)
  records = _hub("dataset", repo=source.repo, config=source.config, split=source.split)
  lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
  return lines.encode("utf-8"), len(records)


def fetch_eval(output: str, tasks: list[str] | None = None, log=print) -> dict:
  """Writes every evaluation set (or `tasks`) under `output`; returns the manifest."""
  sources = [s for s in EVAL_SOURCES if not tasks or s.task in tasks]
  unknown = sorted(set(tasks or ()) - {s.task for s in EVAL_SOURCES})
  if unknown:
    raise FetchError(f"--tasks: unknown {unknown}; known: {[s.task for s in EVAL_SOURCES]}")
  manifest = _read_manifest(output)
  manifest.setdefault("files", {})
  for i, source in enumerate(sources, 1):
    path = rundir.join(output, source.file)
    known = manifest["files"].get(source.file)
    if _present(path, known):
      log(f"[{i}/{len(sources)}] {source.task}: {path} present ({known['records']:,} records), kept")
      continue
    origin = source.url or f"{source.repo}" + (f" ({source.config})" if source.config else "") + f" {source.split}"
    log(f"[{i}/{len(sources)}] {source.task}: fetching {origin}")
    start = time.perf_counter()
    try:
      data, count = _fetch_one(source)
    except FetchError:
      raise
    except Exception as e:  # network/hub errors come in many types; one line names the source
      raise FetchError(
        f"{source.task}: downloading {origin} failed ({type(e).__name__}: {str(e)[:300]}); this "
        "command needs access to the Hugging Face Hub"
      ) from e
    rundir.write_bytes(path, data)
    warn = ""
    if source.expected_records is not None and count != source.expected_records:
      warn = f" (expected {source.expected_records:,}: a different version of the set?)"
    manifest["files"][source.file] = {
      "task": source.task,
      "source": origin,
      "records": count,
      "bytes": len(data),
      "sha256": _sha256(data),
      "expected_records": source.expected_records,
    }
    rundir.write_json(rundir.join(output, MANIFEST), manifest)
    log(f"[{i}/{len(sources)}] {source.task}: {count:,} records -> {path} ({time.perf_counter() - start:.1f} s){warn}")
  return manifest


def fetch_fineweb_edu(output: str, subset: str, max_shards: int = 0, log=print) -> dict:
  """Downloads the parquet shards of `subset` into OUTPUT/<subset>/ (in name order; the first `max_shards`)."""
  if subset not in FINEWEB_EDU_SUBSETS:
    raise FetchError(f"--subset={subset!r}: must be one of {sorted(FINEWEB_EDU_SUBSETS)}")
  folder, _ = FINEWEB_EDU_SUBSETS[subset]
  try:
    listing = _hub("list", repo=FINEWEB_EDU_REPO)
  except Exception as e:  # as in fetch_eval
    raise FetchError(
      f"listing {FINEWEB_EDU_REPO} failed ({type(e).__name__}: {str(e)[:300]}); this command needs "
      "access to the Hugging Face Hub"
    ) from e
  names = sorted(f for f in listing if f.startswith(folder + "/") and f.endswith(".parquet"))
  if not names:
    raise FetchError(f"{FINEWEB_EDU_REPO}: no parquet files under {folder}/")
  if max_shards:
    names = names[:max_shards]
  target = rundir.join(output, subset)
  rundir.mkdirs(target)
  manifest = _read_manifest(target)
  manifest.setdefault("files", {})
  eta = Eta()  # bytes of the shards fetched by this invocation (present ones are skipped)
  done_bytes = fetched = 0
  for i, name in enumerate(names, 1):
    base = os.path.basename(name)
    path = rundir.join(target, base)
    if _present(path, manifest["files"].get(base)):
      continue
    data = rundir.read_bytes(_hub("download", repo=FINEWEB_EDU_REPO, filename=name))  # huggingface_hub's cache
    rundir.write_bytes(path, data)
    done_bytes += len(data)
    manifest["files"][base] = {"source": f"{FINEWEB_EDU_REPO}/{name}", "bytes": len(data), "sha256": _sha256(data)}
    rundir.write_json(rundir.join(target, MANIFEST), manifest)
    fetched += 1
    log(
      f"[{i}/{len(names)}] {base}: {len(data) / 1e6:,.1f} MB, {eta.rate(done_bytes) / 1e6:,.1f} MB/s, "
      f"{eta.text(done_bytes, remaining=(len(names) - i) * done_bytes / fetched)}"
    )
  manifest["subset"] = subset
  rundir.write_json(rundir.join(target, MANIFEST), manifest)
  return manifest
