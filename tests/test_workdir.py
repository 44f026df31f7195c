"""lac_jax.workdir: one run at a time per workdir, the config changes a resumed run may make, and
metrics.jsonl cut back to the resumed step. In-process and compile-free: a "checkpoint" here is
the step folder orbax leaves, which is all the resume check looks at."""

import errno
import json
import os
import re
import signal
import subprocess
import sys
import types

import numpy as np
import pytest

import launched
import tiny

from lac_jax import checkpoint
from lac_jax import config as config_lib
from lac_jax import logs
from lac_jax import train
from lac_jax import workdir

HOLD = """
import sys
from lac_jax import workdir
with workdir.locked(sys.argv[1], "train"):
  print("held", flush=True)
  sys.stdin.read()
"""


def test_a_locked_workdir_refuses_a_second_run_until_its_holder_dies(tmp_path):
  run_dir = str(tmp_path / "run")
  holder = subprocess.Popen(
    [sys.executable, "-c", HOLD, run_dir],
    cwd=launched.REPO,
    env=launched.env(),
    stdin=subprocess.PIPE,
    stdout=subprocess.PIPE,
    text=True,
  )
  try:
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(
      ValueError,
      match=rf"^--workdir {run_dir} is in use by pid {holder.pid} "
      r"on host \S+ \(--mode=train, started \d{4}-.*\): wait until it ends",
    ):
      train.train_and_evaluate(tiny.get_config(), run_dir)
    assert os.listdir(run_dir) == [workdir.LOCK_FILE]  # nothing written: no config.json
    with pytest.raises(ValueError, match="in use by pid"):
      train.evaluate_checkpoint(tiny.get_config(), run_dir)
  finally:
    holder.send_signal(signal.SIGKILL)  # dies holding it: the OS releases the flock
    holder.wait()
  lock = os.path.join(run_dir, workdir.LOCK_FILE)
  assert json.load(open(lock))["pid"] == holder.pid  # its record stays behind...
  with workdir.locked(run_dir, "eval"):  # ...and is taken over
    assert json.load(open(lock))["pid"] == os.getpid()
  assert open(lock).read() == ""  # released cleanly


def test_only_process_0_of_a_run_locks(tmp_path, monkeypatch):
  with workdir.locked(str(tmp_path), "train"):
    monkeypatch.setattr(workdir, "_process_index", lambda: 1)
    with workdir.locked(str(tmp_path), "train"):  # another process of the same run
      pass


def _saved_run(path, step=2):
  """A workdir as training leaves it at ``step``: config.json and a checkpoint folder."""
  config = train.prepare_config(tiny.tiny_train_config())
  checkpoint.write_config(str(path), config)
  os.makedirs(path / checkpoint.CHECKPOINT_DIR / str(step))
  os.makedirs(path / checkpoint.CHECKPOINT_DIR / f"{step + 1}.orbax-checkpoint-tmp")  # unfinished
  return config


@pytest.mark.parametrize(
  "field, value, diff",
  [
    ("loss.gamma", 0.5, "loss.gamma: 0.8 -> 0.5"),
    ("model.output_dim", 16, "model.output_dim: 8 -> 16"),
    ("seed", 3, "seed: 0 -> 3"),
    ("data.batch_size", 8, "data.batch_size: 4 -> 8"),
    ("train.optimizer", "adamw", 'train.optimizer: "adam_l2" -> "adamw"'),
    ("train.grad_clip_norm", 0.0, "train.grad_clip_norm: 10.0 -> 0.0"),
  ],
)
def test_resuming_with_a_changed_model_loss_data_or_seed_is_refused(tmp_path, field, value, diff):
  _saved_run(tmp_path)
  before = (tmp_path / checkpoint.CONFIG_FILE).read_bytes()
  config = tiny.tiny_train_config()
  section, _, name = field.rpartition(".")
  (config[section] if section else config)[name] = value
  config.train.learning_rate = 5e-4  # an accepted change does not hide a refused one
  with pytest.raises(
    ValueError,
    match=rf"holds a checkpoint \(step 2\) of another config: "
    rf"{re.escape(diff)}\. A resumed run may change train",
  ):
    train.train_and_evaluate(config, str(tmp_path))
  assert (tmp_path / checkpoint.CONFIG_FILE).read_bytes() == before
  assert not (tmp_path / workdir.HISTORY_FILE).exists()


def test_resuming_with_changed_training_settings_records_them(tmp_path):
  saved = _saved_run(tmp_path)
  config = saved.copy_and_resolve_references()
  config.train.learning_rate, config.train.num_steps = 5e-4, 6
  config.data.data_dir = "/moved/data"
  config.model.backbone_weights = "random"  # only read when a run starts: ignored
  workdir.record_config(str(tmp_path), config)
  workdir.record_config(str(tmp_path), config)  # the same again: nothing new to record
  with open(tmp_path / workdir.HISTORY_FILE) as f:
    history = json.load(f)["config_history"]
  assert [h["step"] for h in history] == [2]
  assert history[0]["changes"] == {
    "data.data_dir": {"old": "", "new": "/moved/data"},
    "train.learning_rate": {"old": 1e-3, "new": 5e-4},
    "train.num_steps": {"old": 3, "new": 6},
  }
  now = checkpoint.read_config(str(tmp_path), config_lib.saved_config_template)
  assert now.train.learning_rate == 5e-4 and now.train.num_steps == 6
  assert now.model.backbone_weights is None and now.model.to_dict() == saved.model.to_dict()
  # A fresh start (no checkpoint) has no earlier changes.
  os.rename(tmp_path / checkpoint.CHECKPOINT_DIR, tmp_path / "old")
  workdir.record_config(str(tmp_path), saved)
  assert not (tmp_path / workdir.HISTORY_FILE).exists()


def test_resumed_metrics_drop_the_redone_steps(tmp_path):
  writer = logs.MetricWriter(str(tmp_path), tensorboard=False, enabled=True)
  for step in (0, 1, 2, 3, 4):
    writer.write_scalars(step, {"train/loss": float(step)})
  with open(writer.path, "a") as f:
    f.write('{"step": 5, "train/lo')  # killed mid-write
  writer.truncate(2)
  assert [r["step"] for r in logs.read_metrics(str(tmp_path))] == [0, 1, 2]
  writer.truncate(2)  # nothing to drop: the file stays
  writer.write_scalars(3, {"train/loss": 3.0})
  assert [r["step"] for r in logs.read_metrics(str(tmp_path))] == [0, 1, 2, 3]
  assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp")]


def test_a_full_disk_is_named_before_a_checkpoint_and_by_the_metric_writer(tmp_path, monkeypatch):
  monkeypatch.setattr(workdir.shutil, "disk_usage", lambda _: types.SimpleNamespace(free=10))
  with pytest.raises(OSError) as info:
    workdir.check_free_space(str(tmp_path / "checkpoints"), {"w": np.zeros(8)})
  assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "checkpoints")
  writer = logs.MetricWriter(str(tmp_path), tensorboard=False, enabled=True)
  writer.path = "/dev/full"  # every write there fails with ENOSPC, without a file name
  with pytest.raises(OSError) as info:
    writer.write_scalars(1, {"train/loss": 1.0})
  assert info.value.errno == errno.ENOSPC and info.value.filename == "/dev/full"
