"""Synthetic pouring videos on a laptop CPU: trains in minutes, no download.

  python -m lac_jax.main --config=configs/synthetic.py --workdir=runs/synthetic

Evaluates the untrained encoder first and the trained one at the end, and prints both rows of
the paper's table side by side (also in runs/synthetic/eval/summary.json).
"""

from lac_jax import train


def get_config():
  config = train.base_config()
  config.seed = 0  # model init, dropout, data order and augmentation
  # --- Model: a small randomly initialised ResNet-18 trunk cut early, a narrow head. ---
  m = config.model
  m.resnet_depth = 18  # small trunk
  m.cut = "conv3a"  # first block of layer2: [N, 4, 4, 128] at 32 px
  m.context_width = 64  # Conv3D channels
  m.context_padding = "same"  # the cut map is small
  m.mlp_sizes = (128,)  # one hidden layer
  m.embed_dim = 64  # transformer width
  m.num_heads = 4  # attention heads
  m.ffn_dim = 128  # transformer feed-forward size
  m.num_layers = 1  # one transformer layer
  m.output_dim = 32  # embedding size
  # --- Data ---
  d = config.data
  d.dataset = "synthetic"  # generated videos (lac_jax.data.synthetic)
  d.batch_size = 4  # videos per step (global)
  d.image_size = 32  # frames are 32 x 32
  d.sampling.num_frames = 16  # frames per view
  d.synthetic.height = 64  # rendered frame size (resized to image_size by the augmentation)
  d.synthetic.width = 64
  # --- Train ---
  t = config.train
  t.num_steps = 300  # steps (num_epochs ignored)
  t.learning_rate = 1e-3  # a small model from scratch learns faster than ImageNet fine-tuning
  t.schedule = "cosine"  # per-step cosine to 0
  t.warmup_steps = 20
  t.log_every_steps = 25
  t.checkpoint_every_steps = 100
  t.keep_checkpoints = 2
  t.eval_at_start = True  # untrained row of the table
  return config
