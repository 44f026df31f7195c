"""LAC on Pouring with the paper's and the official code's hyperparameters.

  python -m lac_jax.main --config=configs/pouring.py --workdir=runs/pouring \\
      --config.data.data_dir=/data/pouring \\
      --config.model.backbone_weights=/data/weights/resnet50_imagenet.npz

``--config=configs/pouring.py:official_code`` switches the loss and model to the official
code's forward behaviour (`train.apply_official_code_preset`). Every field not set here keeps
its component default (documented in `lac_jax.models.encoder.default_config`,
`lac_jax.data.pipeline.default_config`, `lac_jax.losses.loss_config`,
`lac_jax.evaluate.default_config`, `lac_jax.train.default_config`).
"""

from lac_jax import train


def get_config(preset: str = "paper"):
  """``preset``: 'paper' (default) or 'official_code'."""
  if preset not in ("paper", "official_code"):
    raise ValueError(f"configs/pouring.py: preset must be 'paper' or 'official_code', got "
                     f"{preset!r}")
  config = train.base_config()
  config.seed = 1  # official: hard-coded 1
  # --- Model: ResNet-50 cut at conv4c + Conv3D/MLP/transformer head (encoder defaults). ---
  config.model.resnet_depth = 50  # paper/official ResNet-50
  config.model.cut = "conv4c"  # paper/official: output of layer3's third block
  config.model.backbone_mode = "train"  # official: the whole trunk is fine-tuned
  # ImageNet weights (python -m lac_jax.models.convert): the paper starts from them; set with
  # --config.model.backbone_weights=PATH. Unset = random init (logged).
  config.model.backbone_weights = None
  config.model.num_context = 1  # official training: one frame per step
  config.model.dtype = "float32"  # 'bfloat16' on GPU/TPU halves activation memory
  # --- Data ---
  d = config.data
  d.dataset = "pouring"  # TCC TFRecords or the CARL/LAC release (lac_jax.data.pouring)
  d.data_dir = ""  # required: the directory holding the Pouring files
  d.batch_size = 2  # official: 2 videos per step (global, over all devices)
  d.image_size = 224  # official 224 x 224
  d.sampling.num_frames = 64  # official: 64 frames per view
  d.sampling.sampling_region = 1.5  # official time_augment region
  d.sampling.temporal_crop = False  # official: no crop (its offset is always 0)
  # --- Loss: Eq. 8 with the paper's values ---
  config.loss.gamma = 0.8  # SW smoothing (paper Table 4)
  config.loss.tau = 0.8  # L_c temperature (official ties it to gamma)
  config.loss.var = 10.0  # Gaussian prior variance, frames
  config.loss.alpha = 0.01  # weight of L_l + beta * L_sw (official effective 0.01)
  config.loss.beta = 1.0  # weight of the SW scores
  config.loss.gap_lr = 0.1  # Adam learning rate of the gap penalties (official 0.1)
  # --- Training: official Adam + L2, cosine per epoch, 300 epochs ---
  t = config.train
  t.num_epochs = 300  # 70 videos / 2 per step = 35 steps per epoch -> 10,500 steps
  t.optimizer = "adam_l2"  # torch Adam(weight_decay=1e-5): L2 added to the gradient
  t.learning_rate = 1e-4  # encoder lr
  t.weight_decay = 1e-5  # encoder L2
  t.gap_weight_decay = 1e-5  # the official gap group's L2
  t.grad_clip_norm = 10.0  # encoder only; gap penalties unclipped
  t.schedule = "cosine_epochs"  # CosineAnnealingLR(T_max=301) stepped per epoch
  t.warmup_steps = 0  # official: none
  t.log_every_steps = 35  # one line per epoch
  t.checkpoint_every_steps = 350  # every 10 epochs, as the official code
  t.keep_checkpoints = 3
  t.eval_every_steps = 1750  # every 50 epochs (the official code evaluates every epoch)
  t.eval_at_start = False  # True: also evaluate the ImageNet-initialised encoder
  # --- Evaluation: official protocol (evaluate/metrics defaults) ---
  config.eval.classifier = "logistic"  # official code; 'svm' as the paper's text says
  config.eval.fractions = (0.1, 0.5, 1.0)  # Class 10 / 50 / 100
  config.eval.num_classes = 5  # Pouring: 5 phases
  if preset == "official_code":
    train.apply_official_code_preset(config)
  return config
