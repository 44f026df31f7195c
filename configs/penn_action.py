"""LAC on one PennAction action (as the paper: one model per action) with the official
hyperparameters.

  python -m lac_jax.main --config=configs/penn_action.py:tennis_serve \\
      --workdir=runs/penn_action/tennis_serve --config.data.data_dir=/data/penn_action \\
      --config.model.backbone_weights=/data/weights/resnet50_imagenet.npz

The argument after ``:`` is the action (default ``baseball_pitch``), optionally with a method
of `common.METHODS` (``,tcc``: that baseline with the official LAC code's settings for it) and
``,official_code`` (the official code's pipeline, `common.official_code`).
``launch/penn_action_sweep.sh`` trains all 13 actions and averages their tables (the paper's
PennAction row is the unweighted mean over the actions).
"""

import os
import sys

# configs/common.py is found from any working directory: the repository root goes on the path.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
  sys.path.insert(0, _ROOT)
from configs import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from lac_jax.data import penn_action


def get_config(arg=None):
  """The config of one PennAction action.

  ``arg``: ``'<action>[,<method>][,official_code]'``, or ``'action=...,method=...,preset=...'``.
  """
  args = common.parse_action_method_preset(arg, penn_action.ACTIONS, "baseball_pitch")
  config = common.paper()
  config.data.dataset = "penn_action"  # the CARL/LAC release
  config.data.action = args.action  # one action per run, as the paper
  t = config.train
  t.log_every_steps = 50  # progress line cadence
  t.checkpoint_every_steps = 500  # checkpoint cadence
  t.eval_every_steps = 2500  # periodic evaluation (the official code evaluates every epoch)
  common.apply_method(config, args.method, "penn_action")
  return common.apply_preset(config, args.preset)
