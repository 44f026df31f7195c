"""Converts a torchvision ResNet checkpoint into Flax variables for ``lac_jax.models.resnet``.

Usage::

  python -m lac_jax.models.convert --checkpoint=resnet50-11ad3fa6.pth \
      --output=resnet50_flax.npz [--depth=50]

Reads ``.pth`` (zip format), ``.safetensors`` or ``.npz`` without torch and writes an ``.npz``
for ``config.model.backbone_weights``. Input formats, output keys and the name mapping:
docs/models.md#converting-torchvision-weights.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pickle
import re
import struct
import sys
import zipfile
from typing import Any, Dict, Mapping, Optional, Sequence

import ml_dtypes
import numpy as np

from lac_jax.models import resnet

META_DEPTH = "meta/depth"
META_NUM_CLASSES = "meta/num_classes"

# ---------------------------------------------------------------------------------------------
# Readers.

_TORCH_STORAGE_DTYPES = {
  "FloatStorage": np.float32,
  "DoubleStorage": np.float64,
  "HalfStorage": np.float16,
  "BFloat16Storage": ml_dtypes.bfloat16,
  "LongStorage": np.int64,
  "IntStorage": np.int32,
  "ShortStorage": np.int16,
  "CharStorage": np.int8,
  "ByteStorage": np.uint8,
  "BoolStorage": np.bool_,
}


class CheckpointError(ValueError):
  """A checkpoint file cannot be read or does not match the expected ResNet."""


class _StorageType:
  """Stands in for ``torch.<X>Storage`` in the pickle: carries the element dtype."""

  def __init__(self, name: str):
    self.name = name
    self.dtype = np.dtype(_TORCH_STORAGE_DTYPES[name])


def _rebuild_tensor(
  storage: np.ndarray, offset: int, size: Sequence[int], stride: Sequence[int], *unused: Any
) -> np.ndarray:
  """Rebuilds ``torch._utils._rebuild_tensor_v2`` as a NumPy copy (handles views/strides)."""
  size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
  if any(s == 0 for s in size):
    return np.zeros(size, storage.dtype)
  last = offset + sum((n - 1) * st for n, st in zip(size, stride))
  if offset < 0 or last >= storage.size or any(st < 0 for st in stride):
    raise CheckpointError(
      f"tensor view (offset {offset}, size {size}, stride {stride}) "
      f"exceeds its storage of {storage.size} elements"
    )
  view = np.lib.stride_tricks.as_strided(
    storage[offset:], shape=size, strides=tuple(st * storage.itemsize for st in stride)
  )
  return np.array(view)


def _rebuild_parameter(data: np.ndarray, *unused: Any) -> np.ndarray:
  return data


class _RestrictedUnpickler(pickle.Unpickler):
  """Unpickles a torch ``data.pkl`` allowing only tensors, storages and plain containers."""

  def __init__(self, file: Any, zf: zipfile.ZipFile, prefix: str, path: str, big_endian: bool):
    super().__init__(file)
    self._zf, self._prefix, self._path, self._big_endian = zf, prefix, path, big_endian
    self._storages: Dict[str, np.ndarray] = {}

  def find_class(self, module: str, name: str) -> Any:
    if module == "torch._utils" and name == "_rebuild_tensor_v2":
      return _rebuild_tensor
    if module == "torch._utils" and name == "_rebuild_parameter":
      return _rebuild_parameter
    if module == "torch" and name in _TORCH_STORAGE_DTYPES:
      return _StorageType(name)
    if module == "collections" and name == "OrderedDict":
      return collections.OrderedDict
    raise CheckpointError(
      f"{self._path}: refusing to unpickle {module}.{name}; only tensors, storages and dicts "
      "are allowed (save a plain state_dict: torch.save(model.state_dict(), path))"
    )

  def persistent_load(self, pid: Any) -> np.ndarray:
    if not (
      isinstance(pid, tuple)
      and len(pid) >= 5
      and pid[0] == "storage"
      and isinstance(pid[1], _StorageType)
    ):
      raise CheckpointError(f"{self._path}: unsupported persistent id {pid!r}")
    storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
    if key not in self._storages:
      member = f"{self._prefix}/data/{key}"
      try:
        raw = self._zf.read(member)
      except KeyError:
        raise CheckpointError(
          f"{self._path}: storage {member!r} is missing from the archive"
        ) from None
      dtype = storage_type.dtype.newbyteorder(">" if self._big_endian else "<")
      if len(raw) < numel * dtype.itemsize:
        raise CheckpointError(
          f"{self._path}: storage {member!r} has {len(raw)} bytes, "
          f"expected {numel * dtype.itemsize}"
        )
      arr = np.frombuffer(raw, dtype=dtype, count=numel)
      self._storages[key] = arr.astype(storage_type.dtype)
    return self._storages[key]


def _read_torch_zip(path: str, zf: zipfile.ZipFile) -> Any:
  pkls = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
  if not pkls:
    raise CheckpointError(f"{path}: zip archive without '<name>/data.pkl': not a torch.save file")
  prefix = pkls[0].split("/")[0]
  big_endian = False
  if f"{prefix}/byteorder" in zf.namelist():
    big_endian = zf.read(f"{prefix}/byteorder").decode().strip() == "big"
  with zf.open(pkls[0]) as f:
    return _RestrictedUnpickler(f, zf, prefix, path, big_endian).load()


def read_pth(path: str) -> Any:
  """Reads a zip-format ``torch.save`` file without torch; tensors come back as NumPy arrays."""
  if not zipfile.is_zipfile(path):
    with open(path, "rb") as f:
      head = f.read(2)
    if head[:1] == b"\x80":
      raise CheckpointError(
        f"{path}: legacy (pre-1.6, non-zip) torch serialization is not supported; re-save it "
        "with torch >= 1.6: torch.save(torch.load(old_path), new_path)"
      )
    raise CheckpointError(f"{path}: not a torch zip checkpoint, .safetensors or .npz file")
  with zipfile.ZipFile(path) as zf:
    return _read_torch_zip(path, zf)


_SAFETENSORS_DTYPES = {
  "F64": np.float64,
  "F32": np.float32,
  "F16": np.float16,
  "BF16": ml_dtypes.bfloat16,
  "I64": np.int64,
  "I32": np.int32,
  "I16": np.int16,
  "I8": np.int8,
  "U8": np.uint8,
  "BOOL": np.bool_,
}


def read_safetensors(path: str) -> Dict[str, np.ndarray]:
  """Reads a ``.safetensors`` file: ``{name: array}`` (``__metadata__`` is skipped)."""
  with open(path, "rb") as f:
    data = f.read()
  if len(data) < 8:
    raise CheckpointError(f"{path}: too short for a safetensors file ({len(data)} bytes)")
  (header_len,) = struct.unpack("<Q", data[:8])
  if header_len > len(data) - 8:
    raise CheckpointError(f"{path}: safetensors header length {header_len} exceeds the file")
  try:
    header = json.loads(data[8 : 8 + header_len].decode("utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise CheckpointError(f"{path}: unreadable safetensors JSON header: {e}") from e
  body = memoryview(data)[8 + header_len :]
  out = {}
  for name, info in header.items():
    if name == "__metadata__":
      continue
    try:
      dtype = np.dtype(_SAFETENSORS_DTYPES[info["dtype"]])
      shape = tuple(int(s) for s in info["shape"])
      begin, end = (int(o) for o in info["data_offsets"])
    except KeyError as e:
      raise CheckpointError(
        f"{path}: tensor {name!r}: bad or unsupported header entry {info!r} ({e})"
      ) from e
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if end - begin != expected or end > len(body) or begin < 0:
      raise CheckpointError(
        f"{path}: tensor {name!r}: data_offsets {[begin, end]} do not hold "
        f"{shape} {dtype} within {len(body)} data bytes"
      )
    arr = np.frombuffer(body[begin:end], dtype=dtype.newbyteorder("<")).reshape(shape)
    out[name] = arr.astype(dtype)
  return out


def read_npz(path: str) -> Dict[str, np.ndarray]:
  """Reads an ``.npz`` (no pickles): ``{name: array}``."""
  try:
    with np.load(path, allow_pickle=False) as z:
      return {k: z[k] for k in z.files}
  except (ValueError, OSError, zipfile.BadZipFile) as e:
    raise CheckpointError(f"{path}: unreadable .npz file: {e}") from e


def _is_npz(path: str) -> bool:
  with zipfile.ZipFile(path) as zf:
    names = zf.namelist()
  return bool(names) and all(n.endswith(".npy") for n in names)


def _unwrap(obj: Any, path: str) -> Dict[str, np.ndarray]:
  """Removes ``{'state_dict'|'model': ...}`` wrappers and a ``module.`` prefix."""
  for _ in range(3):
    if isinstance(obj, Mapping) and not any(isinstance(v, np.ndarray) for v in obj.values()):
      for wrapper in ("state_dict", "model"):
        if isinstance(obj.get(wrapper), Mapping):
          obj = obj[wrapper]
          break
      else:
        break
  if not isinstance(obj, Mapping):
    raise CheckpointError(
      f"{path}: expected a state_dict (a dict of tensors), got {type(obj).__name__}"
    )
  tensors = {str(k): v for k, v in obj.items() if isinstance(v, np.ndarray)}
  if not tensors:
    raise CheckpointError(f"{path}: no tensors found (keys: {list(obj)[:10]})")
  if all(k.startswith("module.") for k in tensors):
    tensors = {k[len("module.") :]: v for k, v in tensors.items()}
  return tensors


def read_state_dict(path: str) -> Dict[str, np.ndarray]:
  """Reads a torch-named state_dict from ``.pth`` (zip), ``.safetensors`` or ``.npz``."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"checkpoint file not found: {path}")
  if zipfile.is_zipfile(path):
    if _is_npz(path):
      return _unwrap(read_npz(path), path)
    return _unwrap(read_pth(path), path)
  with open(path, "rb") as f:
    head = f.read(9)
  if len(head) == 9 and head[8:9] == b"{":
    return _unwrap(read_safetensors(path), path)
  return _unwrap(read_pth(path), path)  # raises the legacy / unknown-format error


# ---------------------------------------------------------------------------------------------
# Mapping torchvision names onto the Flax tree.


def flatten_variables(tree: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
  """``{'params': {'conv1': {'kernel': x}}}`` -> ``{'params/conv1/kernel': x}``."""
  out = {}
  for k, v in tree.items():
    key = f"{prefix}{k}"
    if isinstance(v, Mapping):
      out.update(flatten_variables(v, key + "/"))
    else:
      out[key] = v
  return out


def unflatten_variables(flat: Mapping[str, Any]) -> Dict[str, Any]:
  """Inverse of ``flatten_variables``."""
  tree: Dict[str, Any] = {}
  for key, v in flat.items():
    node = tree
    parts = key.split("/")
    for p in parts[:-1]:
      node = node.setdefault(p, {})
    node[parts[-1]] = v
  return tree


def infer_depth(state_dict: Mapping[str, np.ndarray], path: str = "<state_dict>") -> int:
  """ResNet depth from the block structure of a torchvision state_dict."""
  bottleneck = "layer1.0.conv3.weight" in state_dict
  n3 = len({k.split(".")[1] for k in state_dict if k.startswith("layer3.")})
  for depth, (kind, blocks) in resnet.RESNET_SPECS.items():
    if (kind == "bottleneck") == bottleneck and blocks[2] == n3:
      return depth
  raise CheckpointError(
    f"{path}: not a torchvision ResNet-18/34/50 state_dict "
    f"({'bottleneck' if bottleneck else 'basic'} blocks, {n3} in layer3)"
  )


def _flax_key(torch_key: str, expected: Mapping[str, Any]) -> Optional[tuple]:
  """``layer1.0.downsample.1.running_mean`` -> (``batch_stats/layer1_0/downsample_1/mean``, op)."""
  parts = torch_key.split(".")
  modules: list = []
  for p in parts[:-1]:
    if p.isdigit() and modules:
      modules[-1] = f"{modules[-1]}_{p}"
    else:
      modules.append(p)
  mod, name = "/".join(modules), parts[-1]
  if f"params/{mod}/scale" in expected:  # BatchNorm
    return {
      "weight": (f"params/{mod}/scale", None),
      "bias": (f"params/{mod}/bias", None),
      "running_mean": (f"batch_stats/{mod}/mean", None),
      "running_var": (f"batch_stats/{mod}/var", None),
    }.get(name)
  if f"params/{mod}/kernel" in expected:  # Conv or Dense
    op = "fc" if expected[f"params/{mod}/kernel"].ndim == 2 else "conv"
    return {"weight": (f"params/{mod}/kernel", op), "bias": (f"params/{mod}/bias", None)}.get(name)
  return None


_TORCH_PARAM_NAMES = {
  "scale": "weight",
  "bias": "bias",
  "mean": "running_mean",
  "var": "running_var",
  "kernel": "weight",
}


def flax_to_torch_name(flax_key: str) -> str:
  """``batch_stats/layer1_0/downsample_1/mean`` -> ``layer1.0.downsample.1.running_mean``."""
  parts = flax_key.split("/")[1:]
  modules = [re.sub(r"_(\d+)$", r".\1", p) for p in parts[:-1]]
  return ".".join(modules + [_TORCH_PARAM_NAMES.get(parts[-1], parts[-1])])


def torchvision_to_flax(
  state_dict: Mapping[str, np.ndarray], depth: Optional[int] = None, path: str = "<state_dict>"
) -> Dict[str, np.ndarray]:
  """Maps a torchvision ResNet state_dict onto the flat Flax tree of ``ResNet(depth, 'logits')``.

  Returns float32 arrays under ``params/...`` and ``batch_stats/...`` keys plus ``meta/*``.
  Raises ``CheckpointError`` naming ``path`` and the key on unexpected, missing or
  mis-shaped entries.
  """
  inferred = infer_depth(state_dict, path)
  if depth is not None and depth != inferred:
    raise CheckpointError(
      f"{path}: expected a ResNet-{depth} (--depth or config.model."
      f"trunk_options.depth) but the file holds a ResNet-{inferred}"
    )
  depth = inferred
  num_classes = int(state_dict["fc.weight"].shape[0]) if "fc.weight" in state_dict else 1000
  expected = flatten_variables(resnet.resnet_variable_shapes(depth, "logits", num_classes))
  out: Dict[str, np.ndarray] = {}
  unexpected = []
  for key, value in state_dict.items():
    if key.endswith("num_batches_tracked"):
      continue
    target = _flax_key(key, expected)
    if target is None:
      unexpected.append(key)
      continue
    flax_key, op = target
    value = np.asarray(value, np.float32)
    if op == "conv" and value.ndim == 4:
      value = value.transpose(2, 3, 1, 0)
    elif op == "fc" and value.ndim == 2:
      value = value.T
    want = tuple(expected[flax_key].shape)
    if value.shape != want:
      raise CheckpointError(
        f"{path}: {key!r} -> {flax_key!r}: shape {tuple(value.shape)} after "
        f"conversion, expected {want} for ResNet-{depth}"
      )
    out[flax_key] = np.ascontiguousarray(value)
  if unexpected:
    raise CheckpointError(
      f"{path}: unexpected keys for a torchvision ResNet-{depth}: "
      f"{sorted(unexpected)[:10]}{' ...' if len(unexpected) > 10 else ''}"
    )
  missing = sorted(flax_to_torch_name(k) for k in set(expected) - set(out))
  if missing:
    raise CheckpointError(
      f"{path}: missing keys for a torchvision ResNet-{depth}: "
      f"{missing[:10]}{' ...' if len(missing) > 10 else ''}"
    )
  out[META_DEPTH] = np.asarray(depth, np.int64)
  out[META_NUM_CLASSES] = np.asarray(num_classes, np.int64)
  return out


def load_flax_resnet_weights(path: str, depth: Optional[int] = None) -> Dict[str, np.ndarray]:
  """Flat Flax weights from a converted ``.npz``, or converted on the fly from a checkpoint."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"backbone weights file not found: {path}")
  if zipfile.is_zipfile(path) and _is_npz(path):
    flat = read_npz(path)
    if any(k.startswith("params/") for k in flat):
      if META_DEPTH in flat and depth is not None and int(flat[META_DEPTH]) != depth:
        raise CheckpointError(
          f"{path}: holds a converted ResNet-{int(flat[META_DEPTH])}, expected ResNet-{depth}"
        )
      return flat
  return torchvision_to_flax(read_state_dict(path), depth, path)


def convert(checkpoint: str, output: str, depth: Optional[int] = None) -> Dict[str, np.ndarray]:
  """Reads ``checkpoint``, converts it and writes the flat ``.npz`` to ``output``."""
  flat = torchvision_to_flax(read_state_dict(checkpoint), depth, checkpoint)
  out_dir = os.path.dirname(os.path.abspath(output))
  os.makedirs(out_dir, exist_ok=True)
  tmp = output + ".tmp"
  with open(tmp, "wb") as f:  # a file handle keeps np.savez from appending '.npz'
    np.savez(f, **flat)
  os.replace(tmp, output)
  return flat


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(
    prog="python -m lac_jax.models.convert",
    description="Convert a torchvision ResNet-18/34/50 checkpoint to lac_jax Flax weights.",
  )
  parser.add_argument(
    "--checkpoint",
    required=True,
    help="torchvision state_dict: .pth (zip format), .safetensors or .npz",
  )
  parser.add_argument(
    "--output", required=True, help="output .npz for config.model.backbone_weights"
  )
  parser.add_argument(
    "--depth",
    type=int,
    choices=sorted(resnet.RESNET_SPECS),
    default=None,
    help="expected ResNet depth (default: inferred from the file)",
  )
  args = parser.parse_args(argv)
  try:
    flat = convert(args.checkpoint, args.output, args.depth)
  except (CheckpointError, FileNotFoundError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  n = sum(v.size for k, v in flat.items() if k.startswith("params/"))
  print(
    f"wrote {args.output}: ResNet-{int(flat[META_DEPTH])}, {n:,} parameters, "
    f"{sum(k.startswith('batch_stats/') for k in flat)} BN statistics arrays"
  )
  return 0


if __name__ == "__main__":
  sys.exit(main())
