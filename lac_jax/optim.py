"""The optimiser: training length, learning-rate schedules and the parameter groups (encoder,
the loss's parameters, a frozen trunk), as the official LAC code sets them."""

from __future__ import annotations

import functools
import math
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import ml_collections
import optax

from lac_jax import losses
from lac_jax.data import pipeline


def num_train_steps(config: ml_collections.ConfigDict, num_videos: int) -> int:
  """``train.num_steps`` if set, else ``num_epochs`` epochs: ``ceil(num_epochs * N / B)`` steps,
  or ``num_epochs * (N // B)`` with ``data.drop_last``."""
  if config.train.num_steps > 0:
    return int(config.train.num_steps)
  per_epoch = pipeline.batches_per_epoch(
    num_videos, int(config.data.batch_size), config.data.drop_last
  )
  return max(1, math.ceil(config.train.num_epochs * per_epoch))


def learning_rate_schedule(
  config: ml_collections.ConfigDict, peak: float, num_videos: int, total_steps: int
) -> optax.Schedule:
  """Step -> learning rate for a group whose peak rate is ``peak`` (see ``train.schedule``)."""
  tc = config.train
  warmup = int(tc.warmup_steps)
  batch = int(config.data.batch_size)
  if tc.schedule == "constant":
    main = optax.constant_schedule(peak)
  elif tc.schedule == "cosine":
    main = optax.cosine_decay_schedule(peak, max(1, total_steps - warmup))
  else:  # 'cosine_epochs': e = `pipeline.epoch_of_step`, T_max = epochs + 1.
    num_videos = max(num_videos, 1)
    per_epoch = pipeline.batches_per_epoch(num_videos, batch, config.data.drop_last)
    epochs = tc.num_epochs if tc.num_steps == 0 else max(1, math.ceil(tc.num_steps / per_epoch))

    def main(step):
      epoch = pipeline.epoch_of_step(
        jnp.asarray(step, jnp.int32), num_videos, batch, config.data.drop_last
      )
      return peak * 0.5 * (1.0 + jnp.cos(jnp.pi * epoch / (epochs + 1)))

  if warmup <= 0:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), main], [warmup])


TRUNK = "backbone"  # The trunk's subtree in the encoder's params and batch stats.


def _param_labels(params: Mapping[str, Any], freeze_trunk: bool = False) -> dict[str, Any]:
  """Optimiser group of every parameter: its top-level key, or ``'frozen'`` for the trunk."""
  labels = {k: jax.tree.map(lambda _, k=k: k, v) for k, v in params.items()}
  if freeze_trunk and TRUNK in labels.get("encoder", {}):
    labels["encoder"] = {
      **labels["encoder"],
      TRUNK: jax.tree.map(lambda _: "frozen", labels["encoder"][TRUNK]),
    }
  return labels


def make_optimizer(
  config: ml_collections.ConfigDict,
  num_videos: int,
  total_steps: int,
  loss: Optional[losses.Loss] = None,
) -> optax.GradientTransformation:
  """Groups ``'encoder'`` (clip -> Adam(+L2) or AdamW) and, when the loss has parameters,
  ``loss.params_key`` (Adam + L2 with the loss's rate and decay, unclipped); with
  ``model.backbone_mode='frozen'`` the trunk is group ``'frozen'``: no update, no decay, no
  optimiser state (as torch skips parameters without gradients). ``loss``: default
  ``losses.build(config.loss)``."""
  loss = losses.build(config.loss) if loss is None else loss
  tc = config.train
  adam = dict(b1=tc.adam_b1, b2=tc.adam_b2, eps=tc.adam_eps)
  lr = learning_rate_schedule(config, tc.learning_rate, num_videos, total_steps)
  encoder_tx = []
  if tc.grad_clip_norm > 0:
    encoder_tx.append(optax.clip_by_global_norm(tc.grad_clip_norm))
  if tc.optimizer == "adam_l2":
    # torch.optim.Adam(weight_decay=wd): grad += wd * param (after clipping), then Adam.
    encoder_tx += [
      optax.add_decayed_weights(tc.weight_decay),
      optax.scale_by_adam(**adam),
      optax.scale_by_learning_rate(lr),
    ]
  else:
    encoder_tx.append(optax.adamw(lr, weight_decay=tc.weight_decay, **adam))
  groups = {"encoder": optax.chain(*encoder_tx)}
  if loss.params_key:
    loss_lr = learning_rate_schedule(config, loss.learning_rate, num_videos, total_steps)
    groups[loss.params_key] = optax.chain(
      optax.add_decayed_weights(loss.weight_decay),
      optax.scale_by_adam(**adam),
      optax.scale_by_learning_rate(loss_lr),
    )
  freeze = config.model.backbone_mode == "frozen"
  if freeze:
    groups["frozen"] = optax.set_to_zero()
  return optax.multi_transform(groups, functools.partial(_param_labels, freeze_trunk=freeze))
