"""The one module for every path a user gives: run and study directories, data, outputs. Local or `gs://`.

Paths are `etils.epath` paths (Orbax's own path type), so any URL epath knows (`gs://`, `s3://`, ...) works where a
local directory does. `gs://` goes through fsspec/gcsfs (`pip install -e .[gcs]`); the GCS emulator used by the tests
is reached through `STORAGE_EMULATOR_HOST` (gcsfs) and `TENSORSTORE_GCS_HTTP_URL` (Orbax's array files).

Writes are atomic, so a reader (or a crash, kill or preemption) never leaves half a file:
  local : a temporary file next to the target, fsync, rename over the target;
  object stores: a single object upload, which becomes visible only once complete.
Files get the user's umask (never a private 0600 temporary's mode). Nothing here imports JAX.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from typing import Any

from etils import epath

PathLike = str | os.PathLike
_MISSING = object()


def _no_listing_cache() -> None:
  """gcsfs caches directory listings for the life of the process, so a long-lived reader (the babysitter, a test,
  a study runner) would never see a checkpoint another process commits. Run directories are small: list afresh."""
  try:
    import fsspec.config
  except ImportError:  # no fsspec: no gs:// either
    return
  for protocol in ("gcs", "gs"):
    fsspec.config.conf.setdefault(protocol, {}).setdefault("use_listings_cache", False)


_no_listing_cache()


def path(p: PathLike) -> epath.Path:
  """`p` as an epath.Path: local paths made absolute (Orbax requires it), URLs kept as they are."""
  s = os.fspath(p)
  return epath.Path(s if is_remote(s) else os.path.abspath(os.path.expanduser(s)))


def is_remote(p: PathLike) -> bool:
  """A URL (gs://, s3://, ...) rather than a local path (file:// counts as local)."""
  s = os.fspath(p)
  return "://" in s and not s.startswith("file://")


def join(p: PathLike, *parts: str) -> str:
  """`p/part/...` as a string (for configs and messages), without making a local path absolute."""
  s = os.fspath(p)
  if is_remote(s):
    return "/".join([s.rstrip("/"), *(q.strip("/") for q in parts)])
  return os.path.join(s, *parts)


def local(p: PathLike) -> str | None:
  """The OS path of a local `p`, None for a URL: for the few tools that only write to a local disk."""
  return None if is_remote(p) else str(path(p))


def exists(p: PathLike) -> bool:
  return path(p).exists()


def isdir(p: PathLike) -> bool:
  return path(p).is_dir()


def isfile(p: PathLike) -> bool:
  q = path(p)
  return q.exists() and not q.is_dir()


def mkdirs(p: PathLike) -> epath.Path:
  """Creates a local directory (and its parents). Object stores have no directories: nothing to do."""
  q = path(p)
  if not is_remote(q):
    q.mkdir(parents=True, exist_ok=True)
  return q


def listdir(p: PathLike) -> list[str]:
  """Sorted entry names of directory `p`; [] when it does not exist."""
  q = path(p)
  if not q.is_dir():
    return []
  return sorted(c.name for c in q.iterdir())


def glob(p: PathLike, pattern: str) -> list[str]:
  """Sorted paths under directory `p` matching `pattern` (no `**`: on object stores that is a crawl)."""
  return sorted(os.fspath(c) for c in path(p).glob(pattern))


def open(p: PathLike, mode: str = "r"):  # the module's open, like io.open
  """A file object for streaming reads (or a plain write where atomicity does not matter)."""
  return path(p).open(mode)


def read_bytes(p: PathLike, default: Any = _MISSING) -> bytes:
  q = path(p)
  if default is not _MISSING and not q.exists():
    return default
  return q.read_bytes()


def read_text(p: PathLike, default: Any = _MISSING) -> str:
  q = path(p)
  if default is not _MISSING and not q.exists():
    return default
  return q.read_text()


def read_json(p: PathLike, default: Any = _MISSING) -> Any:
  text = read_text(p, default=None if default is not _MISSING else _MISSING)
  return default if text is None else json.loads(text)


def write_bytes(p: PathLike, data: bytes) -> None:
  """The one atomic write: the target holds the old bytes or the new ones, never a part."""
  q = path(p)
  if is_remote(q):
    q.write_bytes(data)  # one object upload: visible only once complete
    return
  target = os.fspath(q)
  os.makedirs(os.path.dirname(target), exist_ok=True)
  tmp = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.tmp-{secrets.token_hex(4)}")
  # os.open with 0o666 lets the umask decide the mode (tempfile.mkstemp would make it 0600).
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    publish(tmp, target)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def publish(tmp: str, target: str) -> None:
  """Moves a finished local temporary file or directory, written next to `target`, into place in one rename, so
  readers see the old target or the complete new one, never a part; the rename is made durable. The one commit
  step of every atomic local write (write_bytes, streamed files, prepared and cached directories). A file
  replaces its target; a directory replaces only an absent or empty one (OSError otherwise, os.rename's rule)."""
  if os.path.isfile(tmp):
    fd = os.open(tmp, os.O_RDONLY)
    try:
      os.fsync(fd)
    finally:
      os.close(fd)
  os.replace(tmp, target)
  _fsync_dir(os.path.dirname(os.path.abspath(target)))


def _fsync_dir(directory: str) -> None:
  """Makes the rename itself durable (a power cut after it keeps the new file)."""
  try:
    fd = os.open(directory, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def write_text(p: PathLike, text: str) -> None:
  write_bytes(p, text.encode("utf-8"))


def dumps(obj: Any) -> str:
  """The JSON layout of every file ffnjax writes: indented, sorted keys (diffable), a final newline."""
  return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def write_json(p: PathLike, obj: Any) -> None:
  write_text(p, dumps(obj))


def remove(p: PathLike) -> None:
  """Deletes a file or a whole directory tree; nothing when it does not exist."""
  q = path(p)
  if q.is_dir():
    q.rmtree()
  elif q.exists():
    q.unlink()


def rename(src: PathLike, dst: PathLike) -> None:
  """Moves a file or directory tree (local: one rename; object stores: copy, then delete)."""
  if exists(dst):
    raise FileExistsError(f"{os.fspath(dst)} already exists")
  path(src).rename(path(dst))


def copy(src: PathLike, dst: PathLike) -> None:
  """Copies one file (atomically, like every write), between any two stores."""
  write_bytes(dst, read_bytes(src))


def check_writable(directory: PathLike, flag: str = "--workdir") -> None:
  """Creates `directory` and writes/deletes a probe file: fails early, naming the flag, rather than at a save."""
  probe = join(directory, f".write-test-{secrets.token_hex(4)}")
  try:
    mkdirs(directory)
    write_text(probe, "ok")
    remove(probe)
  except (OSError, ImportError) as e:
    raise PermissionError(
      f"{flag}={os.fspath(directory)} is not writable: {getattr(e, 'strerror', None) or e}"
    ) from None


class Appender:
  """Appends lines to a text file, each one durable once `write` returns (metrics.jsonl).

  Local files are appended to. Object stores cannot append, so the whole object is rewritten (one atomic upload)
  on every write; what was there before (an earlier attempt of a resumed run) is kept.
  """

  def __init__(self, p: PathLike):
    self._path = path(p)
    if is_remote(self._path):
      self._file = None
      self._text = read_text(self._path, default="")
    else:
      os.makedirs(os.path.dirname(os.fspath(self._path)), exist_ok=True)
      self._file = open(self._path, "a")

  def write(self, text: str) -> None:
    if self._file is not None:
      self._file.write(text)
      self._file.flush()
      os.fsync(self._file.fileno())
    else:
      self._text += text
      write_text(self._path, self._text)

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None


def walk_files(p: PathLike) -> Iterator[str]:
  """Every file under directory `p`, as paths relative to it (sorted)."""
  root = path(p)
  if not root.is_dir():
    return iter(())
  out = []
  base = os.fspath(root).split("://", 1)[-1].rstrip("/")  # fsspec's walk drops the gs:// of its paths
  for dirpath, _, files in root.walk():
    rel = os.fspath(dirpath).split("://", 1)[-1][len(base) :].strip("/")
    out.extend(f"{rel}/{f}" if rel else f for f in files)
  return iter(sorted(out))
