"""Tests for lac_jax.models.convert: the torch-free readers, the mapping's errors and the CLI."""

import collections
import json
import struct
import sys
import types

import ml_dtypes
import numpy as np
import pytest

from lac_jax.models import convert
from lac_jax.models import resnet


def import_torch():
  """torch (test extra, requirements-test.txt): the reference for the .pth reader."""
  sys.modules.setdefault(
    "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
  )
  import torch  # pylint: disable=g-import-not-at-top

  return torch


def torchvision_like_state_dict(depth=18, seed=0):
  """Random arrays under the torch names of ResNet-``depth`` (via the Flax tree, inverted)."""
  rng = np.random.default_rng(seed)
  out = {}
  for key, spec in convert.flatten_variables(
    resnet.resnet_variable_shapes(depth, "logits")
  ).items():
    shape = spec.shape
    if len(shape) == 4:
      shape = (shape[3], shape[2], shape[0], shape[1])  # (kh, kw, I, O) -> (O, I, kh, kw).
    elif len(shape) == 2:
      shape = shape[::-1]
    out[convert.flax_to_torch_name(key)] = rng.standard_normal(shape).astype(np.float32)
  out["bn1.num_batches_tracked"] = np.array(3, np.int64)
  return out


def test_pth_reader_equals_torch_load(tmp_path):
  torch = import_torch()
  torch.manual_seed(0)
  base = torch.arange(24, dtype=torch.float32)
  state = collections.OrderedDict(
    f32=torch.randn(3, 4),
    f16=torch.randn(5).half(),
    bf16=torch.randn(2, 3).bfloat16(),
    f64=torch.randn(2).double(),
    i64=torch.arange(-3, 4, dtype=torch.int64),
    i32=torch.tensor([1, -2], dtype=torch.int32),
    u8=torch.tensor([0, 255], dtype=torch.uint8),
    flags=torch.tensor([True, False]),
    scalar=torch.tensor(2.5),
    empty=torch.zeros(0, 3),
    transposed=torch.randn(3, 5).t(),  # Non-contiguous.
    strided=torch.randn(4, 6)[::2, 1::2],
    view_a=base[3:9],  # Views sharing one storage.
    view_b=base.view(4, 6)[:, 2],
    param=torch.nn.Parameter(torch.randn(2, 2)),
  )
  path = str(tmp_path / "fixture.pth")
  torch.save(state, path)
  ours = convert.read_pth(path)
  ref = torch.load(path, weights_only=True)
  assert list(ours) == list(ref)
  for k, v in ref.items():
    expected = v.detach().float().numpy() if v.dtype == torch.bfloat16 else v.detach().numpy()
    got = ours[k].astype(np.float32) if ours[k].dtype == ml_dtypes.bfloat16 else ours[k]
    assert got.dtype == expected.dtype, k
    assert got.shape == expected.shape, k
    np.testing.assert_array_equal(got, expected, err_msg=k)
  assert ours["bf16"].dtype == ml_dtypes.bfloat16


def test_pth_wrappers_prefix_and_legacy_format(tmp_path):
  torch = import_torch()
  sd = {"conv1.weight": torch.randn(2, 3), "bn1.running_var": torch.rand(2)}
  wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in sd.items()}}
  torch.save(wrapped, tmp_path / "wrapped.pth")
  out = convert.read_state_dict(str(tmp_path / "wrapped.pth"))
  assert sorted(out) == sorted(sd)
  np.testing.assert_array_equal(out["conv1.weight"], sd["conv1.weight"].numpy())
  torch.save({"model": sd}, tmp_path / "model.pth")
  assert sorted(convert.read_state_dict(str(tmp_path / "model.pth"))) == sorted(sd)

  legacy = str(tmp_path / "legacy.pth")
  torch.save(sd, legacy, _use_new_zipfile_serialization=False)
  with pytest.raises(convert.CheckpointError, match="legacy.pth.*legacy.*re-save"):
    convert.read_state_dict(legacy)


def test_pth_reader_refuses_other_classes(tmp_path):
  torch = import_torch()
  torch.save({"w": torch.ones(2), "fn": collections.Counter(a=1)}, tmp_path / "evil.pth")
  with pytest.raises(
    convert.CheckpointError, match="evil.pth.*refusing to unpickle collections.Counter"
  ):
    convert.read_pth(str(tmp_path / "evil.pth"))


def write_safetensors(path, tensors, dtypes):
  """Writes the safetensors layout by hand: u64 header size, JSON header, raw data."""
  header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
  for name, arr in tensors.items():
    raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
    header[name] = {
      "dtype": dtypes[name],
      "shape": list(arr.shape),
      "data_offsets": [offset, offset + len(raw)],
    }
    chunks.append(raw)
    offset += len(raw)
  blob = json.dumps(header).encode()
  blob += b" " * (-len(blob) % 8)
  with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(blob)) + blob + b"".join(chunks))


def test_safetensors_and_npz_readers(tmp_path):
  rng = np.random.default_rng(0)
  tensors = {
    "a": rng.standard_normal((2, 3)).astype(np.float32),
    "b": rng.standard_normal(4).astype(np.float16),
    "c": np.arange(5, dtype=np.int64),
    "d": rng.standard_normal(3).astype(ml_dtypes.bfloat16),
    "e": np.zeros((0, 2), np.float32),
  }
  dtypes = {"a": "F32", "b": "F16", "c": "I64", "d": "BF16", "e": "F32"}
  path = str(tmp_path / "w.safetensors")
  write_safetensors(path, tensors, dtypes)
  out = convert.read_safetensors(path)
  assert sorted(out) == sorted(tensors)
  for k, v in tensors.items():
    assert out[k].dtype == v.dtype and out[k].shape == v.shape, k
    np.testing.assert_array_equal(out[k].astype(np.float64), v.astype(np.float64))
  assert sorted(convert.read_state_dict(path)) == sorted(tensors)  # Format sniffed.

  np.savez(tmp_path / "w.npz", **{"module.x": tensors["a"], "module.y": tensors["c"]})
  out = convert.read_state_dict(str(tmp_path / "w.npz"))
  assert sorted(out) == ["x", "y"]
  np.testing.assert_array_equal(out["x"], tensors["a"])

  # A header that points past the data is an error naming the file and tensor.
  bad = str(tmp_path / "bad.safetensors")
  write_safetensors(bad, {"a": tensors["a"]}, {"a": "F32"})
  with open(bad, "r+b") as f:
    f.truncate(f.seek(0, 2) - 4)
  with pytest.raises(convert.CheckpointError, match="bad.safetensors.*'a'.*data_offsets"):
    convert.read_safetensors(bad)


def test_unreadable_and_missing_files(tmp_path):
  junk = tmp_path / "junk.bin"
  junk.write_bytes(b"this is not a checkpoint")
  with pytest.raises(convert.CheckpointError, match="junk.bin.*not a torch zip"):
    convert.read_state_dict(str(junk))
  with pytest.raises(FileNotFoundError, match="absent.pth"):
    convert.read_state_dict(str(tmp_path / "absent.pth"))


def test_mapping_errors_name_the_key(tmp_path):
  sd = torchvision_like_state_dict(18)
  flat = convert.torchvision_to_flax(sd, depth=18, path="r18.pth")
  assert int(flat[convert.META_DEPTH]) == 18
  np.testing.assert_array_equal(
    flat["params/layer2_0/downsample_0/kernel"],
    sd["layer2.0.downsample.0.weight"].transpose(2, 3, 1, 0),
  )

  missing = dict(sd)
  missing.pop("layer1.1.bn2.running_mean")
  with pytest.raises(
    convert.CheckpointError,
    match=r"r18.pth: missing keys.*layer1\.1\.bn2\."
    "running_mean",
  ):
    convert.torchvision_to_flax(missing, path="r18.pth")
  extra = dict(sd, **{"head.weight": np.zeros(3, np.float32)})
  with pytest.raises(convert.CheckpointError, match="unexpected keys.*head.weight"):
    convert.torchvision_to_flax(extra, path="r18.pth")
  bad = dict(sd, **{"conv1.weight": np.zeros((64, 3, 5, 5), np.float32)})
  with pytest.raises(
    convert.CheckpointError,
    match=r"r18.pth: 'conv1.weight'.*\(5, 5, 3, 64\).*"
    r"\(7, 7, 3, 64\)",
  ):
    convert.torchvision_to_flax(bad, path="r18.pth")
  with pytest.raises(convert.CheckpointError, match="expected a ResNet-50.*holds a ResNet-18"):
    convert.torchvision_to_flax(sd, depth=50, path="r18.pth")


def test_cli_writes_npz_that_loads(tmp_path, capsys):
  sd = torchvision_like_state_dict(18, seed=1)
  src = str(tmp_path / "r18_state.npz")
  np.savez(src, **sd)
  out = str(tmp_path / "converted" / "r18_flax")  # No .npz suffix: written as given.
  assert convert.main([f"--checkpoint={src}", f"--output={out}", "--depth=18"]) == 0
  assert "ResNet-18" in capsys.readouterr().out
  flat = convert.load_flax_resnet_weights(out, depth=18)
  expected = convert.torchvision_to_flax(sd)
  assert sorted(flat) == sorted(expected)
  for k in expected:
    np.testing.assert_array_equal(flat[k], expected[k])
  # The same function converts a raw checkpoint on the fly.
  np.testing.assert_array_equal(
    convert.load_flax_resnet_weights(src)["params/fc/kernel"], expected["params/fc/kernel"]
  )
  assert convert.main([f"--checkpoint={tmp_path / 'none.pth'}", f"--output={out}"]) == 1
  assert "none.pth" in capsys.readouterr().err
