"""LAC on one PennAction action (as the paper: one model per action) with the official
hyperparameters.

  python -m lac_jax.main --config=configs/penn_action.py:tennis_serve \\
      --workdir=runs/penn_action/tennis_serve --config.data.data_dir=/data/penn_action \\
      --config.model.backbone_weights=/data/weights/resnet50_imagenet.npz

The argument after ``:`` is the action (default ``baseball_pitch``), optionally followed by
``,official_code`` (the official code's forward behaviour, `train.apply_official_code_preset`).
``launch/penn_action_sweep.sh`` trains all 13 actions and averages their tables (the paper's
PennAction row is the unweighted mean over the actions).
"""

from lac_jax import evaluate
from lac_jax import train
from lac_jax.data import penn_action


def get_config(arg: str = "baseball_pitch"):
  """``arg``: ``'<action>'`` or ``'<action>,official_code'``."""
  action, _, preset = arg.partition(",")
  preset = preset or "paper"
  if action not in penn_action.ACTIONS:
    raise ValueError(f"configs/penn_action.py: unknown action {action!r}; expected one of "
                     f"{list(penn_action.ACTIONS)}")
  if preset not in ("paper", "official_code"):
    raise ValueError(f"configs/penn_action.py: preset must be 'paper' or 'official_code', "
                     f"got {preset!r}")
  config = train.paper_config(preset)  # shared paper / official hyperparameters
  config.data.dataset = "penn_action"  # CARL/LAC release (lac_jax.data.penn_action)
  config.data.action = action  # one action per run, as the paper
  t = config.train
  t.log_every_steps = 50  # progress line cadence
  t.checkpoint_every_steps = 500  # checkpoint cadence
  t.eval_every_steps = 2500  # periodic evaluation (the official code evaluates every epoch)
  config.eval.num_classes = evaluate.NUM_PHASES[action]  # phases of this action
  if preset == "official_code":
    train.apply_official_code_preset(config)
  return config
