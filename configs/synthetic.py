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


def get_config(arg=None):
  """``arg``: ``'[method][,preset]'``: a method of `common.METHODS` (default lac: its loss, the
  model and budget unchanged) and a preset (paper, or official_code: `common.official_code`)."""
  args = common.parse_method_preset(arg)
  config = common.cpu_sized()
  d = config.data
  d.dataset = "synthetic"  # generated videos (lac_jax.data.synthetic): 48 train, 16 val
  d.synthetic.height = 64  # rendered frame height (the pipeline works at d.image_size = 32)
  d.synthetic.width = 64  # rendered frame width
  common.apply_method(config, args.method)
  return common.apply_preset(config, args.preset)
