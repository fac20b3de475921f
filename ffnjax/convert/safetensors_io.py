"""safetensors reading by slice (one tensor at a time, only the rows/columns a shard needs) and streaming writing.

`CheckpointReader` opens a Hugging Face directory's `model.safetensors` or the shards named by
`model.safetensors.index.json` and reads any rectangular slice of any tensor without loading the rest (safetensors
memory-maps the file). `StreamingWriter` writes a safetensors file whose header is computed up front, then the
tensors one by one, so exporting never holds more than one tensor on the host.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable, Sequence

import ml_dtypes
import numpy as np
from safetensors import safe_open

from ffnjax.convert.errors import ConvertError
from ffnjax.core import rundir

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"

_ST_TO_NP = {
  "F64": "float64",
  "F32": "float32",
  "F16": "float16",
  "BF16": "bfloat16",
  "I64": "int64",
  "I32": "int32",
  "I16": "int16",
  "I8": "int8",
  "U8": "uint8",
  "BOOL": "bool",
}
_NP_TO_ST = {v: k for k, v in _ST_TO_NP.items()}


def np_dtype(name: str) -> np.dtype:
  """numpy dtype by name, bfloat16 included (ml_dtypes, which JAX brings)."""
  if name == "bfloat16":
    return np.dtype(ml_dtypes.bfloat16)
  return np.dtype(name)


class CheckpointReader:
  """Tensor name -> file, shape, dtype, and sliced reads. Use as a context manager (closes the files)."""

  def __init__(self, model_dir: str):
    self.model_dir = model_dir
    index_path = os.path.join(model_dir, INDEX_FILE)
    single_path = os.path.join(model_dir, SINGLE_FILE)
    if os.path.exists(index_path):
      try:
        with open(index_path) as f:
          weight_map = json.load(f)["weight_map"]
      except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConvertError(f"{index_path}: not a safetensors index (needs a 'weight_map' object): {e}") from None
      self.weight_map = dict(weight_map)
    elif os.path.exists(single_path):
      self.weight_map = None
    else:
      others = sorted(f for f in os.listdir(model_dir) if f.endswith((".bin", ".pt", ".pth", ".gguf", ".safetensors")))
      hint = (
        f"; found {others} (only safetensors is read: re-save with save_pretrained(safe_serialization=True))"
        if others
        else ""
      )
      raise ConvertError(f"{model_dir}: no {SINGLE_FILE} or {INDEX_FILE}{hint}")
    self._handles: dict[str, object] = {}
    self._names: dict[str, str] = {}  # tensor -> file
    if self.weight_map is None:
      handle = self._open(SINGLE_FILE)
      self._names = {name: SINGLE_FILE for name in handle.keys()}
    else:
      for name, file in self.weight_map.items():
        self._names[name] = file
      for file in sorted(set(self.weight_map.values())):
        handle = self._open(file)
        listed = {n for n, f in self.weight_map.items() if f == file}
        missing = sorted(listed - set(handle.keys()))
        if missing:
          raise ConvertError(
            f"{os.path.join(model_dir, file)}: {INDEX_FILE} lists tensor {missing[0]!r} in this "
            f"file, but the file does not contain it"
          )

  def _open(self, file: str):
    if file not in self._handles:
      path = os.path.join(self.model_dir, file)
      if not os.path.exists(path):
        raise ConvertError(f"{path}: missing safetensors file (named by {INDEX_FILE})")
      try:
        self._handles[file] = safe_open(path, framework="numpy")
      except Exception as e:  # noqa: BLE001 - the library raises its own error types
        raise ConvertError(f"{path}: not a readable safetensors file: {e}") from None
    return self._handles[file]

  def close(self) -> None:
    for handle in self._handles.values():
      close = getattr(handle, "__exit__", None)
      if close is not None:
        try:
          close(None, None, None)
        except Exception:  # noqa: BLE001 - as above: any error of the library means the same
          pass
    self._handles.clear()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  # --- queries ------------------------------------------------------------------------------------------
  def names(self) -> list[str]:
    return sorted(self._names)

  def __contains__(self, name: str) -> bool:
    return name in self._names

  def file_of(self, name: str) -> str:
    return self._names[name]

  def shape(self, name: str) -> tuple[int, ...]:
    return tuple(self._open(self._names[name]).get_slice(name).get_shape())

  def dtype(self, name: str) -> str:
    """numpy-style name, e.g. 'float32', 'bfloat16'."""
    st = self._open(self._names[name]).get_slice(name).get_dtype()
    return _ST_TO_NP.get(st, st)

  # --- reads --------------------------------------------------------------------------------------------
  def read(self, name: str, index: Sequence[slice] | None = None) -> np.ndarray:
    """The tensor, or only the part `index` (one basic slice per dimension) selects."""
    handle = self._open(self._names[name])
    view = handle.get_slice(name)
    index = tuple(index) if index is not None else tuple(slice(None) for _ in view.get_shape())
    try:
      return np.asarray(view[index])
    except TypeError:  # an older safetensors without bfloat16 in numpy: read the bytes through a memmap
      return self._read_memmap(name)[index]

  def _read_memmap(self, name: str) -> np.ndarray:
    path = os.path.join(self.model_dir, self._names[name])
    with open(path, "rb") as f:
      (header_len,) = struct.unpack("<Q", f.read(8))
      header = json.loads(f.read(header_len))
    info = header[name]
    begin, end = info["data_offsets"]
    dtype = np_dtype(_ST_TO_NP[info["dtype"]])
    mm = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_len + begin, shape=(end - begin,))
    return mm.view(dtype).reshape(info["shape"])


class StreamingWriter:
  """Writes one safetensors file: the header from (name, shape, dtype) declared up front, then each tensor.

  Tensors must be written in the declared order with the declared shape and dtype. The file appears under its
  final name only when `close()` has written every tensor.
  """

  def __init__(self, path: str, specs: Iterable[tuple[str, Sequence[int], str]], metadata: dict | None = None):
    self.path = path
    self._specs = [(name, tuple(int(s) for s in shape), dtype) for name, shape, dtype in specs]
    header: dict = {"__metadata__": dict(metadata or {"format": "pt"})}
    offset = 0
    for name, shape, dtype in self._specs:
      nbytes = int(np.prod(shape, dtype=np.int64)) * np_dtype(dtype).itemsize
      header[name] = {"dtype": _NP_TO_ST[dtype], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
      offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned
    self.total_bytes = offset
    self._tmp = path + ".partial"
    self._f = open(self._tmp, "wb")
    self._f.write(struct.pack("<Q", len(raw)))
    self._f.write(raw)
    self._next = 0

  def write(self, name: str, array: np.ndarray) -> None:
    want_name, shape, dtype = self._specs[self._next]
    if name != want_name or tuple(array.shape) != shape or array.dtype != np_dtype(dtype):
      raise AssertionError(
        f"StreamingWriter: expected {want_name} {shape} {dtype}, got {name} {tuple(array.shape)} {array.dtype}"
      )
    self._f.write(np.ascontiguousarray(array).tobytes())
    self._next += 1

  def close(self) -> None:
    self._f.close()
    if self._next != len(self._specs):
      os.remove(self._tmp)
      raise AssertionError(f"StreamingWriter: {len(self._specs) - self._next} tensors were not written")
    rundir.publish(self._tmp, self.path)

  def abort(self) -> None:
    self._f.close()
    if os.path.exists(self._tmp):
      os.remove(self._tmp)
