"""LAC on one PennAction action (as the paper: one model per action) with the official
hyperparameters.

  python -m lac_jax.main --config=configs/penn_action.py:tennis_serve \\
      --workdir=runs/penn_action/tennis_serve --config.data.data_dir=/data/penn_action \\
      --config.model.backbone_weights=/data/weights/resnet50_imagenet.npz

The argument after ``:`` is the action (default ``baseball_pitch``), optionally followed by
``,official_code`` (the official code's pipeline, `common.official_code`).
``launch/penn_action_sweep.sh`` trains all 13 actions and averages their tables (the paper's
PennAction row is the unweighted mean over the actions).
"""

from configs import common
from lac_jax.data import penn_action


def get_config(arg=None):
  """``arg``: ``'<action>[,official_code]'`` or ``'action=<action>,preset=<preset>'``."""
  args = common.parse_arg(arg, action="baseball_pitch", preset="paper")
  if args.action not in penn_action.ACTIONS:
    raise ValueError(f"configs/penn_action.py: unknown action {args.action!r}; expected one of "
                     f"{list(penn_action.ACTIONS)}")
  config = common.paper()
  config.data.dataset = "penn_action"  # the CARL/LAC release
  config.data.action = args.action  # one action per run, as the paper
  t = config.train
  t.log_every_steps = 50  # progress line cadence
  t.checkpoint_every_steps = 500  # checkpoint cadence
  t.eval_every_steps = 2500  # periodic evaluation (the official code evaluates every epoch)
  return common.apply_preset(config, args.preset)
