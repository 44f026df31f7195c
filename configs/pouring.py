"""LAC on Pouring with the paper's and the official code's hyperparameters.

  python -m lac_jax.main --config=configs/pouring.py --workdir=runs/pouring \\
      --config.data.data_dir=/data/pouring \\
      --config.model.backbone_weights=/data/weights/resnet50_imagenet.npz

``--config=configs/pouring.py:official_code`` switches the loss and model to the official
code's forward behaviour (`train.apply_official_code_preset`). Every field not set here keeps
its component default (documented in `lac_jax.models.encoder.default_config`,
`lac_jax.data.pipeline.default_config`, `lac_jax.losses.lac.default_config`,
`lac_jax.evaluate.default_config`, `lac_jax.train.default_config`).
"""

from lac_jax import train


def get_config(preset: str = "paper"):
  """``preset``: 'paper' (default) or 'official_code'."""
  config = train.paper_config(preset)  # shared paper / official hyperparameters
  config.data.dataset = "pouring"  # TCC TFRecords or the CARL/LAC release (lac_jax.data.pouring)
  t = config.train
  # 70 videos / 2 per step = 35 steps per epoch -> 10,500 steps in 300 epochs.
  t.log_every_steps = 35  # one line per epoch
  t.checkpoint_every_steps = 350  # every 10 epochs, as the official code
  t.eval_every_steps = 1750  # every 50 epochs (the official code evaluates every epoch)
  config.eval.num_classes = 5  # Pouring: 5 phases
  if preset == "official_code":
    train.apply_official_code_preset(config)
  return config
