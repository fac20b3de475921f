"""Corpus preparation: raw text -> token shards, once, so that training never re-tokenizes.

  python -m ffnjax.data.prepare --source=fineweb_edu --input='/data/fineweb-edu/sample/10BT/*.parquet' \
      --output=/data/fwe10b-gpt2 --tokenizer=gpt2
  python -m ffnjax.data.prepare --source=shakespeare --output=/tmp/shk --tokenizer=bpe:4096

Documents are tokenized in worker processes (spawned: safe next to JAX and Rust thread pools) in chunks of about
1 MB, at most a few chunks in flight so memory stays flat on a 50 GB input; the parent reads the parquet files and
writes shards in document order, so the output does not depend on the number of workers. Every document is
followed by the end-of-text token; empty documents are dropped.

Atomicity: everything is written into a sibling temporary dir, manifest.json last, then renamed onto the output.
A dir without manifest.json is never read as data, so a crash or a failed input leaves nothing that looks complete.
The manifest records the *recipe* (source, input file names and sizes, tokenizer, split rule): re-running the same
command is a no-op, and an output dir holding a different recipe is an error, never silently replaced.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import errno
import fcntl
import hashlib
import multiprocessing
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterable, Iterator

import numpy as np

from ffnjax.core import rundir
from ffnjax.data import RAW_SOURCES, readers, shakespeare, tokenizers, tokenstore, validate

DEFAULT_SHARD_TOKENS = 100_000_000  # 200 MB files for uint16
DEFAULT_BPE_TRAIN_BYTES = 256 << 20  # a BPE sees at most this much training text
_CHUNK_CHARS = 1 << 20


# ----------------------------------------------------------------------------------------------- documents


def _inputs_recipe(files: list[str]) -> list[dict]:
  root = os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files])
  return [dict(file=os.path.relpath(os.path.abspath(f), root), bytes=os.path.getsize(f)) for f in files]


def recipe(
  source: str,
  input: str = "",
  tokenizer: str = "gpt2",
  *,
  heldout_every: int = 0,
  bpe_train_bytes: int = DEFAULT_BPE_TRAIN_BYTES,
) -> dict:
  """What determines the prepared data; two runs with equal recipes write equal token streams.

  Checks the inputs on the way (every parquet footer and schema), so a bad input fails before any work.
  """
  if source not in RAW_SOURCES:
    raise ValueError(f"--source={source!r}: must be one of {RAW_SOURCES}")
  kind, _ = tokenizers.parse_spec(tokenizer)
  if kind == "hf":
    raise ValueError(
      f"--tokenizer={tokenizer!r}: an imported model's tokenizer is for evaluation; prepare training "
      "data with 'gpt2' or 'bpe:N'"
    )
  if heldout_every < 0 or heldout_every == 1:
    raise ValueError(f"--heldout_every={heldout_every}: must be 0 (no heldout split) or >= 2")
  r = dict(format=tokenstore.FORMAT, source=source, tokenizer=tokenizer)
  if source == "shakespeare":
    if input:
      raise ValueError(f"--input={input!r}: source 'shakespeare' is embedded and reads no input")
    shakespeare.split()  # fails early with the pip command if the package is missing
    r.update(corpus=shakespeare.PACKAGE_VERSION, heldout=list(shakespeare.HELDOUT_PLAYS))
  else:
    files = readers.resolve_inputs(source, input)
    readers.check_inputs(source, files)
    r.update(inputs=_inputs_recipe(files), heldout_every=heldout_every)
  if kind == "bpe":
    r.update(bpe_train_bytes=bpe_train_bytes)
  return r


def _documents(source: str, input: str, heldout_every: int) -> Iterator[tuple[str, str]]:
  """(split, text) in the fixed document order."""
  if source == "shakespeare":
    train, heldout = shakespeare.split()
    for split, texts in (("train", train), ("heldout", heldout)):
      for text in texts.values():
        yield split, text
    return
  files = readers.resolve_inputs(source, input)
  for i, text in enumerate(readers.iter_documents(source, files)):
    yield ("heldout" if heldout_every and i % heldout_every == heldout_every - 1 else "train"), text


def _splits(recipe_: dict) -> tuple[str, ...]:
  return ("train", "heldout") if recipe_["source"] == "shakespeare" or recipe_.get("heldout_every") else ("train",)


# ----------------------------------------------------------------------------------------------- tokenizing

_WORKER = None  # (tokenizer, dtype) in a worker process


def _init_worker(spec: str, data_dir: str | None, dtype: str) -> None:
  global _WORKER
  _WORKER = (tokenizers.get_tokenizer(spec, data_dir), np.dtype(dtype))


def _encode_chunk(texts: list[str], tok=None, dtype=None) -> tuple[np.ndarray, int]:
  """Tokens of the documents, each followed by end-of-text, and the UTF-8 bytes they came from."""
  if tok is None:
    tok, dtype = _WORKER
  eot = tok.eot_id
  pieces, num_bytes = [], 0
  for text in texts:
    ids = tok.encode_ordinary(text)
    ids.append(eot)
    pieces.append(np.array(ids, dtype=dtype))
    num_bytes += len(text.encode("utf-8"))
  return (np.concatenate(pieces) if pieces else np.zeros(0, dtype)), num_bytes


def _chunks(docs: Iterable[tuple[str, str]]) -> Iterator[tuple[str, list[str]]]:
  """Groups consecutive non-empty documents of one split into chunks of about _CHUNK_CHARS characters."""
  split, texts, size = None, [], 0
  for s, text in docs:
    if not text:
      continue
    if texts and (s != split or size >= _CHUNK_CHARS):
      yield split, texts
      texts, size = [], 0
    split = s
    texts.append(text)
    size += len(text)
  if texts:
    yield split, texts


def _encoded(
  chunks: Iterator[tuple[str, list[str]]], spec: str, data_dir: str | None, dtype: np.dtype, num_workers: int
) -> Iterator[tuple[str, int, np.ndarray, int]]:
  """(split, num_documents, tokens, num_bytes) per chunk, in chunk order, from `num_workers` processes (0 = here)."""
  if num_workers <= 0:
    tok = tokenizers.get_tokenizer(spec, data_dir)
    for split, texts in chunks:
      tokens, num_bytes = _encode_chunk(texts, tok, dtype)
      yield split, len(texts), tokens, num_bytes
    return
  ctx = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(
    num_workers, mp_context=ctx, initializer=_init_worker, initargs=(spec, data_dir, dtype.str)
  ) as pool:
    pending = collections.deque()
    try:
      for split, texts in chunks:
        pending.append((split, len(texts), pool.submit(_encode_chunk, texts)))
        while len(pending) > 2 * num_workers:  # bounded: the reader never runs far ahead of the tokenizers
          split_, n, future = pending.popleft()
          yield (split_, n) + future.result()
      while pending:
        split_, n, future = pending.popleft()
        yield (split_, n) + future.result()
    finally:
      for *_, future in pending:
        future.cancel()


class _Progress:
  """One status line (documents, tokens, MB/s), redrawn at most once a second on a terminal, else every 30 s."""

  def __init__(self, enabled: bool, stream=None):
    self.stream = stream or sys.stderr
    self.enabled = enabled
    self.tty = enabled and self.stream.isatty()
    self.start = self.last = time.monotonic()
    self.docs = self.tokens = self.bytes = 0

  def line(self) -> str:
    dt = max(time.monotonic() - self.start, 1e-9)
    return (
      f"{self.docs:,} documents  {self.tokens / 1e6:,.2f} M tokens  {self.bytes / 1e6:,.1f} MB  "
      f"{self.bytes / 1e6 / dt:,.2f} MB/s  {self.tokens / dt / 1e3:,.0f} k tokens/s  {dt:,.0f} s"
    )

  def update(self, docs: int, tokens: int, num_bytes: int) -> None:
    self.docs += docs
    self.tokens += tokens
    self.bytes += num_bytes
    now = time.monotonic()
    if self.enabled and now - self.last >= (1.0 if self.tty else 30.0):
      self.last = now
      print(
        ("\r" if self.tty else "") + "prepare: " + self.line(),
        end="" if self.tty else "\n",
        file=self.stream,
        flush=True,
      )

  def done(self) -> None:
    if self.tty:
      print(file=self.stream)


# ----------------------------------------------------------------------------------------------- prepare


def _differences(a: dict, b: dict) -> str:
  keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
  return "; ".join(f"{k}: {str(b.get(k))[:200]} there vs {str(a.get(k))[:200]} requested" for k in keys)


def _existing(output: str, recipe_: dict) -> dict | None:
  """The manifest when `output` already holds this recipe; None when it is absent or empty; error otherwise."""
  if tokenstore.is_prepared(output):
    manifest = tokenstore.read_manifest(output)
    if manifest.get("recipe") == recipe_:
      return manifest
    diff = _differences(recipe_, manifest.get("recipe") or {})
    raise FileExistsError(
      f"--output={output} already holds different prepared data ({diff}); choose another --output or delete that dir"
    )
  if os.path.isdir(output) and os.listdir(output):
    raise FileExistsError(
      f"--output={output} is a non-empty dir without {tokenstore.MANIFEST}: not prepared data "
      "(or an interrupted copy); choose another --output or delete that dir"
    )
  if os.path.exists(output) and not os.path.isdir(output):
    raise FileExistsError(f"--output={output} is a file, not a dir")
  return None


def _existing_remote(output: str, recipe_: dict, progress: bool) -> dict:
  manifest = tokenstore.read_manifest(output)
  if manifest.get("recipe") != recipe_:
    raise FileExistsError(
      f"--output={output} already holds different prepared data "
      f"({_differences(recipe_, manifest.get('recipe') or {})}); choose another --output"
    )
  if progress:
    print(f"prepare: {output} already holds this data ({manifest['num_tokens']:,} tokens); nothing to do")
  return manifest


def prepare(
  source: str,
  output: str,
  *,
  input: str = "",
  tokenizer: str = "gpt2",
  num_workers: int | None = None,
  shard_tokens: int = DEFAULT_SHARD_TOKENS,
  heldout_every: int = 0,
  bpe_train_bytes: int = DEFAULT_BPE_TRAIN_BYTES,
  progress: bool = True,
) -> dict:
  """Tokenizes `source` into the prepared dir `output`; returns its manifest. A no-op if it already holds this data.

  num_workers: tokenizer processes (None = one per CPU, 0 = in this process). heldout_every: K >= 2 puts every
  K-th document (numbered in input order) into the `heldout` split (shakespeare always has HELDOUT_PLAYS there).
  """
  if not output:
    raise ValueError("--output: required (the prepared dir to write)")
  recipe_ = recipe(source, input, tokenizer, heldout_every=heldout_every, bpe_train_bytes=bpe_train_bytes)
  if rundir.is_remote(output):  # prepared locally (the mirror a trainer reads), then uploaded, manifests last
    if tokenstore.is_prepared(output):
      return _existing_remote(output, recipe_, progress)
    if rundir.listdir(output):
      raise FileExistsError(
        f"--output={output} is not empty and holds no {tokenstore.MANIFEST}: not prepared data "
        "(or an interrupted upload); choose another --output or delete it"
      )
    local = tokenstore.mirror_dir(output, cache_root())
    manifest = prepare(
      source,
      local,
      input=input,
      tokenizer=tokenizer,
      num_workers=num_workers,
      shard_tokens=shard_tokens,
      heldout_every=heldout_every,
      bpe_train_bytes=bpe_train_bytes,
      progress=progress,
    )
    tokenstore.upload(local, output)
    return manifest
  output = os.path.abspath(os.path.expanduser(output))
  found = _existing(output, recipe_)
  if found is not None:
    if progress:
      print(f"prepare: {output} already holds this data ({found['num_tokens']:,} tokens); nothing to do")
    return found
  if num_workers is None:
    num_workers = os.cpu_count() or 1
  parent = os.path.dirname(output)
  os.makedirs(parent, exist_ok=True)
  tmp = os.path.join(parent, f".{os.path.basename(output)}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
  try:
    os.makedirs(tmp)
    manifest = _write(tmp, recipe_, input, num_workers, shard_tokens, bpe_train_bytes, progress)
    try:
      rundir.publish(tmp, output)  # atomic; replaces an empty dir, refuses a non-empty one
    except OSError as e:
      if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
        raise
      found = _existing(output, recipe_)  # another process won the race: fine if it wrote the same recipe
      if found is None:
        raise
      shutil.rmtree(tmp, ignore_errors=True)
      return found
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  if progress:
    parts = ", ".join(
      f"{s} {v['num_tokens']:,} tokens / {v['num_documents']:,} documents" for s, v in manifest["splits"].items()
    )
    print(
      f"prepare: wrote {output}: {parts}; tokenizer {manifest['tokenizer']} (vocab {manifest['vocab_size']}, "
      f"eot {manifest['eot_id']}), {manifest['dtype']}, {manifest['content_hash']}"
    )
  return manifest


def _write(
  tmp: str, recipe_: dict, input: str, num_workers: int, shard_tokens: int, bpe_train_bytes: int, progress: bool
) -> dict:
  source, spec = recipe_["source"], recipe_["tokenizer"]
  kind, vocab_size = tokenizers.parse_spec(spec)
  heldout_every = recipe_.get("heldout_every", 0)
  data_dir = None
  if kind == "bpe":
    data_dir = tmp

    def train_texts():
      seen = 0
      for split, text in _documents(source, input, heldout_every):
        if split == "train" and text and seen < bpe_train_bytes:
          seen += len(text)
          yield text

    tokenizers.train_bpe(train_texts(), vocab_size, os.path.join(tmp, tokenizers.TOKENIZER_FILE))
  tok = tokenizers.get_tokenizer(spec, data_dir)
  dtype = tokenstore.token_dtype(tok.vocab_size)
  splits = _splits(recipe_)
  writers = {s: tokenstore.ShardWriter(os.path.join(tmp, s), dtype, shard_tokens) for s in splits}
  meter = _Progress(progress)
  chunks = _chunks(_documents(source, input, heldout_every))
  for split, num_docs, tokens, num_bytes in _encoded(chunks, spec, data_dir, dtype, num_workers):
    writers[split].write(tokens, num_docs)
    meter.update(num_docs, tokens.size, num_bytes)
  meter.done()
  if progress:
    print("prepare: " + meter.line())
  for split, writer in writers.items():
    if writer.num_tokens == 0:
      raise ValueError(
        f"split {split!r} of source {source!r} holds no tokens: the input has no non-empty documents"
        + ("" if split == "train" else "; lower --heldout_every or set it to 0")
      )
  common = dict(source=source, tokenizer=spec, vocab_size=tok.vocab_size, eot_id=tok.eot_id, dtype=dtype.name)
  return tokenstore.finish(tmp, writers, common, recipe_)  # DIR/manifest.json last: marks the dir complete


# ----------------------------------------------------------------------------------------------- for the trainer


def cache_root() -> str:
  return os.path.expanduser(os.environ.get("FFNJAX_CACHE") or "~/.cache/ffnjax")


def default_dir(data_cfg) -> str:
  """$FFNJAX_CACHE/data/<source>-<tokenizer>[-<input hash>] (FFNJAX_CACHE defaults to ~/.cache/ffnjax)."""
  name = f"{data_cfg.source}-{data_cfg.tokenizer.replace(':', '')}"
  if data_cfg.input:
    name += "-" + hashlib.sha256(os.path.abspath(data_cfg.input).encode()).hexdigest()[:10]
  return os.path.join(cache_root(), "data", name)


@contextlib.contextmanager
def _file_lock(path: str):
  """An advisory lock so that concurrent trainers wait instead of tokenizing twice (the rename keeps it safe
  where flock does not work, e.g. some network filesystems)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path + ".lock", "a") as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX)
    except OSError:
      pass
    try:
      yield
    finally:
      with contextlib.suppress(OSError):
        fcntl.flock(f, fcntl.LOCK_UN)


def ensure_prepared(data_cfg) -> str:
  """Returns the prepared dir that `data_cfg` names, preparing it first where it can.

  - `path` holds prepared data: checked against `tokenizer` (and against `input`, if given) and returned.
  - `path` is empty: shakespeare (or any source with `input`) is prepared once into `default_dir(data_cfg)`.
  - source `tokens`: `path` must already be prepared.
  Safe when several processes call it at once (file lock + atomic rename).
  """
  validate(data_cfg)
  path = (
    data_cfg.path
    if rundir.is_remote(data_cfg.path or "")
    else (os.path.abspath(os.path.expanduser(data_cfg.path)) if data_cfg.path else "")
  )
  reuse = data_cfg.source == "tokens" or (path and data_cfg.source != "shakespeare" and not data_cfg.input)
  if reuse and not tokenstore.is_prepared(path):
    tokenstore.read_manifest(path)  # raises, naming the missing manifest and the prepare command
  if not reuse:
    path = path or default_dir(data_cfg)
    with _file_lock(tokenstore.mirror_dir(path, cache_root()) if rundir.is_remote(path) else path):
      # the embedded corpus (5 MB) tokenizes faster here than worker processes start
      prepare(
        data_cfg.source,
        path,
        input=data_cfg.input,
        tokenizer=data_cfg.tokenizer,
        progress=False,
        num_workers=0 if data_cfg.source == "shakespeare" else None,
      )
  manifest = tokenstore.read_manifest(path)
  if manifest["tokenizer"] != data_cfg.tokenizer:
    raise ValueError(
      f"data.tokenizer={data_cfg.tokenizer!r}, but {path} was prepared with "
      f"{manifest['tokenizer']!r}; set data.tokenizer={manifest['tokenizer']!r} or prepare again"
    )
  return tokenstore.localize(path, cache_root())  # memmaps read local files: gs:// data is mirrored once
