"""LAC on a folder of your own videos, with the paper's model (ImageNet ResNet-50 + transformer).

  python -m lac_jax.main --config=configs/videos.py --workdir=runs/mine \\
      --config.data.data_dir=/data/my_videos \\
      --config.model.backbone_weights=resnet50_flax.npz

The folder holds video files and/or folders of jpg/png frames, in ``train/`` and ``val/`` or
directly (then ``data.videos.val_fraction`` of them validate), and optionally ``labels.json``
(docs/own_videos.md). For a CPU-sized model use ``--config=configs/synthetic.py
--config.data.dataset=videos`` instead. ``arg``: as ``configs/pouring.py``.
"""

import os
import sys

# configs/common.py is found from any working directory: the repository root goes on the path.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
  sys.path.insert(0, _ROOT)
from configs import common  # pylint: disable=g-import-not-at-top,wrong-import-position


def get_config(arg=None):
  """``arg``: ``'[method][,preset]'``, as configs/pouring.py."""
  args = common.parse_method_preset(arg)
  config = common.paper()
  d = config.data
  d.dataset = "videos"  # your folder: --config.data.data_dir=DIR
  d.videos.fps = 0.0  # keep every frame; e.g. 10 to bring 30-60 fps phone videos to ~10 fps
  d.videos.max_frames = 512  # longer videos keep 512 frames evenly spaced
  t = config.train
  t.log_every_steps = 50
  t.checkpoint_every_steps = 500
  t.eval_at_start = True  # the untrained row of the closing table, for comparison
  common.apply_method(config, args.method)
  return common.apply_preset(config, args.preset)
