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
  config = train.base_config()
  config.seed = 1  # official: hard-coded 1
  # --- Model: ResNet-50 cut at conv4c + Conv3D/MLP/transformer head (encoder defaults). ---
  config.model.resnet_depth = 50  # paper/official ResNet-50
  config.model.cut = "conv4c"  # paper/official: output of layer3's third block
  config.model.backbone_mode = "train"  # official: the whole trunk is fine-tuned
  # ImageNet weights (python -m lac_jax.models.convert); set with
  # --config.model.backbone_weights=PATH. Unset = random init (logged).
  config.model.backbone_weights = None
  config.model.num_context = 1  # official training: one frame per step
  config.model.dtype = "float32"  # 'bfloat16' on GPU/TPU halves activation memory
  # --- Data ---
  d = config.data
  d.dataset = "penn_action"  # CARL/LAC release (lac_jax.data.penn_action)
  d.data_dir = ""  # required: the directory holding the PennAction files
  d.action = action  # one action per run, as the paper
  d.batch_size = 2  # official: 2 videos per step (global, over all devices)
  d.image_size = 224  # official 224 x 224
  d.sampling.num_frames = 64  # official: 64 frames per view
  d.sampling.sampling_region = 1.5  # official time_augment region
  d.sampling.temporal_crop = False  # official: no crop (its offset is always 0)
  # --- Loss: Eq. 8 with the paper's values ---
  config.loss.gamma = 0.8  # SW smoothing (paper Table 4)
  config.loss.tau = 0.8  # L_c temperature (official ties it to gamma)
  config.loss.var = 10.0  # Gaussian prior variance, frames
  config.loss.alpha = 0.01  # official effective weight (its config's 0.01 is overwritten)
  config.loss.beta = 1.0  # weight of the SW scores
  config.loss.gap_lr = 0.1  # Adam learning rate of the gap penalties (official 0.1)
  # --- Training: official Adam + L2, cosine per epoch, 300 epochs ---
  t = config.train
  t.num_epochs = 300  # steps = ceil(300 * train videos of the action / 2)
  t.optimizer = "adam_l2"  # torch Adam(weight_decay=1e-5): L2 added to the gradient
  t.learning_rate = 1e-4  # encoder lr
  t.weight_decay = 1e-5  # encoder L2
  t.gap_weight_decay = 1e-5  # the official gap group's L2
  t.grad_clip_norm = 10.0  # encoder only; gap penalties unclipped
  t.schedule = "cosine_epochs"  # CosineAnnealingLR(T_max=301) stepped per epoch
  t.warmup_steps = 0  # official: none
  t.log_every_steps = 50  # progress line cadence
  t.checkpoint_every_steps = 500  # checkpoint cadence
  t.keep_checkpoints = 3
  t.eval_every_steps = 2500  # periodic evaluation (the official code evaluates every epoch)
  t.eval_at_start = False  # True: also evaluate the ImageNet-initialised encoder
  # --- Evaluation: official protocol on this action ---
  config.eval.classifier = "logistic"  # official code; 'svm' as the paper's text says
  config.eval.fractions = (0.1, 0.5, 1.0)  # Class 10 / 50 / 100
  config.eval.num_classes = evaluate.NUM_PHASES[action]  # phases of this action
  if preset == "official_code":
    train.apply_official_code_preset(config)
  return config
