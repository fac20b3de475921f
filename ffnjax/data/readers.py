"""Raw documents for corpus preparation: FineWeb-Edu parquet shards and plain text files.

Every input is checked before any tokenizing starts (a wrong path or a broken file fails in seconds, not hours),
and every error names the file. Documents come out in a fixed order: files sorted by path, rows in file order.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

TEXT_COLUMN = "text"
_EXTENSIONS = {"fineweb_edu": ".parquet", "text_files": ".txt"}


def resolve_inputs(source: str, spec: str) -> list[str]:
  """`spec` is a dir (searched recursively for *.parquet / *.txt), a glob, a file, or a comma-separated list."""
  if source not in _EXTENSIONS:
    raise ValueError(f"source {source!r} reads no input files; sources with input files: {sorted(_EXTENSIONS)}")
  if not spec:
    raise ValueError(f"--input: source {source!r} needs input files (a dir, a glob or a comma-separated list)")
  ext = _EXTENSIONS[source]
  files = []
  for part in (p.strip() for p in spec.split(",")):
    if not part:
      continue
    part = os.path.expanduser(part)
    if os.path.isdir(part):
      found = sorted(glob.glob(os.path.join(glob.escape(part), "**", "*" + ext), recursive=True))
    elif any(c in part for c in "*?["):
      found = sorted(f for f in glob.glob(part, recursive=True) if os.path.isfile(f))
    elif os.path.isfile(part):
      found = [part]
    else:
      raise FileNotFoundError(f"--input: {part} does not exist")
    if not found:
      raise FileNotFoundError(f"--input: {part} matches no {ext} files")
    files.extend(found)
  if len(set(files)) != len(files):
    raise ValueError(f"--input: {spec!r} names some files twice")
  return files


def check_parquet(path: str) -> int:
  """Opens the footer and checks the schema; returns the number of rows. ValueError naming the file otherwise."""
  try:
    pf = pq.ParquetFile(path)
  except (pa.ArrowException, OSError) as e:
    raise ValueError(f"{path}: not a readable parquet file ({e})") from e
  schema = pf.schema_arrow
  if TEXT_COLUMN not in schema.names:
    raise ValueError(f"{path}: no {TEXT_COLUMN!r} column (FineWeb-Edu schema); columns: {schema.names}")
  kind = schema.field(TEXT_COLUMN).type
  if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
    raise ValueError(f"{path}: column {TEXT_COLUMN!r} has type {kind}, expected string")
  return pf.metadata.num_rows


def check_inputs(source: str, files: list[str]) -> None:
  for path in files:
    if source == "fineweb_edu":
      check_parquet(path)
    elif not os.access(path, os.R_OK):
      raise PermissionError(f"{path}: not readable")


def iter_documents(source: str, files: list[str], batch_rows: int = 1024) -> Iterator[str]:
  """Yields document texts in order (None/empty rows are yielded as "" so document numbers stay stable)."""
  for path in files:
    if source == "text_files":
      try:
        with open(path, encoding="utf-8") as f:
          text = f.read()
      except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e})") from e
      yield text
      continue

    try:
      pf = pq.ParquetFile(path)
      for batch in pf.iter_batches(batch_size=batch_rows, columns=[TEXT_COLUMN]):
        for text in batch.column(0).to_pylist():
          yield text or ""
    except (pa.ArrowException, OSError) as e:
      raise ValueError(f"{path}: damaged parquet file ({e})") from e
