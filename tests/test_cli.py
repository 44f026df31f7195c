"""What a user sees on the command line: one-line errors (a mistyped config override, a missing
config file, a full disk or a folder it may not write too) and a progress line with an ETA from
the first interval when the step was compiled ahead of time."""

import errno
import os
import subprocess
import sys
import time

import pytest

from lac_jax import cli
from lac_jax import files
from lac_jax import logs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_mistyped_override_is_one_line_with_the_suggestion(tmp_path):
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "lac_jax.main",
      "--config=configs/synthetic.py",
      f"--workdir={tmp_path}",
      "--config.train.num_stepz=3",
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  assert result.returncode == 1
  assert "Traceback" not in result.stderr
  lines = [l for l in result.stderr.splitlines() if l.strip()]
  assert lines == [
    "lac_jax.main: error: --config.train.num_stepz: the config has no field "
    '\'num_stepz\'; Did you mean "num_steps" instead of "num_stepz"?'
  ]


def test_progress_eta_from_the_first_interval_after_an_ahead_of_time_compile():
  fresh = logs.Progress(0, 100)
  assert fresh.update(10)["eta_sec"] == float("inf")  # the first interval includes compiling
  progress = logs.Progress(0, 100)
  progress.restart(compiled=True)
  time.sleep(0.01)
  timing = progress.update(10)
  assert 0 < timing["eta_sec"] < float("inf") and not timing["includes_compile"]
  assert "ETA ?" not in progress.line(10, {}, timing)


def test_a_missing_config_file_is_one_line(tmp_path):
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "lac_jax.main",
      "--config=configs/nope.py",
      f"--workdir={tmp_path / 'w'}",
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  assert result.returncode == 1 and not (tmp_path / "w").exists()
  assert result.stderr.strip().splitlines() == [
    "lac_jax.main: error: --config=configs/nope.py: no such file (a Python file with "
    "get_config(), e.g. configs/synthetic.py)"
  ]


def test_storage_errors_name_the_path():
  enospc = OSError(errno.ENOSPC, "No space left on device", "/runs/a/config.json")
  assert cli.storage_error(enospc) == "/runs/a/config.json: no space left on device"
  try:  # as orbax re-raises its background thread's error
    try:
      raise enospc
    except OSError as e:
      raise RuntimeError("Save Finalize thread (save_finalize) failed") from e
  except RuntimeError as e:
    assert cli.storage_error(e) == "/runs/a/config.json: no space left on device"
  denied = PermissionError(errno.EACCES, "Permission denied", "/out")
  assert cli.storage_error(denied) == "/out: permission denied"
  assert cli.storage_error(OSError(errno.EDQUOT, "Disk quota exceeded", "/q")) == (
    "/q: disk quota exceeded"
  )
  tensorstore = ValueError(
    'RESOURCE_EXHAUSTED: Error writing "params/0" in OCDBT database at local file "/runs/a/'
    'checkpoints/2.orbax-checkpoint-tmp/default.orbax-checkpoint-tmp/ocdbt.process_0/": '
    "Failed to write 365746 bytes to file 11: No space left on device [os_error_code='28']"
  )
  assert cli.storage_error(tensorstore) == "/runs/a/checkpoints/2: no space left on device"
  assert cli.storage_error(ValueError("config.seed: expected an int")) is None
  assert cli.storage_error(FileNotFoundError(errno.ENOENT, "No such file", "/x")) is None
  try:  # a user error that already says what it is keeps its own message
    try:
      raise denied
    except OSError:
      raise ValueError("--labels=x.json: not a readable JSON file") from None
  except ValueError as e:
    assert cli.storage_error(e) is None


def test_a_full_disk_while_training_starts_is_one_line(tmp_path, monkeypatch, capsys):
  def full(workdir, config):  # the config write (the first file a run writes) meets a full disk
    raise OSError(errno.ENOSPC, "No space left on device", os.path.join(workdir, "config.json"))

  from lac_jax import checkpoint, train  # pylint: disable=g-import-not-at-top
  import tiny  # pylint: disable=g-import-not-at-top

  monkeypatch.setattr(checkpoint, "write_config", full)
  monkeypatch.setattr(sys, "argv", ["lac_jax.main"])
  with pytest.raises(SystemExit) as info:
    cli.run("main", lambda argv: train.train_and_evaluate(tiny.get_config(), str(tmp_path)))
  assert info.value.code == 1
  assert capsys.readouterr().err.strip().splitlines() == [
    f"lac_jax.main: error: {tmp_path / 'config.json'}: no space left on device"
  ]


def test_an_output_folder_without_write_permission_is_named(tmp_path, monkeypatch, capsys):
  def denied(*args, **kwargs):
    raise PermissionError(
      errno.EACCES, "Permission denied", os.path.join(kwargs["dir"], ".tmp_x.123.json")
    )

  monkeypatch.setattr(files.tempfile, "mkstemp", denied)  # (root may write anywhere)
  monkeypatch.setattr(sys, "argv", ["lac_jax.embed"])
  with pytest.raises(SystemExit) as info:
    cli.run("embed", lambda argv: files.write_json(str(tmp_path / "out" / "x.json"), {}))
  assert info.value.code == 1
  assert capsys.readouterr().err.strip().splitlines() == [
    f"lac_jax.embed: error: {tmp_path / 'out'}: permission denied"
  ]
