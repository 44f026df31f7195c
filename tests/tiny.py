"""Small model configs shared by the tests (fast to compile on 2 CPU cores)."""

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
  """A whole training config that compiles and runs in seconds: ResNet-18 cut at conv2a, 16 px
  frames, 4 frames per view, 4 videos per step, 3 steps, evaluation at the end."""
  from lac_jax import train  # pylint: disable=g-import-not-at-top
  c = train.base_config()
  c.seed = 0
  m = c.model
  m.trunk_options.depth, m.trunk_options.cut = 18, "conv2a"
  m.context_width, m.context_layers = 8, 1
  m.context_padding, m.mlp_sizes, m.embed_dim, m.num_heads = "same", (16,), 16, 2
  m.ffn_dim, m.num_layers, m.output_dim = 16, 1, 8
  d = c.data
  d.dataset, d.data_dir = dataset, data_dir
  d.batch_size, d.image_size, d.num_workers = 4, 16, 0
  d.sampling.num_frames = 4
  s = d.synthetic
  s.num_train, s.num_val, s.min_frames, s.max_frames, s.height, s.width = 8, 4, 20, 32, 16, 16
  c.eval.tau_stride = c.eval.retrieval_stride = c.eval.cycle_stride = 2
  c.eval.retrieval_ks = (5,)
  c.eval.fractions = (0.5, 1.0)
  t = c.train
  t.num_steps, t.learning_rate, t.schedule = 3, 1e-3, "constant"
  t.log_every_steps, t.checkpoint_every_steps, t.tensorboard = 1, 2, False
  for k, v in train_overrides.items():
    t[k] = v
  return c


def save_untrained_run(workdir: str, config=None, step: int = 1):
  """A training workdir holding an untrained model's checkpoint at ``step`` and the
  config.json training writes (what the tools read); returns the config."""
  import jax  # pylint: disable=g-import-not-at-top
  from lac_jax import checkpoint  # pylint: disable=g-import-not-at-top
  from lac_jax import train  # pylint: disable=g-import-not-at-top
  config = tiny_train_config() if config is None else config
  model, _ = train.build_models(config)
  state = train.create_train_state(config, model, jax.random.PRNGKey(0), 4, 1,
                                   load_weights=False)
  ckpts = checkpoint.Checkpoints(os.path.join(str(workdir), checkpoint.CHECKPOINT_DIR))
  ckpts.save(step, state)
  ckpts.close()
  checkpoint.write_config(str(workdir), config)
  return config
