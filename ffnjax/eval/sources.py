"""Task data from local files in the upstream formats: Hugging Face dataset exports or prepared TFDS dirs.

A task named T with split S reads the first of these under DATA_DIR that exists:
  T/S.jsonl  T/S.json  T/S.parquet  T/S-*.parquet (HF hub shards, read in name order)
(`Dataset.to_json()` writes JSON lines, `Dataset.to_parquet()` parquet; a .json file may also hold one JSON
array.) Field names are the upstream ones. Nothing here downloads.

Where no such file exists and TFDS has the dataset, DATA_DIR/<tfds name>/ prepared by TFDS (array_record) is
read with `tfds.data_source(..., download=False)` and converted to the upstream fields.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow.parquet as pq

from ffnjax.core import rundir
from ffnjax.core.errors import DataError

EXTENSIONS = (".jsonl", ".json", ".parquet")


@dataclasses.dataclass(frozen=True)
class TfdsSource:
  name: str  # builder name with config, e.g. "ai2_arc/ARC-Easy"
  split: str
  convert: Callable[[dict], dict]  # TFDS example -> upstream (Hugging Face) fields


def candidate_paths(data_dir: str, stems: Sequence[str]) -> list[str]:
  """The file names a task may read, in order (each stem relative to data_dir, without extension)."""
  paths = []
  for stem in stems:
    paths += [rundir.join(data_dir, stem + ext) for ext in EXTENSIONS]
    paths.append(rundir.join(data_dir, stem + "-*.parquet"))
  return paths


def find_file(data_dir: str, stems: Sequence[str]) -> list[str]:
  """The files of the first candidate that exists ([] when none does); data_dir may be local or gs://."""
  for stem in stems:
    for ext in EXTENSIONS:
      path = rundir.join(data_dir, stem + ext)
      if rundir.isfile(path):
        return [path]
    parent, _, name = rundir.join(data_dir, stem).rpartition("/")
    matches = rundir.glob(parent, name + "-*.parquet") if rundir.isdir(parent) else []
    if matches:
      return matches
  return []


def read_records(paths: Sequence[str], limit: int = 0) -> list[dict]:
  """Records of JSON-lines / JSON-array / parquet files, in order; the first `limit` (0 = all)."""
  records: list[dict] = []
  for path in paths:
    if path.endswith(".parquet"):
      with rundir.open(path, "rb") as f:
        records += pq.read_table(f).to_pylist()
    else:
      records += _read_json(path)
    if limit and len(records) >= limit:
      return records[:limit]
  return records


def _read_json(path: str) -> list[dict]:
  text = rundir.read_text(path)
  stripped = text.lstrip()
  if stripped.startswith("["):
    try:
      data = json.loads(text)
    except json.JSONDecodeError as e:
      raise DataError(f"{path}: not valid JSON ({e})") from None
    return [_check_object(r, path, i) for i, r in enumerate(data)]
  records = []
  for line_no, line in enumerate(text.splitlines(), 1):
    if line.strip():
      try:
        records.append(_check_object(json.loads(line), path, line_no - 1, line_no))
      except json.JSONDecodeError as e:
        raise DataError(f"{path}:{line_no}: not a JSON object per line ({e})") from None
  return records


def _check_object(record, path: str, index: int, line_no: int | None = None) -> dict:
  if not isinstance(record, dict):
    where = f"{path}:{line_no}" if line_no else f"{path}: record {index}"
    raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
  return record


def check_fields(records: Sequence[dict], fields: Sequence[str], source: str) -> None:
  """Every record has every field; dotted names reach into nested objects ('choices.text')."""
  for i, record in enumerate(records):
    for field in fields:
      value = record
      for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
          have = sorted(value) if isinstance(value, dict) else type(value).__name__
          raise DataError(f"{source}: record {i} has no field {field!r} (fields: {have})")
        value = value[part]


def tfds_dir_exists(data_dir: str, source: TfdsSource) -> bool:
  return os.path.isdir(os.path.join(data_dir, source.name.split("/")[0]))


def read_tfds(data_dir: str, source: TfdsSource, limit: int = 0) -> list[dict]:
  import tensorflow_datasets as tfds  # seconds to import, and only TFDS-format data dirs need it

  try:
    ds = tfds.data_source(source.name, split=source.split, data_dir=data_dir, download=False)
  except Exception as e:  # TFDS raises many types; name the dir and what it needs
    raise DataError(
      f"{os.path.join(data_dir, source.name)}: cannot read TFDS split {source.split!r} "
      f"(prepare it with file_format='array_record'): {e}"
    ) from e
  n = len(ds) if not limit else min(limit, len(ds))
  return [source.convert(_plain(ds[i])) for i in range(n)]


def _plain(value):
  """TFDS numpy/bytes values -> Python str/int/list/dict."""
  if isinstance(value, dict):
    return {k: _plain(v) for k, v in value.items()}
  if isinstance(value, bytes):
    return value.decode("utf-8")
  if isinstance(value, np.ndarray):
    return _plain(value.item()) if value.ndim == 0 else [_plain(v) for v in value.tolist()]
  if isinstance(value, (list, tuple)):
    return [_plain(v) for v in value]
  if isinstance(value, np.generic):
    return value.item()
  return value
