"""Tests for what accelerator-scale runs rely on: the memory plan (`lac_jax.memory` and
`train.fit_train_step`) and training with the augmentation on the device."""

import json
import os

import jax
import numpy as np
import pytest

from lac_jax import config as config_lib
from lac_jax import distributed
from lac_jax import memory
from lac_jax import train
from lac_jax.data import pipeline
import tiny

# One worker runs this module (pytest-xdist): its module fixtures then run once.
pytestmark = pytest.mark.xdist_group("accelerator")


class _Stats:
  def __init__(self, argument, output, temp, alias):
    self.argument_size_in_bytes, self.output_size_in_bytes = argument, output
    self.temp_size_in_bytes, self.alias_size_in_bytes = temp, alias


class _Compiled:
  def __init__(self, nbytes):
    self.stats = _Stats(100, 10, nbytes - 110 + 5, 5)

  def memory_analysis(self):
    return self.stats


def test_candidates_and_footprint():
  assert memory.candidates(256) == [
    (0, False),
    (128, True),
    (64, True),
    (32, True),
    (16, True),
    (8, True),
    (4, True),
    (2, True),
    (1, True),
  ]
  assert memory.candidates(1) == [(0, False)]
  assert memory.footprint(_Compiled(1000)) == 1000


def test_fit_takes_the_first_setting_that_fits():
  # A footprint that shrinks with the chunk: 1000 for the whole trunk, 10 per frame chunked.
  compiled = []

  def compile_step(chunk, remat):
    compiled.append((chunk, remat))
    return _Compiled(1000 if chunk == 0 else 100 + 10 * chunk)

  lines = []
  plan, step = memory.fit(compile_step, 64, budget=500, log=lines.append)
  assert (plan.chunk, plan.remat, plan.bytes) == (32, True, 420)
  assert compiled == [(0, False), (32, True)]  # stops at the first that fits
  assert step.memory_analysis().temp_size_in_bytes == 420 - 110 + 5
  assert "chunks of 32 frames, rematerialised" in lines[0] and "too large: whole" in lines[0]
  plan, _ = memory.fit(compile_step, 64, budget=2000, log=lines.append)
  assert plan.chunk == 0 and not plan.remat
  with pytest.raises(MemoryError, match=r"at least 110 B|memory_budget_gb"):
    memory.fit(compile_step, 64, budget=50, log=lines.append)


def test_device_budget():
  assert memory.device_budget(2.5) == (int(2.5 * memory.GIB), "config.model.memory_budget_gb")
  budget, source = memory.device_budget(0.0)
  cpu = jax.local_devices()[0]
  if not (cpu.memory_stats() or {}).get("bytes_limit"):  # CPU: a share of physical memory
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert budget == int(memory.CPU_FRACTION * physical) and "host" in source
  assert memory.size(3 * memory.GIB) == "3.00 GiB" and memory.size(5 << 20) == "5.0 MiB"


def test_pipeline_leaves_the_augmentation_to_the_device():
  from lac_jax import data as data_lib  # pylint: disable=g-import-not-at-top

  config = tiny.get_config()
  videos = data_lib.load_videos("synthetic", None, "train", synthetic_config=config.data.synthetic)
  host = next(
    pipeline.train_iterator(videos, config.data, seed=0, process_index=0, process_count=1)
  )
  dev = next(
    pipeline.train_iterator(
      videos, config.data, seed=0, process_index=0, process_count=1, device_augment=True
    )
  )
  np.testing.assert_array_equal(host["steps"], dev["steps"])  # same sampling
  np.testing.assert_array_equal(dev["slot"], np.arange(4))
  assert "source_hw" not in host and dev["source_hw"].tolist() == [[16, 16]] * 4
  video = videos[int(dev["video_index"][0])]
  np.testing.assert_array_equal(dev["frames"][0, 0], video.frames[dev["steps"][0, 0]])
  assert not np.array_equal(host["frames"], dev["frames"])  # the host augmented its copy


@pytest.fixture(scope="module")
def device_runs(tmp_path_factory):
  """The tiny config with the augmentation on the device and a chunked, rematerialised trunk
  (as the memory plan picks it; set here, so no other setting is compiled): (A) 3 steps; (B)
  stopped after step 1, resumed to 3."""
  root = tmp_path_factory.mktemp("accelerator")
  config = tiny.get_config()
  config.data.augment.where = "device"
  config.model.trunk_chunk, config.model.trunk_remat = 16, True
  train.train_and_evaluate(config, str(root / "A"))
  config.train.stop_at_step = 1
  train.train_and_evaluate(config, str(root / "B"))
  config.train.stop_at_step = 0
  train.train_and_evaluate(config, str(root / "B"))
  return root


def _state(workdir):
  return tiny.flat(tiny.read_checkpoint(workdir)[0])


def test_device_augmentation_and_chunked_trunk_train_and_resume(device_runs):
  a, b = _state(device_runs / "A"), _state(device_runs / "B")
  assert a.keys() == b.keys() and int(a["/step"]) == 3
  for k in a:  # the augmentation keys depend on (seed, step, slot, view) only
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  with open(device_runs / "A" / "metrics.jsonl") as f:
    rows = [json.loads(line) for line in f]
  assert all(np.isfinite(r["train/loss"]) for r in rows if "train/loss" in r)


def test_fit_train_step_picks_a_chunk_under_a_small_budget(monkeypatch):
  config = config_lib.prepare_config(tiny.get_config())
  model, _ = train.build_models(config)
  state = train.create_train_state(config, model, jax.random.PRNGKey(0), 8, 3)
  from lac_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from lac_jax import losses  # pylint: disable=g-import-not-at-top

  videos = data_lib.load_videos("synthetic", None, "train", synthetic_config=config.data.synthetic)
  batch = distributed.shard_batch(next(pipeline.train_iterator(videos, config.data, seed=0)), 1)
  config.model.memory_budget_gb = 6.5 / 1024  # the whole trunk takes ~9.7 MiB here
  lines = []
  monkeypatch.setattr(
    memory.logging,
    "info",  # the log lines, the choice's among them
    lambda msg, *args: lines.append(msg % args if args else msg),
  )
  step, p_state, plan = train.fit_train_step(
    config,
    losses.build(config.loss),
    None,
    distributed.replicate(state),
    batch,
    jax.random.PRNGKey(1),
  )
  monkeypatch.undo()
  assert plan.chunk > 0 and plan.remat and plan.bytes <= 6.5 / 1024 * memory.GIB
  assert p_state.apply_fn.__self__.trunk_chunk == plan.chunk  # the model that was compiled
  choice = [line for line in lines if line.startswith("Memory: ")]
  assert "too large: whole trunk" in choice[0] and f"chunks of {plan.chunk}" in choice[0]
  new_state, metrics = step(p_state, batch, jax.random.PRNGKey(1))  # the compiled step runs
  assert np.isfinite(float(metrics["train/loss"][0])) and int(new_state.step[0]) == 1
