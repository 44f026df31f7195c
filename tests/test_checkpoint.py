"""Damaged checkpoints (lac_jax.checkpoint.Checkpoints): flipped bytes and truncated files are
detected (checksums, read errors), reported by name, moved aside, and the newest intact
checkpoint is restored; a tree from another config is still refused as such; checkpoints written
before checksums still restore. In process, on a small pytree: no training."""

import logging
import os
import re
import sys
import types

import numpy as np
import orbax.checkpoint as ocp
import pytest

from lac_jax import checkpoint


def _state(step: int, rows: int = 64) -> dict:
  """A small training-state-like tree; random values, so that orbax's compression leaves the
  data files about as large as the arrays (a few flipped bytes then land inside an array)."""
  rng = np.random.default_rng(step)
  return {
    "params": {
      "w": rng.standard_normal((rows, 128)).astype(np.float32),
      "b": rng.standard_normal((128,)).astype(np.float32),
    },
    "opt_state": {"mu": {"w": rng.standard_normal((rows, 128)).astype(np.float32)}, "empty": {}},
    "nonfinite_steps": np.int32(step),
    "step": step,
  }


def _save(directory: str, steps=(1, 2, 3)) -> None:
  with checkpoint.Checkpoints(directory, keep=None) as ckpts:
    for step in steps:
      ckpts.save(step, _state(step))


def _data_file(directory: str, step: int) -> str:
  """The largest file of step ``step``'s state item (its array data)."""
  found = []
  for root, _, names in os.walk(os.path.join(directory, str(step), checkpoint.STATE_ITEM)):
    found += [os.path.join(root, name) for name in names]
  return max(found, key=os.path.getsize)


def _damage(directory: str, step: int, how: str) -> None:
  path = _data_file(directory, step)
  data = bytearray(open(path, "rb").read())
  if how == "flip":  # 400 bytes in the middle of the array data
    middle = len(data) // 2
    data[middle : middle + 400] = bytes(b ^ 0xFF for b in data[middle : middle + 400])
  else:
    data = data[: len(data) // 2]
  with open(path, "wb") as f:
    f.write(bytes(data))


def _assert_equal(got: dict, want: dict) -> None:
  flatten = checkpoint._flatten  # pylint: disable=protected-access
  flat_got, flat_want = flatten(got), flatten(want)
  assert sorted(flat_got) == sorted(flat_want)
  for path, value in flat_want.items():
    np.testing.assert_array_equal(np.asarray(flat_got[path]), value)


@pytest.mark.parametrize(
  "how,reason",
  [("flip", "array .* differs from its saved checksum"), ("truncate", "cannot be read")],
)
def test_damaged_newest_falls_back_to_the_newest_intact(tmp_path, caplog, how, reason):
  directory = str(tmp_path / "checkpoints")
  _save(directory)
  _damage(directory, 3, how)
  with checkpoint.Checkpoints(directory, keep=None) as ckpts, caplog.at_level(logging.WARNING):
    restored = ckpts.restore(_state(0))
    _assert_equal(restored, _state(2))  # the older step's values, exactly
    assert f"Checkpoint {directory}/3 is damaged: " in caplog.text
    assert any(
      r.levelno == logging.WARNING and re.search(reason, r.getMessage()) for r in caplog.records
    )
    # Moved aside: orbax no longer lists it, so that the run can save step 3 again.
    assert ckpts.all_steps() == [1, 2]
    assert os.listdir(os.path.join(directory, checkpoint.DAMAGED_DIR)) == ["3"]
    ckpts.save(3, _state(30))
    ckpts.wait()
    assert ckpts.all_steps() == [1, 2, 3]
  with checkpoint.Checkpoints(directory, keep=None) as ckpts:
    _assert_equal(ckpts.restore(_state(0)), _state(30))
    # The same step damaged again: a second name under damaged/.
    _damage(directory, 3, how)
    _assert_equal(ckpts.restore(_state(0)), _state(2))
    assert sorted(os.listdir(os.path.join(directory, checkpoint.DAMAGED_DIR))) == ["3", "3-1"]


def test_tools_read_the_newest_intact_and_move_nothing(tmp_path, caplog):
  directory = str(tmp_path / "checkpoints")
  _save(directory)
  _damage(directory, 3, "flip")
  with checkpoint.Checkpoints(directory, keep=None) as ckpts, caplog.at_level(logging.WARNING):
    step, raw = ckpts.read()
    assert step == 2
    np.testing.assert_array_equal(raw["params"]["w"], _state(2)["params"]["w"])
    assert ckpts.all_steps() == [1, 2, 3]  # read-only: nothing moved
    # An explicit step is never replaced by another.
    with pytest.raises(ValueError, match=r"checkpoints/3 is damaged: array .*w differs"):
      ckpts.read(3)
    with pytest.raises(ValueError, match=r"checkpoints/3 is damaged"):
      ckpts.restore(_state(0), 3)
    assert ckpts.all_steps() == [1, 2, 3]


def test_no_intact_checkpoint_is_a_one_line_error(tmp_path):
  directory = str(tmp_path / "checkpoints")
  _save(directory, steps=(1, 2))
  _damage(directory, 2, "flip")
  _damage(directory, 1, "truncate")
  with checkpoint.Checkpoints(directory, keep=None) as ckpts:
    with pytest.raises(ValueError, match="No intact checkpoint in .*checkpoints") as error:
      ckpts.restore(_state(0))
    message = str(error.value)
    assert "\n" not in message
    assert f"{directory}/2: array" in message and f"{directory}/1: it cannot be read" in message
    assert ckpts.all_steps() == [1, 2]  # left in place for the user to look at


def test_a_tree_of_another_config_is_not_called_damaged(tmp_path):
  directory = str(tmp_path / "checkpoints")
  _save(directory, steps=(1, 2))
  _damage(directory, 2, "truncate")  # not even read: the metadata already differs
  with checkpoint.Checkpoints(directory, keep=None) as ckpts:
    for template, what in [
      (
        _state(0, rows=32),
        r"/w has shape \[64, 128\] in the "
        r"checkpoint, \[32, 128\] in the config's",
      ),
      ({**_state(0), "extra": np.zeros(3)}, "has extra .*, the checkpoint"),
      ({"params": _state(0)["params"]}, "the checkpoint has nonfinite"),
    ]:
      with pytest.raises(ValueError, match="another model/loss/data config.*" + what):
        ckpts.restore(template)
    assert ckpts.all_steps() == [1, 2]


def test_checkpoints_without_checksums_still_restore(tmp_path, caplog):
  """Written as lac_jax did before checksums: one unnamed StandardSave item."""
  directory = str(tmp_path / "checkpoints")
  manager = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(create=True))
  for step in (1, 2):
    manager.save(step, args=ocp.args.StandardSave(_state(step)))
  manager.wait_until_finished()
  manager.close()
  with checkpoint.Checkpoints(directory, keep=None) as ckpts, caplog.at_level(logging.WARNING):
    _assert_equal(ckpts.restore(_state(0)), _state(2))
    assert "has no checksums" in caplog.text
    # A read error is still caught, and the run goes on from the older one.
    _damage(directory, 2, "truncate")
    _assert_equal(ckpts.restore(_state(0)), _state(1))
    ckpts.save(2, _state(20))  # the new format, next to the old
    ckpts.wait()
    _assert_equal(ckpts.restore(_state(0)), _state(20))
    assert os.path.isdir(os.path.join(directory, "2", checkpoint.CHECKSUMS_ITEM))


def test_another_dtype_is_verified_then_cast(tmp_path):
  """A trained state's step is saved as an int32 array, a new state's is a Python int: the
  checksums are of the saved bytes, and the template's types come back, as orbax casts them."""
  directory = str(tmp_path / "checkpoints")
  with checkpoint.Checkpoints(directory, keep=None) as ckpts:
    ckpts.save(5, {**_state(5), "step": np.asarray(5, np.int32)})
    ckpts.wait()
    template = {**_state(0), "nonfinite_steps": np.zeros((), np.float64)}
    restored = ckpts.restore(template)
    assert isinstance(restored["step"], int) and restored["step"] == 5  # a Python int again
    assert restored["nonfinite_steps"].dtype == np.float64 and restored["nonfinite_steps"] == 5
    np.testing.assert_array_equal(restored["params"]["w"], _state(5)["params"]["w"])


def test_closed_loop_reports_after_a_failed_read_are_dropped(monkeypatch):
  """After a failed read, tensorstore's other reads of the restore report "Event loop is
  closed" as unraisable exceptions (dozens of tracebacks on stderr): only those are dropped."""
  seen = []
  monkeypatch.setattr(sys, "unraisablehook", seen.append)
  checkpoint._quiet_closed_loop_reports()  # pylint: disable=protected-access
  checkpoint._quiet_closed_loop_reports()  # (once only)  pylint: disable=protected-access
  sys.unraisablehook(types.SimpleNamespace(exc_value=RuntimeError("Event loop is closed")))
  other = types.SimpleNamespace(exc_value=RuntimeError("something else"))
  sys.unraisablehook(other)
  assert seen == [other]
