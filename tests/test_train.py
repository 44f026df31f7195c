"""Tests for lac_jax.train / main / checkpoint / logs / preemption on the tiny config
(tests/tiny.py: ResNet-18 cut at conv2a, no transformer layer, 16x16 frames, 4 frames per view,
4 videos per step).

The training runs happen in subprocesses (module fixtures), so that JAX's device count can be
forced before import; the session's compilation cache (conftest.py) serves every run the same
programs:
  * one CPU device: (A) 4 steps uninterrupted, (B) the same stopped after step 2 and resumed,
    (C) 50 steps with evaluation before and after, and one step on non-finite gap penalties;
  * four forced CPU devices, through ``python -m lac_jax.main`` with config overrides: (D) the
    same 4 steps as (A) with the same global batch;
  * the same in one process started through ``jax.distributed`` (D'), whose cross-device means
    then go through gloo as E's do (see `test_two_processes_equal_one_process_and_resume`);
  * two processes x two forced CPU devices on localhost: (E) the same 4 steps, preempted (SIGTERM
    to process 1 only) after step 3 and resumed.
The tests then read the checkpoints, metrics and evaluation files those runs wrote. The runs
compare numbers across device layouts, so they compile with XLA's full optimisation.
"""

import json
import os
import signal
import time

import numpy as np
import pytest

import launched
import tiny

from lac_jax import checkpoint
from lac_jax import config as config_lib
from lac_jax import distributed
from lac_jax import logs
from lac_jax import optim
from lac_jax import train

TINY = launched.TINY

# One worker runs this module (pytest-xdist): its module fixtures then run once.
pytestmark = pytest.mark.xdist_group("train")

# Runs A, B, C and the non-finite step on one CPU device; writes results.json.
ONE_DEVICE_SCRIPT = """
import importlib.util, json, sys
import jax, numpy as np
spec = importlib.util.spec_from_file_location("tiny", sys.argv[1])
tiny = importlib.util.module_from_spec(spec); spec.loader.exec_module(tiny)
from lac_jax import config as config_lib
from lac_jax import distributed
from lac_jax import optim
from lac_jax import train
root = sys.argv[2]
assert jax.device_count() == 1, jax.devices()

cfg = tiny.get_config(); cfg.train.num_steps = 4
train.train_and_evaluate(cfg, root + "/A")

cfg.train.stop_at_step = 2
stopped = train.train_and_evaluate(cfg, root + "/B")
cfg.train.stop_at_step = 0
train.train_and_evaluate(cfg, root + "/B")

cfg = tiny.get_config()
cfg.train.num_steps = 50
cfg.train.checkpoint_every_steps = 0
cfg.train.eval_at_start = cfg.train.eval_at_end = True
train.train_and_evaluate(cfg, root + "/C")

# One step with NaN gap penalties: reported, not applied. The step is built as run A built it
# (same program, so the compilation cache serves it).
cfg = config_lib.prepare_config(tiny.get_config()); cfg.train.num_steps = 4
model, _ = train.build_models(cfg)
from lac_jax import losses
loss = losses.build(cfg.loss)
state = train.create_train_state(cfg, model, jax.random.PRNGKey(0), 8, 4, loss=loss)
state = state.replace(params={**state.params, "gap": {
    k: v.at[0, 0].set(np.nan) for k, v in state.params["gap"].items()}})
from lac_jax import data as data_lib
from lac_jax.data import pipeline

videos = data_lib.load_videos("synthetic", None, "train", synthetic_config=cfg.data.synthetic)
batch = distributed.shard_batch(next(pipeline.train_iterator(videos, cfg.data, seed=0)), 1)
rng = jax.random.PRNGKey(1)
p_step, p_state, _ = train.fit_train_step(
    cfg, loss, optim.learning_rate_schedule(cfg, cfg.train.learning_rate, 8, 4),
    distributed.replicate(state), batch, rng)
new, metrics = p_step(p_state, batch, rng)
new = distributed.unreplicate(new)
same = jax.tree.map(lambda a, b: bool(np.array_equal(np.asarray(a), np.asarray(b),
                                                       equal_nan=True)),
                    (state.params, state.opt_state, state.batch_stats),
                    (new.params, new.opt_state, new.batch_stats))
json.dump({"stopped_step": int(stopped.step), "nonfinite_unchanged": all(jax.tree.leaves(same)),
           "nonfinite_steps": int(new.nonfinite_steps), "step": int(new.step),
           "finite": float(metrics["train/finite"][0]), "loss": float(metrics["train/loss"][0])},
          open(root + "/results.json", "w"))
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  return tmp_path_factory.mktemp("train")


@pytest.fixture(scope="module")
def one_device(root):
  script = root / "one_device.py"
  script.write_text(ONE_DEVICE_SCRIPT)
  proc = launched.run([script, TINY, root], optimize=True)
  assert proc.returncode == 0, proc.stderr[-6000:]
  with open(root / "results.json") as f:
    return json.load(f), proc.stderr


@pytest.fixture(scope="module")
def four_devices(root):
  """Run D through main.py: 4 forced CPU devices, num_steps overridden 3 -> 4."""
  proc = launched.run(
    [
      "-m",
      "lac_jax.main",
      f"--config={TINY}",
      f"--workdir={root / 'D'}",
      "--config.train.num_steps=4",
    ],
    devices=4,
    optimize=True,
  )
  assert proc.returncode == 0, proc.stderr[-6000:]
  return proc.stderr


def test_four_devices_equal_one_device(root, one_device, four_devices):
  assert "4 device(s) (4 local" in four_devices
  one, steps_one = tiny.read_checkpoint(root / "A")
  four, steps_four = tiny.read_checkpoint(root / "D")
  assert steps_one == steps_four == [2, 4]  # checkpoint every 2 steps; the override gave 4
  a = tiny.flat({k: one[k] for k in ("params", "batch_stats", "step")})
  b = tiny.flat({k: four[k] for k in ("params", "batch_stats", "step")})
  assert a.keys() == b.keys()
  # Same maths, different float summation order (per-device partial sums, then a mean over
  # devices). After 4 Adam steps of lr 1e-3 the largest difference is ~1e-6 (measured); a
  # missing gradient or BN mean over devices gives >1e-3.
  worst = max(np.max(np.abs(a[k] - b[k])) for k in a)
  assert worst < 2e-5, worst
  # The runs really trained: parameters moved from their step-2 values.
  two, _ = tiny.read_checkpoint(root / "A", 2)
  moved = max(
    np.max(np.abs(x - y))
    for x, y in zip(tiny.flat(one["params"]).values(), tiny.flat(two["params"]).values())
  )
  assert moved > 1e-4


@pytest.fixture(scope="module")
def two_processes(root):
  """Run E: 2 processes x 2 CPU devices on localhost, the same 4 steps as D (1 process x 4
  devices). Process 1 alone gets SIGTERM while the processes pause after step 1
  (`tiny.pause_after`); both stop after step 3 (they read the summed flags one step late), save
  and exit 0. The same command then resumes, with an evaluation at the end."""
  args = [f"--config={TINY}", f"--workdir={root / 'E'}", "--config.train.num_steps=4"]
  markers = root / "E_markers"
  markers.mkdir()
  procs = launched.launch(
    args,
    root / "E1",
    processes=2,
    devices=2,
    optimize=True,
    LAC_TEST_PAUSE_AT=1,
    LAC_TEST_MARKERS=markers,
    LAC_TEST_SIGNALS=1,
  )
  launched.wait_for_file(markers / "paused.p1", procs)
  procs[1][0].send_signal(signal.SIGTERM)
  first = launched.wait_all(procs)
  steps_after_first = tiny.read_checkpoint(root / "E")[1]
  metrics_after_first = [r["step"] for r in logs.read_metrics(root / "E")]
  second = launched.wait_all(
    launched.launch(
      args + ["--config.train.eval_at_end=True"], root / "E2", processes=2, devices=2, optimize=True
    )
  )
  return first, second, steps_after_first, metrics_after_first


@pytest.fixture(scope="module")
def four_devices_gloo(root):
  """Run D': D's 4 steps in 1 process x 4 CPU devices, started as E's processes are (through
  ``jax.distributed``, here with one process), so that its cross-device means go through gloo as
  E's do. The programs are D's (the collectives are the runtime's): when D ran first, D' loads
  them from the compilation cache. A checkpoint every step, for E's preempted step."""
  codes, outputs = launched.wait_all(
    launched.launch(
      [
        f"--config={TINY}",
        f"--workdir={root / 'D_gloo'}",
        "--config.train.num_steps=4",
        "--config.train.checkpoint_every_steps=1",
      ],
      root / "D_gloo",
      devices=4,
      distributed=True,
      optimize=True,
    )
  )
  assert codes == [0], outputs[0][-3000:]
  assert "4 device(s) (4 local, cpu), 1 process(es)" in outputs[0]
  return outputs[0]


def test_two_processes_equal_one_process_and_resume(root, four_devices_gloo, two_processes):
  """E (2 processes x 2 devices, preempted after step 3 and resumed) equals D' (1 x 4) bit for
  bit, and the preemption took effect on every process at the same step.

  Why D' and not D: the per-device computation is the same bits whatever the process layout
  (measured: step-1 gradients and BatchNorm statistics of every device, without cross-device means,
  are equal bit for bit in a 4-device and a 2-device process: neither the devices per process nor
  XLA:CPU's threading change them), and D' runs D's very programs (it finds them all in D's
  compilation cache). What differs between D and E is the all-reduce of ``lax.pmean``: in one
  process XLA adds the 4 devices left to right; with gloo (several processes) the ring all-reduce
  adds them in an order rotated per chunk. That alone is float noise (step 1: BN batch means 1e-7
  apart, gradients 1.2e-6 relative, as between A and D), but a batch can hold a max-pool near-tie,
  and then it is not. Measured with the tiny model as it was before its transformer layer was
  dropped: in a step-2 frame whose red channel is saturated flat (248), two stem outputs of one
  3x3 pooling window (video 3, channel 60) are equal to the last bit with D's rounding of the BN
  statistics (1.0610204 and 1.0610204) and not with E's (1.0610203 and 1.0610201), so the pooling
  sends that window's gradient to another position: conv1's kernel gradient on that device moves by
  2e-2 (9.6e-3 after the mean), and Adam and the BN statistics carry it to 4.2e-6 of the state after
  step 2 and 1.31e-4 after step 4: D vs E failed a 1e-5 bound on every machine. A discontinuity,
  not a rounding error, so no bound follows from float precision (today's tiny model happens to
  have no such tie in these 4 steps: D vs D' 4.4e-7). D' has gloo's summation order too (the same
  4 ranks), and D' vs E is 0, whatever the model and data; the plain in-process run D is checked
  against A instead (`test_four_devices_equal_one_device`).

  The bound is therefore exact equality of every saved value (params, optimiser state, BN
  statistics, counters), at step 3 (E's first run) and step 4 (after its resume). Measured
  mistakes (the earlier tiny model), 2 x 2 runs of 4 steps against D' (relative difference over
  the params and BN statistics, then the largest difference): the step's means (gradients,
  metrics, BN running statistics) over local devices only 3.2e-2 and 0.17; BN batch statistics
  over local devices only 4.8e-2 and 0.35; process 1 fed process 0's batch 5.1e-2 and 0.40 (after
  step 2 already 1.4e-2, 2.3e-2 and 2.8e-2).
  """
  first, second, steps_after_first, metrics_after_first = two_processes
  for codes, outputs in (first, second):
    assert codes == [0, 0], "\n\n".join(o[-3000:] for o in outputs)
  first, second = first[1], second[1]
  assert "4 device(s) (2 local, cpu), 2 process(es)" in first[0]
  # Only process 1 was signalled; both stopped after the same step, saved once and exited 0.
  assert "received: finishing this step" in first[1]
  assert "received: finishing this step" not in first[0]
  for out in first:
    assert "preempted at step 3: checkpoint saved" in out and "Stopped at step" not in out
  assert steps_after_first == [2, 3] and metrics_after_first == [1, 2, 3]
  assert "Resuming from step 3 of 4" in second[0] and "Resuming from step 3 of 4" in second[1]
  assert [r["step"] for r in logs.read_metrics(root / "E") if "train/loss" in r] == [1, 2, 3, 4]
  # Both processes evaluated (no one waits at a barrier); only process 0 wrote and printed.
  assert "LAC evaluation (synthetic" in second[0] and "LAC evaluation" not in second[1]
  assert "Evaluation at step 4" in second[1]
  assert os.path.exists(root / "E" / "eval" / "eval_step4.json")
  _, steps_multi = tiny.read_checkpoint(root / "E")
  _, steps_single = tiny.read_checkpoint(root / "D_gloo")
  assert steps_multi == [2, 3, 4] and {3, 4} <= set(steps_single)
  for step in (3, 4):  # E's preempted run; after its resume
    a = tiny.flat(tiny.read_checkpoint(root / "E", step)[0])
    b = tiny.flat(tiny.read_checkpoint(root / "D_gloo", step)[0])
    assert a.keys() == b.keys() and {"/step", "/nonfinite_steps"} <= a.keys()
    differ = [k for k in a if not np.array_equal(a[k], b[k])]
    relative = np.sqrt(
      sum(np.sum((a[k].astype(np.float64) - b[k]) ** 2) for k in a)
      / sum(np.sum(b[k].astype(np.float64) ** 2) for k in a)
    )
    assert not differ, (step, relative, differ[:5])


def test_a_failing_process_ends_the_others(root, tmp_path):
  """Process 1 fails at start-up (its weights file does not exist): process 0, already waiting
  for it, stops within seconds with process 1's message instead of waiting minutes."""
  args = [f"--config={TINY}", f"--workdir={tmp_path / 'w'}", "--config.train.num_steps=50"]
  start = time.monotonic()
  codes, outputs = launched.wait_all(
    launched.launch(
      args,
      tmp_path / "fail",
      devices=2,
      per_process=[(), ("--config.model.backbone_weights=/no/such/weights.npz",)],
    ),
    timeout=200,
  )
  assert codes[1] == 1 and "lac_jax.main: error: config.model.backbone_weights" in outputs[1]
  assert codes[0] != 0, outputs[0][-3000:]
  assert "lac_jax: error: process 1: FileNotFoundError: config.model.backbone_weights" in outputs[0]
  assert time.monotonic() - start < 120


def test_a_killed_process_ends_the_others(root, tmp_path):
  """Process 1 is killed mid-run: process 0 stops after the heartbeat timeout (5 s here)."""
  args = [
    f"--config={TINY}",
    f"--workdir={tmp_path / 'w'}",
    "--config.train.num_steps=100000",
    "--heartbeat_timeout_s=5",
  ]
  procs = launched.launch(args, tmp_path / "kill", processes=2, devices=2, optimize=True)
  deadline = time.monotonic() + 200
  while "step 1/" not in open(f"{tmp_path / 'kill'}.p0.log").read():
    assert time.monotonic() < deadline and procs[0][0].poll() is None, "no training step"
    time.sleep(0.5)
  procs[1][0].kill()
  killed = time.monotonic()
  codes, outputs = launched.wait_all(procs, timeout=120)
  assert codes[0] != 0
  # Either a collective fails at once (gloo sees the closed connection) or the heartbeats stop.
  assert (
    "another process stopped or was lost" in outputs[0]
    or "detected fatal errors" in outputs[0]
    and "unhealthy" in outputs[0]
  ), outputs[0][-3000:]
  assert time.monotonic() - killed < 60


def test_resume_equals_uninterrupted(root, one_device):
  results, _ = one_device
  assert results["stopped_step"] == 2
  a, steps_a = tiny.read_checkpoint(root / "A")
  b, steps_b = tiny.read_checkpoint(root / "B")
  assert steps_a == steps_b == [2, 4]
  fa, fb = tiny.flat(a), tiny.flat(b)
  assert fa.keys() == fb.keys()
  for k in fa:  # same seed, same data per step, same dropout keys: bit-identical on CPU
    np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)
  rows = logs.read_metrics(root / "B")
  assert [r["step"] for r in rows] == [1, 2, 3, 4]  # the resumed run appended steps 3, 4


def test_training_saves_its_config_for_the_tools(root, one_device, four_devices):
  want = tiny.get_config()
  want.train.num_steps = 4
  for run in ("A", "D"):  # train_and_evaluate, and main.py with a --config override
    saved = checkpoint.read_config(str(root / run), config_lib.base_config())
    assert saved.to_dict() == want.to_dict()


def test_loss_falls_and_evaluation_table(root, one_device):
  rows = [r for r in logs.read_metrics(root / "C") if "train/loss" in r]
  losses = np.array([r["train/loss"] for r in rows])
  assert len(losses) == 50 and np.all(np.isfinite(losses))
  first, last = losses[:10].mean(), losses[-10:].mean()
  assert last < first - 0.05, (first, last)
  assert all(r["train/finite"] == 1.0 for r in rows)
  with open(root / "C" / "eval" / "summary.json") as f:
    summary = json.load(f)
  assert list(summary["rows"]) == ["untrained (step 0)", "trained (step 50)"]
  for row in summary["rows"].values():
    assert set(row) >= {"class_50", "class_100", "ap_5", "progress", "tau"}
  assert os.path.exists(root / "C" / "eval" / "eval_step0.json")
  assert os.path.exists(root / "C" / "eval" / "eval_step50.json")


def test_nonfinite_step_is_skipped(one_device):
  results, _ = one_device
  assert results["finite"] == 0.0 and not np.isfinite(results["loss"])
  assert results["nonfinite_unchanged"]  # params, optimiser state, BN statistics kept
  assert results["nonfinite_steps"] == 1 and results["step"] == 1


def test_nonfinite_report_stops_or_counts():
  config = config_lib.base_config()
  row = {"train/loss": float("nan"), "train/l_c": 1.5}
  config.train.on_nonfinite = "stop"
  with pytest.raises(FloatingPointError, match=r"step 7: .*l_c=1\.5.*loss=nan"):
    train._report_nonfinite(7, row, 1, config)
  config.train.on_nonfinite = "skip"
  config.train.max_nonfinite_steps = 2
  train._report_nonfinite(7, row, 2, config)  # logged, no error
  with pytest.raises(FloatingPointError, match="max_nonfinite_steps=2"):
    train._report_nonfinite(8, row, 3, config)


@pytest.mark.parametrize(
  "section, field, value, message",
  [
    ("train", "optimizer", "sgd", r"config\.train\.optimizer: expected one of"),
    ("train", "schedule", "linear", r"config\.train\.schedule"),
    ("train", "learning_rate", -1.0, r"config\.train\.learning_rate: need a finite value > 0"),
    ("train", "log_every_steps", 0, r"config\.train\.log_every_steps: need an int >= 1"),
    ("loss", "gamma", 0.0, r"loss\.gamma"),
    ("loss", "gap_lr", float("nan"), r"loss\.gap_lr: need a finite value >= 0"),
    ("data", "image_size", 0, r"config\.data\.image_size: need an int >= 1, got 0"),
    ("data", "batch_size", 0, r"config\.data\.batch_size: need an int >= 1"),
  ],
)
def test_bad_config_values(section, field, value, message):
  config = config_lib.base_config()
  config[section][field] = value
  with pytest.raises(ValueError, match=message):
    config_lib.check_config(config)


def test_unknown_and_missing_config_fields():
  config = config_lib.base_config()
  with config.train.unlocked():
    config.train.lerning_rate = 1.0
  with pytest.raises(ValueError, match=r"config\.train: unknown fields \['lerning_rate'\]"):
    config_lib.check_config(config)
  config = config_lib.base_config()
  with config.data.sampling.unlocked():
    config.data.sampling.frames = 3
  with pytest.raises(ValueError, match=r"config\.data\.sampling: unknown fields"):
    config_lib.check_config(config)
  config = config_lib.base_config()
  del config["eval"]
  with pytest.raises(ValueError, match=r"missing \['eval'\]"):
    config_lib.check_config(config)
  config = config_lib.base_config()
  config.data.sampling.num_frames = 5
  config.model.num_context = 2
  with pytest.raises(ValueError, match="divide by config.model.num_context"):
    config_lib.check_config(config)


def test_workdir_that_is_a_file(tmp_path):
  path = tmp_path / "not_a_dir"
  path.write_text("x")
  with pytest.raises(NotADirectoryError, match="is a file, expected a directory"):
    train.train_and_evaluate(config_lib.base_config(), str(path))
  with pytest.raises(NotADirectoryError, match="is a file"):
    checkpoint.check_workdir(str(path / "sub"))


def test_learning_rate_schedules():
  config = config_lib.base_config()
  config.data.batch_size = 2
  config.train.num_epochs = 4
  lr = optim.learning_rate_schedule(config, 1e-4, num_videos=6, total_steps=12)
  # Official: lr0 (1 + cos(pi e / (E + 1))) / 2 for epoch e = floor(step * B / N), 3 steps/epoch.
  for step in range(12):
    e = step * 2 // 6
    np.testing.assert_allclose(float(lr(step)), 1e-4 * 0.5 * (1 + np.cos(np.pi * e / 5)), rtol=1e-6)
  config.train.schedule = "cosine"
  config.train.warmup_steps = 2
  lr = optim.learning_rate_schedule(config, 1.0, 6, 12)
  np.testing.assert_allclose(
    [float(lr(s)) for s in (0, 1, 2, 7, 12)], [0.0, 0.5, 1.0, 0.5, 0.0], atol=1e-6
  )


def test_optimizer_matches_torch_adam_l2_and_clipping():
  """One step of the encoder group equals NumPy Adam with clipped grad + L2 (torch's order)."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  config = config_lib.base_config()
  config.train.schedule = "constant"
  config.train.grad_clip_norm = 1.0
  config.train.weight_decay = 0.1
  tx = optim.make_optimizer(config, 10, 10)
  params = {"encoder": {"w": jnp.array([1.0, -2.0])}, "gap": {"g": jnp.array([0.5])}}
  grads = {"encoder": {"w": jnp.array([3.0, 4.0])}, "gap": {"g": jnp.array([30.0])}}
  updates, _ = tx.update(grads, tx.init(params), params)
  g = np.array([3.0, 4.0]) / 5.0 + 0.1 * np.array([1.0, -2.0])  # clip to norm 1, then L2
  m, v = 0.1 * g, 0.001 * g * g
  expected = -1e-4 * (m / 0.1) / (np.sqrt(v / 0.001) + 1e-8)
  np.testing.assert_allclose(np.asarray(updates["encoder"]["w"]), expected, rtol=1e-5)
  g_gap = 30.0 + 1e-5 * 0.5  # not clipped; the gap group's own L2
  np.testing.assert_allclose(
    np.asarray(updates["gap"]["g"]), [-0.1 * g_gap / (abs(g_gap) + 1e-8)], rtol=1e-5
  )


def test_main_rejects_unknown_override_and_file_workdir(tmp_path):
  proc = launched.run(
    [
      "-m",
      "lac_jax.main",
      f"--config={TINY}",
      f"--workdir={tmp_path / 'w'}",
      "--config.train.no_such_field=1",
    ],
    timeout=120,
  )
  assert proc.returncode != 0
  assert "no_such_field" in proc.stderr
  assert not (tmp_path / "w").exists()
  afile = tmp_path / "file"
  afile.write_text("x")
  proc = launched.run(
    ["-m", "lac_jax.main", f"--config={TINY}", f"--workdir={afile}", "--config.loss.gamma=0.7"],
    timeout=120,
  )
  assert proc.returncode == 1
  # One line naming the problem, no traceback (--debug shows it).
  assert (
    "lac_jax.main: error: --workdir" in proc.stderr
    and "is a file, expected a directory" in proc.stderr
  )
  assert "Traceback" not in proc.stderr
  proc = launched.run(
    [
      "-m",
      "lac_jax.main",
      f"--config={TINY}",
      f"--workdir={afile}",
      "--config.train.learning_rate=-1",
      "--debug",
    ],
    timeout=120,
  )
  assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_global_batch_must_divide_by_devices(tmp_path):
  proc = launched.run(
    [
      "-m",
      "lac_jax.main",
      f"--config={TINY}",
      f"--workdir={tmp_path / 'w'}",
      "--config.data.batch_size=6",
    ],
    devices=4,
    timeout=120,
  )
  assert proc.returncode != 0
  assert (
    "config.data.batch_size=6" in proc.stderr
    and "multiple of the number of devices, 4" in proc.stderr
  )


def test_progress_and_metric_writer(tmp_path):
  writer = logs.MetricWriter(str(tmp_path), tensorboard=True, enabled=True)
  writer.write_scalars(3, {"train/loss": np.float32(1.5), "eval/tau": float("nan")})
  writer.close()
  rows = logs.read_metrics(str(tmp_path))
  assert rows[0]["step"] == 3 and rows[0]["train/loss"] == 1.5 and np.isnan(rows[0]["eval/tau"])
  assert os.listdir(tmp_path / logs.TENSORBOARD_DIR)  # event file written
  assert logs.mean_metrics([{"a": 1.0}, {"a": 3.0, "b": 2.0}]) == {"a": 2.0, "b": 2.0}
  assert logs.format_duration(3725) == "1h02m05s" and logs.format_duration(95) == "1m35s"
  progress = logs.Progress(0, 100)
  timing = progress.update(10)
  line = progress.line(10, {"train/loss": 2.0}, timing, ("train/loss",))
  assert line.startswith("step 10/100 | ") and "loss 2" in line and "ETA" in line


def _config_file(name, *args):
  import importlib.util  # pylint: disable=g-import-not-at-top

  spec = importlib.util.spec_from_file_location(f"cfg_{name}", os.path.join(launched.REPO, name))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(*args)


def _train_in_process(config, steps):
  """(initial state, state after ``steps`` steps) on one device."""
  import jax  # pylint: disable=g-import-not-at-top
  from lac_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from lac_jax.data import pipeline  # pylint: disable=g-import-not-at-top

  videos = data_lib.load_videos("synthetic", None, "train", synthetic_config=config.data.synthetic)
  model, _ = train.build_models(config)
  state = train.create_train_state(config, model, jax.random.PRNGKey(0), len(videos), steps)
  from lac_jax import losses  # pylint: disable=g-import-not-at-top

  p_step = train.make_parallel_train_step(
    losses.build(config.loss), fixed_trunk_stats=config.model.backbone_mode != "train"
  )
  p_state = distributed.replicate(state)
  with pipeline.train_iterator(videos, config.data, seed=0, process_index=0, process_count=1) as it:
    for _ in range(steps):
      p_state, metrics = p_step(
        p_state, distributed.shard_batch(next(it), 1), jax.random.PRNGKey(1)
      )
      assert float(metrics["train/finite"][0]) == 1.0
  return jax.device_get(state), jax.device_get(distributed.unreplicate(p_state))


def _size(tree):
  import jax  # pylint: disable=g-import-not-at-top

  return sum(np.size(x) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("mode", ["frozen", "bn_frozen"])
def test_frozen_trunk_is_never_touched(mode, fast_compile):
  config = tiny.get_config()
  config.model.backbone_mode = mode
  config.train.weight_decay = 1e-2  # Would move every trunk weight if the optimiser saw them.
  before, after = _train_in_process(config, 3)
  same = lambda a, b: all(
    np.array_equal(x, y) for x, y in zip(tiny.flat(a).values(), tiny.flat(b).values())
  )
  trunk = optim.TRUNK
  assert same(before.batch_stats[trunk], after.batch_stats[trunk])  # BN on running statistics
  assert not same(before.params["encoder"]["output"], after.params["encoder"]["output"])
  if mode == "frozen":
    assert same(before.params["encoder"][trunk], after.params["encoder"][trunk])
    # No Adam moments for the trunk: the optimiser state holds two per trained parameter.
    trained = _size(before.params) - _size(before.params["encoder"][trunk])
    assert 2 * trained <= _size(after.opt_state) <= 2 * trained + 16
  else:  # bn_frozen: the trunk's weights train, its BatchNorm statistics stay.
    assert not same(before.params["encoder"][trunk], after.params["encoder"][trunk])


def test_drop_last_step_count_and_schedule():
  config = config_lib.base_config()
  config.data.batch_size, config.train.num_epochs = 2, 4
  assert optim.num_train_steps(config, 7) == 14  # ceil(4 * 7 / 2): batches straddle epochs
  config.data.drop_last = True
  assert optim.num_train_steps(config, 7) == 12  # 4 epochs x 3 whole batches
  lr = optim.learning_rate_schedule(config, 1.0, num_videos=7, total_steps=12)
  for step in range(12):
    np.testing.assert_allclose(
      float(lr(step)), 0.5 * (1 + np.cos(np.pi * (step // 3) / 5)), rtol=1e-6
    )


@pytest.mark.parametrize("name", ["configs/pouring.py", "configs/penn_action.py"])
def test_paper_configs_stop_without_imagenet_weights(name, tmp_path):
  config = _config_file(name)
  config.data.data_dir = str(tmp_path / "no_data_here")
  with pytest.raises(
    ValueError,
    match=r"^config.model.backbone_weights is unset.*"
    r"lac_jax.models.convert.*backbone_weights=random",
  ):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  config.model.backbone_weights = str(tmp_path / "missing.npz")
  with pytest.raises(FileNotFoundError, match="missing.npz"):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  # The explicit opt-out gets past the check: now the (absent) data is the error.
  config.model.backbone_weights = "random"
  with pytest.raises((ValueError, FileNotFoundError), match="no_data_here") as info:
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert "backbone_weights" not in str(info.value)


def test_official_code_preset_turns_on_every_official_switch():
  paper = _config_file("configs/pouring.py")
  official = _config_file("configs/pouring.py", "official_code")
  switches = {
    "model.attention_axis": ("time", "batch"),
    "model.eval_normalize": (True, False),
    "data.drop_last": (False, True),
    "data.augment.blur_per_jitter_op": (False, True),
    "model.l2_normalize": (True, False),
    "model.bn_mask_padding": (True, False),
    "model.pe_official_cos": (False, True),
    "loss.sw_similarity": ("inverse_distance", "inverse_squared_distance"),
    "loss.honour_masks": (True, False),
  }
  get = lambda c, path: eval("c." + path)  # pylint: disable=eval-used
  for path, (want_paper, want_official) in switches.items():
    assert (get(paper, path), get(official, path)) == (want_paper, want_official), path
  config_lib.check_config(official)
