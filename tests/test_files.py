"""Tests for lac_jax.files: atomic writes and strict JSON."""

import json
import os
import stat

import numpy as np
import pytest

from lac_jax import files


def test_json_is_strict_and_keeps_long_lists_on_one_line(tmp_path):
  path = tmp_path / "x" / "r.json"
  files.write_json(
    str(path),
    {
      "a": float("nan"),
      "b": np.float32(1.5),
      "c": (1, np.int64(2)),
      "pairs": np.array([[0, 1], [2, 3]]),
      "d": {"e": [np.bool_(True)]},
    },
    one_line=("pairs",),
  )
  text = path.read_text()
  assert json.loads(text) == {
    "a": None,
    "b": 1.5,
    "c": [1, 2],
    "pairs": [[0, 1], [2, 3]],
    "d": {"e": [True]},
  }
  assert '  "pairs": [[0, 1], [2, 3]],\n' in text


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
  target = tmp_path / "out.npy"
  with pytest.raises(RuntimeError):
    with files.atomic_path(str(target)) as tmp:
      with open(tmp, "wb") as f:
        f.write(b"half")
      raise RuntimeError("crash while writing")
  assert os.listdir(tmp_path) == []
  old = os.umask(0o022)
  try:
    files.save_npy(str(target), np.arange(3.0))
  finally:
    os.umask(old)
  np.testing.assert_array_equal(np.load(target), np.arange(3.0))
  assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
  assert os.listdir(tmp_path) == ["out.npy"]
