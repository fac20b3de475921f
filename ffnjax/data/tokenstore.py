"""Pre-tokenized corpora on disk: flat token shards read through numpy memmaps, and their manifests.

Why a memmap of a raw token stream and not ArrayRecord: training reads fixed-length windows at arbitrary offsets
of one long stream (documents joined with end-of-text), which is a slice of a memmap: no per-record framing,
no decompression, no record boundaries that a window would have to be stitched across, and the OS page cache
does the caching. The files are little-endian uint16 when the vocabulary fits (GPT-2: 50257) else uint32, so
a token costs 2 bytes on disk; `np.memmap` pickles by path, so Grain worker processes re-open it cheaply.

Layout of a prepared dir (the unit `data.path` names):
```
DIR/manifest.json            written last: source, tokenizer, vocab_size, eot_id, dtype, splits, recipe, hashes
DIR/tokenizer.json           only for bpe:N tokenizers
DIR/<split>/manifest.json    split, num_tokens, num_documents, shards [{file, num_tokens}], content_hash
DIR/<split>/tokens-00000.bin ... raw token stream, cut into shards of at most shard_tokens tokens
```
`content_hash` is the sha256 of the split's token stream (so it does not depend on the shard size); the top-level
one hashes the splits' hashes. A directory without DIR/manifest.json is never treated as prepared data.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from ffnjax.core import rundir

FORMAT = "ffnjax.tokens/1"
MANIFEST = "manifest.json"


def token_dtype(vocab_size: int) -> np.dtype:
  return np.dtype("<u2") if vocab_size <= 2**16 else np.dtype("<u4")


def read_json(path: str) -> dict:
  try:
    return json.loads(rundir.read_text(path))
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: not valid JSON ({e}); the dir was not written by ffnjax.data.prepare") from e


def is_prepared(path: str) -> bool:
  return bool(path) and rundir.isfile(rundir.join(path, MANIFEST))


def read_manifest(path: str) -> dict:
  """The top-level manifest of a prepared dir (local or gs://); FileNotFoundError naming the prepare command
  otherwise."""
  file = rundir.join(path, MANIFEST)
  if not rundir.isfile(file):
    raise FileNotFoundError(
      f"{file}: missing, so {path!r} is not (completely) prepared data; "
      "write it with python -m ffnjax.data.prepare --output=DIR"
    )
  manifest = read_json(file)
  if manifest.get("format") != FORMAT:
    raise ValueError(f"{file}: format {manifest.get('format')!r}, expected {FORMAT!r}")
  return manifest


class ShardWriter:
  """Appends token arrays to DIR/tokens-NNNNN.bin files of at most `shard_tokens` tokens each, hashing the stream."""

  def __init__(self, directory: str, dtype: np.dtype, shard_tokens: int):
    if shard_tokens < 1:
      raise ValueError(f"shard_tokens={shard_tokens}: must be >= 1")
    self.directory = directory
    self.dtype = np.dtype(dtype)
    self.shard_tokens = int(shard_tokens)
    self.shards: list[dict] = []
    self.num_tokens = 0
    self.num_documents = 0
    self._hash = hashlib.sha256()
    self._file = None
    self._in_shard = 0
    os.makedirs(directory, exist_ok=True)

  def write(self, tokens: np.ndarray, num_documents: int = 0) -> None:
    tokens = np.ascontiguousarray(tokens, dtype=self.dtype)
    self.num_documents += num_documents
    while tokens.size:
      if self._file is None or self._in_shard == self.shard_tokens:
        self._roll()
      take = min(tokens.size, self.shard_tokens - self._in_shard)
      data = tokens[:take].tobytes()
      self._file.write(data)
      self._hash.update(data)
      self._in_shard += take
      self.num_tokens += take
      self.shards[-1]["num_tokens"] = self._in_shard
      tokens = tokens[take:]

  def _roll(self) -> None:
    self._close_file()
    name = f"tokens-{len(self.shards):05d}.bin"
    self._file = open(os.path.join(self.directory, name), "wb")
    self._in_shard = 0
    self.shards.append(dict(file=name, num_tokens=0))

  def _close_file(self) -> None:
    if self._file is not None:
      self._file.flush()
      os.fsync(self._file.fileno())
      self._file.close()
      self._file = None

  def close(self) -> dict:
    """Closes the last shard; returns the split's manifest fields."""
    self._close_file()
    return dict(
      num_tokens=self.num_tokens,
      num_documents=self.num_documents,
      shards=self.shards,
      content_hash="sha256:" + self._hash.hexdigest(),
    )


def finish(directory: str, writers: dict[str, ShardWriter], common: dict, recipe: dict) -> dict:
  """Closes the writers, writes each split's manifest and then DIR/manifest.json (last); returns the latter."""
  summary = {}
  for split, writer in writers.items():
    fields = writer.close()
    rundir.write_json(os.path.join(directory, split, MANIFEST), dict(common, split=split, **fields))
    summary[split] = {k: fields[k] for k in ("num_tokens", "num_documents", "content_hash")}
  content = hashlib.sha256("".join(f"{s}={v['content_hash']}\n" for s, v in sorted(summary.items())).encode())
  manifest = dict(
    common,
    format=FORMAT,
    splits=summary,
    num_tokens=sum(v["num_tokens"] for v in summary.values()),
    content_hash="sha256:" + content.hexdigest(),
    recipe=recipe,
  )
  rundir.write_json(os.path.join(directory, MANIFEST), manifest)
  return manifest


def write_prepared(
  path: str,
  splits: dict[str, np.ndarray],
  *,
  tokenizer: str = "gpt2",
  vocab_size: int = 50257,
  eot_id: int = 50256,
  shard_tokens: int = 1 << 20,
) -> dict:
  """Writes token arrays as a prepared dir (source "tokens"), atomically: for tests and for corpora tokenized
  elsewhere. `splits` maps split name -> 1-D token array (documents already joined with `eot_id`)."""
  if os.path.exists(path) and os.listdir(path):
    raise FileExistsError(f"{path}: exists and is not empty")
  dtype = token_dtype(vocab_size)
  tmp = f"{path}.tmp-{os.getpid()}"
  writers = {}
  for split, tokens in splits.items():
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or tokens.size == 0 or tokens.min() < 0 or tokens.max() >= vocab_size:
      raise ValueError(f"split {split!r}: expected a non-empty 1-D array of ids in [0, {vocab_size})")
    writers[split] = ShardWriter(os.path.join(tmp, split), dtype, shard_tokens)
    writers[split].write(tokens, int(np.sum(tokens == eot_id)))
  common = dict(source="tokens", tokenizer=tokenizer, vocab_size=vocab_size, eot_id=eot_id, dtype=dtype.name)
  manifest = finish(tmp, writers, common, recipe=dict(source="tokens"))
  rundir.publish(tmp, path)
  return manifest


def mirror_dir(remote: str, cache_root: str) -> str:
  """Where a prepared dir on an object store is mirrored locally (memmaps need a local file)."""
  return os.path.join(cache_root, "remote", hashlib.sha256(remote.rstrip("/").encode()).hexdigest()[:16])


def localize(path: str, cache_root: str) -> str:
  """A local directory holding prepared dir `path`: `path` itself when local; for gs:// a mirror under the cache,
  copied once (shards first, manifests last, so an interrupted copy is never taken as complete) and reused while
  its top-level manifest equals the remote one."""
  if not rundir.is_remote(path):
    return path
  local = mirror_dir(path, cache_root)
  remote_manifest = rundir.read_text(rundir.join(path, MANIFEST))
  if rundir.read_text(os.path.join(local, MANIFEST), default=None) == remote_manifest:
    return local
  files = list(rundir.walk_files(path))
  for rel in sorted(files, key=lambda f: f.endswith(MANIFEST)):  # manifests after the shards they describe
    rundir.copy(rundir.join(path, rel), os.path.join(local, rel))
  return local


def upload(local: str, remote: str) -> None:
  """Copies a prepared dir to an object store, manifests last (readers take a manifest as 'complete')."""
  files = list(rundir.walk_files(local))
  for rel in sorted(files, key=lambda f: f.endswith(MANIFEST)):
    rundir.copy(os.path.join(local, rel), rundir.join(remote, rel))


def split_dir(path: str, split: str) -> str:
  """DIR/<split> of a prepared dir, with an error that lists the splits it has."""
  manifest = read_manifest(path)
  if split not in manifest["splits"]:
    raise ValueError(f"data.split={split!r}: {path} holds the splits {sorted(manifest['splits'])}")
  return os.path.join(path, split)


class TokenStore:
  """Random access to one split's token stream across its shards (read-only memmaps)."""

  def __init__(self, directory: str):
    self.directory = directory
    self.manifest = read_json(os.path.join(directory, MANIFEST))
    self.dtype = np.dtype(self.manifest["dtype"])
    self.num_tokens = int(self.manifest["num_tokens"])
    self._open()

  def _open(self) -> None:
    self._maps = []
    for shard in self.manifest["shards"]:
      file = os.path.join(self.directory, shard["file"])
      expected = shard["num_tokens"] * self.dtype.itemsize
      size = os.path.getsize(file) if os.path.exists(file) else -1
      if size != expected:
        raise ValueError(
          f"{file}: {size} bytes on disk, the manifest says {expected}; the data is damaged, "
          "re-run python -m ffnjax.data.prepare into a fresh dir"
        )
      self._maps.append(np.memmap(file, dtype=self.dtype, mode="r") if expected else np.zeros(0, self.dtype))
    self._starts = np.cumsum([0] + [m.size for m in self._maps])

  def __len__(self) -> int:
    return self.num_tokens

  def read(self, start: int, length: int) -> np.ndarray:
    """Tokens [start, start + length) of the stream, in the stored dtype (a copy)."""
    if start < 0 or start + length > self.num_tokens:
      raise IndexError(f"tokens [{start}, {start + length}) outside the stream of {self.num_tokens}")
    k = int(np.searchsorted(self._starts, start, side="right")) - 1
    offset = start - int(self._starts[k])
    shard = self._maps[k]
    if offset + length <= shard.size:
      return np.array(shard[offset : offset + length])
    parts, need = [], length
    while need:
      piece = self._maps[k][offset : offset + need]
      parts.append(piece)
      need -= piece.size
      k, offset = k + 1, 0
    return np.concatenate(parts)

  def content_hash(self) -> str:
    """Re-hashes the stream (reads everything): compare with manifest['content_hash'] to verify a copy."""
    h = hashlib.sha256()
    for m in self._maps:
      for i in range(0, m.size, 1 << 24):
        h.update(np.ascontiguousarray(m[i : i + (1 << 24)]).tobytes())
    return "sha256:" + h.hexdigest()

  def __getstate__(self):  # memmaps pickle by path: Grain workers re-open the files
    return dict(directory=self.directory)

  def __setstate__(self, state):
    self.__init__(state["directory"])
