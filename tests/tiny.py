"""Small model configs shared by the tests (fast to compile on 2 CPU cores), and the config file
of the tests' training subprocesses (``python -m lac_jax.main --config=tests/tiny.py``)."""

import os

from lac_jax.models import encoder


def tiny_encoder_config(**overrides):
  """ResNet-18 cut at layer1 ([N, 8, 8, 64] at 32 px) with a narrow head."""
  c = encoder.default_config()
  c.trunk_options.depth = 18
  c.trunk_options.cut = "layer1"
  c.context_width = 16
  c.context_padding = "same"
  c.mlp_sizes = (16,)
  c.embed_dim = 16
  c.num_heads = 4
  c.ffn_dim = 32
  c.output_dim = 8
  c.pe_positions = "arange"
  for k, v in overrides.items():
    if k in c.trunk_options:  # e.g. cut="conv2a"
      c.trunk_options[k] = v
    else:
      c[k] = v
  return c


def tiny_train_config(dataset: str = "synthetic", data_dir: str = "", **train_overrides):
  """A whole training config that compiles and runs in seconds: ResNet-18 cut at conv2a
  ([N, 4, 4, 64] at 16 px), 16 px frames, 4 frames per view, 4 videos per step, 3 steps,
  evaluation at the end. No dropout and every frame sampled, so 1 and 4 devices do the same
  maths. Every test that trains uses it, so the programs compile once per session (the
  session's compilation cache: conftest.py).

  No transformer layer, and XLA's own convolution gradients (``conv_grad='xla'``): together
  they take 40% off the train step's compile time, which dominates every training test. These
  tests check the trainer; the transformer in train mode and the CPU's matmul convolution
  gradients are checked against references in test_encoder.py and test_conv.py."""
  from lac_jax import config as config_lib  # pylint: disable=g-import-not-at-top

  c = config_lib.base_config()
  c.seed = 0
  m = c.model
  m.trunk_options.depth, m.trunk_options.cut = 18, "conv2a"
  m.context_width, m.context_layers = 8, 1
  m.context_padding, m.mlp_sizes, m.embed_dim, m.num_heads = "same", (16,), 16, 2
  m.ffn_dim, m.num_layers, m.output_dim = 16, 0, 8
  m.conv_grad = "xla"  # (CPU's default: "matmul", slower to compile)
  m.mlp_dropout = m.pe_dropout = m.transformer_dropout = 0.0  # same maths on 1 and 4 devices
  d = c.data
  d.dataset, d.data_dir = dataset, data_dir
  d.batch_size, d.image_size, d.num_workers = 4, 16, 0
  d.sampling.num_frames = 4
  d.sampling.sampling_region = 1.0  # no padded steps (BN statistics then split exactly)
  s = d.synthetic
  s.num_train, s.num_val, s.min_frames, s.max_frames, s.height, s.width = 8, 4, 20, 32, 16, 16
  c.eval.tau_stride = c.eval.retrieval_stride = c.eval.cycle_stride = 2
  c.eval.retrieval_ks = (5,)
  c.eval.fractions = (0.5, 1.0)
  t = c.train
  t.num_steps, t.learning_rate, t.schedule = 3, 1e-3, "constant"
  # Parameters whose exact gradient is 0 (the conv bias before BatchNorm) get float-noise
  # gradients (~1e-9) that Adam with eps 1e-8 turns into +-lr steps, differently on 1 and 4
  # devices; eps 1e-4 keeps the comparison about the maths.
  t.adam_eps = 1e-4
  t.log_every_steps, t.checkpoint_every_steps, t.tensorboard = 1, 2, False
  for k, v in train_overrides.items():
    t[k] = v
  return c


def get_config():
  """``--config=tests/tiny.py``: `tiny_train_config` without the final evaluation. With
  ``LAC_TEST_PAUSE_AT`` set, every process pauses after logging that step (`pause_after`)."""
  if os.environ.get("LAC_TEST_PAUSE_AT"):
    pause_after(
      int(os.environ["LAC_TEST_PAUSE_AT"]),
      os.environ["LAC_TEST_MARKERS"],
      int(os.environ.get("LAC_TEST_SIGNALS", "1")),
    )
  return tiny_train_config(eval_at_end=False)


def pause_after(at: int, markers: str, signals: int) -> None:
  """Makes every process of a run wait after writing step ``at``'s metrics, so that a test can
  signal it "mid-run" without timing: each process touches ``markers/paused.p<rank>`` and waits
  until its own `preemption.StopRequest` has seen ``signals`` signals (it then touches
  ``markers/released``) or another process released it. With one process the run then stops
  after step ``at + 1`` (it reads its own flag there); with several after ``at + 2`` (each
  reads the processes' summed flags one step late)."""
  import time  # pylint: disable=g-import-not-at-top
  from lac_jax import logs, preemption  # pylint: disable=g-import-not-at-top

  if getattr(logs.MetricWriter, "_test_pause", False):
    return
  original = logs.MetricWriter.write_scalars

  def write_scalars(self, step, scalars):
    original(self, step, scalars)
    if step != at:
      return
    import jax  # pylint: disable=g-import-not-at-top

    open(os.path.join(markers, f"paused.p{jax.process_index()}"), "w").close()
    release = os.path.join(markers, "released")
    deadline = time.monotonic() + 300
    while not os.path.exists(release):
      request = preemption.active()
      if request is not None and request.count >= signals:
        open(release, "w").close()
        break
      if time.monotonic() > deadline:
        raise RuntimeError("the test sent no signal")
      time.sleep(0.02)

  logs.MetricWriter.write_scalars = write_scalars
  logs.MetricWriter._test_pause = True  # pylint: disable=protected-access


def save_untrained_run(workdir: str, config=None, step: int = 1):
  """A training workdir holding an untrained model's checkpoint at ``step`` and the
  config.json training writes (what the tools read); returns the config."""
  import jax  # pylint: disable=g-import-not-at-top
  from lac_jax import checkpoint  # pylint: disable=g-import-not-at-top
  from lac_jax import train  # pylint: disable=g-import-not-at-top

  config = tiny_train_config() if config is None else config
  model, _ = train.build_models(config)
  state = train.create_train_state(config, model, jax.random.PRNGKey(0), 4, 1, load_weights=False)
  ckpts = checkpoint.Checkpoints(os.path.join(str(workdir), checkpoint.CHECKPOINT_DIR))
  ckpts.save(step, state)
  ckpts.close()
  checkpoint.write_config(str(workdir), config)
  return config


def read_checkpoint(workdir, step=None):
  """``(raw saved state, saved steps)`` of the training run in ``workdir`` (the latest step's
  state when ``step`` is None)."""
  from lac_jax import checkpoint  # pylint: disable=g-import-not-at-top

  ckpts = checkpoint.Checkpoints(os.path.join(str(workdir), checkpoint.CHECKPOINT_DIR))
  try:
    return ckpts.restore_raw(step), ckpts.all_steps()
  finally:
    ckpts.close()


def flat(tree, prefix=""):
  """A nested dict of arrays as ``{'/a/b': np.ndarray}``."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(flat(v, f"{prefix}/{k}"))
    return out
  return {prefix: np.asarray(tree)}
