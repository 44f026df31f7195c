"""Torch-free loading of the CARL/LAC dataset pickles (``train.pkl``, ``val.pkl``).

CARL's pickles hold torch tensors (``frame_label``) pickled as calls to torch functions on a
``torch.save``'d storage. :func:`load_pickle` unpickles with an allow-list: those torch callables
are replaced by NumPy equivalents, NumPy arrays/scalars and a few builtins are allowed, and any
other global is refused (pickles can run arbitrary code). That holds for every pickle read, the
ones nested in a storage's bytes included. Tensors come back as ``np.ndarray`` with the tensor's
dtype and shape. The byte format, legacy and zip:
docs/data.md#the-carllac-pickles-without-torch.
"""

from __future__ import annotations

import codecs
import collections
import io
import os
import pickle
import zipfile
from typing import Any, Callable

import numpy as np

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER (legacy format)

# torch storage class name -> NumPy dtype. bfloat16 is stored as raw uint16 and widened below.
_STORAGE_DTYPES: dict[str, np.dtype] = {
  "DoubleStorage": np.dtype("<f8"),
  "FloatStorage": np.dtype("<f4"),
  "HalfStorage": np.dtype("<f2"),
  "BFloat16Storage": np.dtype("<u2"),
  "LongStorage": np.dtype("<i8"),
  "IntStorage": np.dtype("<i4"),
  "ShortStorage": np.dtype("<i2"),
  "CharStorage": np.dtype("i1"),
  "ByteStorage": np.dtype("u1"),
  "BoolStorage": np.dtype("?"),
  "ComplexFloatStorage": np.dtype("<c8"),
  "ComplexDoubleStorage": np.dtype("<c16"),
}


class _StorageType:
  """Stand-in for a ``torch.<X>Storage`` class referenced from a pickle."""

  def __init__(self, name: str):
    self.name = name
    self.dtype = _STORAGE_DTYPES[name]


class _Storage:
  """A flat storage: ``data`` is a 1-D array of the storage dtype; bfloat16 flagged."""

  def __init__(self, data: np.ndarray, bfloat16: bool = False):
    self.data = data
    self.bfloat16 = bfloat16


def _bfloat16_to_float32(raw: np.ndarray) -> np.ndarray:
  return (raw.astype(np.uint32) << 16).view(np.float32)


def _rebuild_tensor(storage: _Storage, storage_offset: int, size, stride, *unused) -> np.ndarray:
  """NumPy version of ``torch._utils._rebuild_tensor(_v2)``: a strided view, copied."""
  del unused  # requires_grad, backward_hooks, metadata
  if not isinstance(storage, _Storage):
    raise pickle.UnpicklingError(f"tensor storage has unexpected type {type(storage).__name__}")
  data = storage.data
  size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
  if len(size) != len(stride):
    raise pickle.UnpicklingError(f"tensor size {size} and stride {stride} differ in rank")
  if any(s == 0 for s in size):
    out = np.zeros(size, data.dtype)
  else:
    last = storage_offset + sum((n - 1) * st for n, st in zip(size, stride))
    if storage_offset < 0 or any(st < 0 for st in stride) or last >= data.shape[0]:
      raise pickle.UnpicklingError(
        f"tensor view (offset {storage_offset}, size {size}, stride {stride}) lies outside "
        f"its storage of {data.shape[0]} elements"
      )
    out = np.lib.stride_tricks.as_strided(
      data[storage_offset:], shape=size, strides=tuple(st * data.itemsize for st in stride)
    ).copy()
  return _bfloat16_to_float32(out) if storage.bfloat16 else out


def _rebuild_from_type_v2(func: Callable[..., Any], unused_type, args, unused_state):
  """``torch._tensor._rebuild_from_type_v2``: tensor subclasses -> plain arrays."""
  return func(*args)


def _ordered_dict(*args):
  return collections.OrderedDict(*args)


def _numpy_global(module: str, name: str) -> Any:
  """The few NumPy callables that ``ndarray``/scalar pickles reference (numpy 1.x and 2.x)."""
  allowed = {"_reconstruct", "scalar", "ndarray", "dtype", "_frombuffer"}
  if name not in allowed:
    return None
  if module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    return getattr(np._core.multiarray, name)  # pylint: disable=protected-access
  if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
    return np._core.numeric._frombuffer  # pylint: disable=protected-access
  if module == "numpy" and name in ("ndarray", "dtype"):
    return getattr(np, name)
  return None


_SAFE_BUILTINS = {
  "set": set,
  "frozenset": frozenset,
  "complex": complex,
  "slice": slice,
  "range": range,
  "bytearray": bytearray,
}


class RefusedGlobal(pickle.UnpicklingError):
  """A pickle references a global outside the allow-list (the message names file and global)."""


class _Unpickler(pickle.Unpickler):
  """Allow-list unpickler mapping torch tensors/storages to NumPy."""

  def __init__(self, file, what: str, persistent_load: Callable[[Any], Any] | None = None):
    super().__init__(file)
    self._what = what
    self._persistent = persistent_load

  def find_class(self, module: str, name: str) -> Any:
    if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
      return _rebuild_tensor
    if module == "torch._tensor" and name == "_rebuild_from_type_v2":
      return _rebuild_from_type_v2
    if module == "torch.storage" and name == "_load_from_bytes":
      return lambda b: _load_storage_bytes(b, self._what)
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(name)
    if module == "collections" and name == "OrderedDict":
      return _ordered_dict
    if module in ("builtins", "__builtin__") and name in _SAFE_BUILTINS:
      return _SAFE_BUILTINS[name]
    if module == "_codecs" and name == "encode":  # bytes in protocol <= 2 pickles
      return codecs.encode
    if module.startswith("numpy"):
      found = _numpy_global(module, name)
      if found is not None:
        return found
    raise RefusedGlobal(
      f"{self._what}: refusing to unpickle global {module}.{name} (only torch tensors, "
      "NumPy arrays and plain Python containers are expected in a dataset pickle)"
    )

  def persistent_load(self, pid: Any) -> Any:
    if self._persistent is None:
      raise pickle.UnpicklingError(f"{self._what}: unexpected persistent id {pid!r}")
    return self._persistent(pid)


def _parse_storage_pid(pid: Any, what: str) -> tuple[_StorageType, str, int, Any]:
  """``('storage', storage_type, key, location, numel[, view_metadata])``."""
  if (
    not isinstance(pid, tuple)
    or len(pid) not in (5, 6)
    or pid[0] != "storage"
    or not isinstance(pid[1], _StorageType)
  ):
    raise pickle.UnpicklingError(f"{what}: unsupported torch persistent id {pid!r}")
  view = pid[5] if len(pid) == 6 else None
  return pid[1], str(pid[2]), int(pid[4]), view


def _load_storage_bytes(blob: bytes, what: str) -> _Storage:
  """Decode the bytes handed to ``torch.storage._load_from_bytes`` (legacy or zip)."""
  if blob[:4] == b"PK\x03\x04":
    return _load_zip_storage(blob, what)
  return _load_legacy_storage(blob, what)


def _load_legacy_storage(blob: bytes, what: str) -> _Storage:
  """A legacy ``torch.save`` of one storage: five pickles, then the raw storage bytes.

  Every pickle goes through the allow-list unpickler: these bytes come from the dataset file,
  so a plain ``pickle.load`` here would run whatever the file asks for.
  """
  f = io.BytesIO(blob)

  def load() -> Any:
    return _Unpickler(f, what).load()

  try:
    magic = load()
    if magic != _MAGIC_NUMBER:
      raise pickle.UnpicklingError("bad magic number")
    load()  # protocol version
    sys_info = load()
  except RefusedGlobal:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise pickle.UnpicklingError(f"{what}: corrupt torch storage header ({e})") from e
  little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
  roots: dict[str, _StorageType] = {}
  views: list[tuple[str, str, int, int]] = []

  def persistent(pid):
    stype, key, numel, view = _parse_storage_pid(pid, what)
    roots.setdefault(key, stype)
    if view is not None:  # (view_key, offset, view_size), torch < 1.0
      views.append((str(view[0]), key, int(view[1]), int(view[2])))
      return ("view", str(view[0]))
    return ("root", key)

  main = _Unpickler(f, what, persistent).load()
  keys = load()
  if not isinstance(keys, list):
    raise pickle.UnpicklingError(f"{what}: torch storage key list is a {type(keys).__name__}")
  data: dict[str, np.ndarray] = {}
  for key in keys:
    stype = roots[str(key)]
    header = f.read(8)
    if len(header) != 8:
      raise pickle.UnpicklingError(f"{what}: truncated torch storage {key!r}")
    numel = int(np.frombuffer(header, "<i8")[0] if little else np.frombuffer(header, ">i8")[0])
    nbytes = numel * stype.dtype.itemsize
    raw = f.read(nbytes)
    if len(raw) != nbytes:
      raise pickle.UnpicklingError(
        f"{what}: torch storage {key!r} holds {len(raw)} bytes, expected {nbytes}"
      )
    dtype = stype.dtype if little else stype.dtype.newbyteorder(">")
    data[str(key)] = np.frombuffer(raw, dtype).astype(stype.dtype)
  for view_key, key, offset, size in views:
    data[view_key] = data[key][offset : offset + size]
  kind, key = main if isinstance(main, tuple) else (None, None)
  if key not in data:
    raise pickle.UnpicklingError(f"{what}: torch storage pickle holds no storage data")
  stype = roots.get(key) or next(iter(roots.values()))
  return _Storage(data[key], bfloat16=stype.name == "BFloat16Storage")


def _load_zip_storage(blob: bytes, what: str) -> _Storage:
  try:
    zf = zipfile.ZipFile(io.BytesIO(blob))
    names = zf.namelist()
    pkl = next(n for n in names if n.endswith("data.pkl"))
    prefix = pkl[: -len("data.pkl")]
    big = prefix + "byteorder" in names and zf.read(prefix + "byteorder").strip() == b"big"
  except (zipfile.BadZipFile, StopIteration) as e:
    raise pickle.UnpicklingError(f"{what}: corrupt zip torch storage ({e})") from e
  types: dict[str, _StorageType] = {}

  def persistent(pid):
    stype, key, _, _ = _parse_storage_pid(pid, what)
    types[key] = stype
    return ("root", key)

  main = _Unpickler(io.BytesIO(zf.read(pkl)), what, persistent).load()
  if not (isinstance(main, tuple) and main[0] == "root"):
    raise pickle.UnpicklingError(f"{what}: zip torch storage pickle holds no storage")
  key = main[1]
  stype = types[key]
  dtype = stype.dtype.newbyteorder(">") if big else stype.dtype
  data = np.frombuffer(zf.read(f"{prefix}data/{key}"), dtype).astype(stype.dtype)
  return _Storage(data, bfloat16=stype.name == "BFloat16Storage")


def load_pickle(path: str | os.PathLike) -> Any:
  """Unpickles a CARL/LAC dataset pickle without torch; tensors become ``np.ndarray``.

  Raises:
    FileNotFoundError: ``path`` does not exist.
    pickle.UnpicklingError: the file is corrupt or references a non-allow-listed global.
  """
  path = os.fspath(path)
  with open(path, "rb") as f:
    try:
      return _Unpickler(f, path).load()
    except pickle.UnpicklingError as e:
      if str(e).startswith(path):
        raise
      raise pickle.UnpicklingError(f"{path}: corrupt pickle ({e})") from e
    except Exception as e:  # EOFError, struct errors, ... from a truncated/corrupt file
      raise pickle.UnpicklingError(f"{path}: corrupt pickle ({type(e).__name__}: {e})") from e
