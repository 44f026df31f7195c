"""LAC on the built-in rendered 3D actions (MuJoCo physics, `docs/rendered.md`), sized for a
2-core CPU like configs/synthetic.py: the same model, budget and evaluation, one action per run.

  python -m lac_jax.main --config=configs/rendered.py:door --workdir=runs/rendered_door
  python -m lac_jax.main --config=configs/rendered.py:drop,tcc --workdir=runs/rendered_drop_tcc

The argument after ``:`` is the action (default ``door``), optionally with a method of
`common.METHODS` and a preset (``official_code``). Videos are rendered at 64 x 64 once into the
run's cache (a few minutes on 2 cores); the pipeline and the evaluation work at 32 x 32.
"""

import os
import sys

# configs/common.py is found from any working directory: the repository root goes on the path.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
  sys.path.insert(0, _ROOT)
from configs import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from lac_jax.data import rendered  # pylint: disable=g-import-not-at-top,wrong-import-position


def get_config(arg=None):
  """``arg``: ``'[action][,method][,preset]'`` or ``'action=...,method=...,preset=...'``."""
  args = common.parse_action_method_preset(arg, rendered.ACTIONS, "door")
  config = common.cpu_sized()
  d = config.data
  d.dataset = "rendered"  # lac_jax.data.rendered: 192 train, 16 val videos per action
  d.action = args.action  # one action per run (as PennAction)
  d.rendered.height = 64  # rendered frame height (the pipeline works at d.image_size = 32)
  d.rendered.width = 64  # rendered frame width
  common.apply_method(config, args.method)
  return common.apply_preset(config, args.preset)
