"""LAC on the built-in synthetic pouring videos, sized for a 2-core laptop CPU (no download).

  python -m lac_jax.main --config=configs/synthetic.py --workdir=runs/synthetic

Evaluates the untrained encoder first and the trained one at the end, and prints both rows of the
paper's table side by side (also in runs/synthetic/eval/summary.json). The loss is the paper's
(`lac_jax.losses.lac.default_config('paper')`); only the model size, the frames, the augmentation
strength, the learning rate and the length are scaled down, and the positional encoding is off
(``model.pe_positions='none'``): with the official encoding the *untrained* encoder already scores
Progress ~93 and Tau ~99 here, because the encoding alone tells how far into the video a frame is,
which hides what training learns. Without it, the untrained row shows what random features of the
frames give, and the trained row what LAC learned from them (measured in the README).
"""

import os
import sys

# configs/common.py is found from any working directory: the repository root goes on the path.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
  sys.path.insert(0, _ROOT)
from configs import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from lac_jax import config as config_lib


def get_config(arg=None):
  """``arg``: ``'[method][,preset]'``: a method of `common.METHODS` (default lac: its loss, the
  model and budget unchanged) and a preset (paper, or official_code: `common.official_code`)."""
  args = common.parse_method_preset(arg)
  config = config_lib.base_config()
  config.seed = 0  # model init, dropout, data order and augmentation
  # --- Model: a small randomly initialised ResNet-18 trunk cut early, a narrow head. ---
  m = config.model
  m.trunk_options.depth = 18  # small trunk (no ImageNet weights: random init)
  m.trunk_options.cut = "conv3a"  # first block of layer2: [N, 4, 4, 128] at 32 px
  m.context_width = 64  # Conv3D channels (paper 512)
  m.context_padding = "same"  # the cut map is only 4 x 4
  m.mlp_sizes = (128,)  # one hidden layer (paper 512, 512)
  m.embed_dim = 64  # transformer width (paper 256)
  m.num_heads = 4  # attention heads (paper 8)
  m.ffn_dim = 128  # transformer feed-forward size (paper 1024)
  m.num_layers = 1  # transformer layers (paper 2)
  m.output_dim = 32  # embedding size (paper 128)
  m.pe_positions = "none"  # no positional encoding (see the docstring)
  # --- Data ---
  d = config.data
  d.dataset = "synthetic"  # generated videos (lac_jax.data.synthetic): 48 train, 16 val
  d.batch_size = 4  # videos per step (global)
  d.image_size = 32  # frames are 32 x 32 (rendered at 64 x 64, see d.synthetic)
  d.sampling.num_frames = 16  # frames per view (paper 64)
  d.synthetic.height = 64  # rendered frame height
  d.synthetic.width = 64  # rendered frame width
  # Milder colour augmentation than the official strengths (0.8 / 0.8 / 0.8 / 0.2, blur
  # 0.5, grayscale 0.2): at 32 px and a few hundred steps those leave too little to learn from.
  d.augment.brightness = 0.4
  d.augment.contrast = 0.4
  d.augment.saturation = 0.4
  d.augment.hue = 0.1
  d.augment.blur_prob = 0.0
  d.augment.grayscale_prob = 0.1
  # --- Train ---
  t = config.train
  t.num_steps = 300  # 25 epochs of the 48 videos (num_epochs is ignored)
  t.learning_rate = 1e-3  # a small model from scratch learns faster than ImageNet fine-tuning
  t.schedule = "cosine"  # per-step cosine to 0
  t.warmup_steps = 20  # linear warm-up
  t.log_every_steps = 50  # progress line cadence
  t.checkpoint_every_steps = 100  # checkpoint cadence (rerunning the command resumes)
  t.keep_checkpoints = 2  # checkpoints kept
  t.eval_at_start = True  # evaluate the untrained encoder too (the table's first row)
  common.apply_method(config, args.method)
  return common.apply_preset(config, args.preset)
