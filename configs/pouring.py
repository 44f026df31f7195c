"""LAC on Pouring with the paper's and the official code's hyperparameters.

  python -m lac_jax.main --config=configs/pouring.py --workdir=runs/pouring \\
      --config.data.data_dir=/data/pouring \\
      --config.model.backbone_weights=/data/weights/resnet50_imagenet.npz

``--config=configs/pouring.py:official_code`` reproduces the official code's pipeline
(`common.official_code`); ``:tcc`` (or scl, tcn, lav, gta) trains that baseline with the official
LAC code's settings for it, ``:tcc,official_code`` its version of that baseline. Fields not set
here keep the defaults of ``configs/common.py``.
"""

import os
import sys

# configs/common.py is found from any working directory: the repository root goes on the path.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
  sys.path.insert(0, _ROOT)
from configs import common  # pylint: disable=g-import-not-at-top,wrong-import-position


def get_config(arg=None):
  """``arg``: ``'[method][,preset]'``: a method of `common.METHODS` (default lac) and a preset
  (paper or official_code)."""
  args = common.parse_method_preset(arg)
  config = common.paper()
  config.data.dataset = "pouring"  # TCC TFRecords or the CARL/LAC release
  t = config.train
  # 70 videos / 2 per step = 35 steps per epoch -> 10,500 steps in 300 epochs.
  t.log_every_steps = 35  # one line per epoch
  t.checkpoint_every_steps = 350  # every 10 epochs, as the official code
  t.eval_every_steps = 1750  # every 50 epochs (the official code evaluates every epoch)
  common.apply_method(config, args.method, "pouring")
  return common.apply_preset(config, args.preset)
