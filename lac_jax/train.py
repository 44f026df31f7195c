"""Training: state, optimiser, the data-parallel step and the loop with checkpoints and logs.

``train_and_evaluate(config, workdir)`` is ``--mode=train``: videos -> resumable batch iterator
-> pmapped `train_step` (the loss, ``losses.build(config.loss)``, is passed in) -> logs ->
orbax checkpoints -> evaluation -> the paper's table, untrained vs trained. A run resumed from
a checkpoint ends with the parameters of an uninterrupted one: the data and the dropout key of
step ``s`` depend only on ``(seed, s)``.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from typing import Any, Callable, Mapping, Optional

from absl import logging
import flax
from flax.training import train_state
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from lac_jax import checkpoint
from lac_jax import config as config_lib
from lac_jax import evaluate as evaluate_lib
from lac_jax import files
from lac_jax import logs
from lac_jax import losses
from lac_jax import memory as memory_lib
from lac_jax import metrics as metrics_lib
from lac_jax import data as data_lib
from lac_jax.data import augment as augment_lib
from lac_jax.data import device_augment
from lac_jax.data import pipeline
from lac_jax.models import encoder as encoder_lib

AXIS = "batch"  # pmap axis name (also given to BatchNorm as bn_axis_name).
EVAL_NAME = "eval"  # result files: workdir/eval/eval_step{step}.json
SUMMARY_FILE = os.path.join("eval", "summary.json")

# The config schema lives in lac_jax.config; these names stay for callers of the trainer.
base_config = config_lib.base_config
default_config = config_lib.train_config
check_config = config_lib.check_config
prepare_config = config_lib.prepare_config
check_backbone_weights = config_lib.check_backbone_weights
saved_config_template = config_lib.saved_config_template

Batch = dict[str, np.ndarray]
Metrics = dict[str, jax.Array]


# ---------------------------------------------------------------------------------------------
# State and optimiser.
# ---------------------------------------------------------------------------------------------

class TrainState(train_state.TrainState):
  """`flax` TrainState + BatchNorm statistics + a count of skipped (non-finite) steps.

  ``params = {'encoder': ..., <loss.params_key>: ...}`` (see the module docstring).
  """

  batch_stats: Any = None
  nonfinite_steps: Any = 0


def num_train_steps(config: ml_collections.ConfigDict, num_videos: int) -> int:
  """``train.num_steps`` if set, else ``num_epochs`` epochs: ``ceil(num_epochs * N / B)`` steps,
  or ``num_epochs * (N // B)`` with ``data.drop_last``."""
  if config.train.num_steps > 0:
    return int(config.train.num_steps)
  per_epoch = pipeline.batches_per_epoch(num_videos, int(config.data.batch_size),
                                         config.data.drop_last)
  return max(1, math.ceil(config.train.num_epochs * per_epoch))


def learning_rate_schedule(config: ml_collections.ConfigDict, peak: float, num_videos: int,
                           total_steps: int) -> optax.Schedule:
  """Step -> learning rate for a group whose peak rate is ``peak`` (see ``train.schedule``)."""
  t = config.train
  warmup = int(t.warmup_steps)
  batch = int(config.data.batch_size)
  if t.schedule == "constant":
    main = optax.constant_schedule(peak)
  elif t.schedule == "cosine":
    main = optax.cosine_decay_schedule(peak, max(1, total_steps - warmup))
  else:  # 'cosine_epochs': e = `pipeline.epoch_of_step`, T_max = epochs + 1.
    num_videos = max(num_videos, 1)
    per_epoch = pipeline.batches_per_epoch(num_videos, batch, config.data.drop_last)
    epochs = (t.num_epochs if t.num_steps == 0 else
              max(1, math.ceil(t.num_steps / per_epoch)))

    def main(step):
      epoch = pipeline.epoch_of_step(jnp.asarray(step, jnp.int32), num_videos, batch,
                                     config.data.drop_last)
      return peak * 0.5 * (1.0 + jnp.cos(jnp.pi * epoch / (epochs + 1)))
  if warmup <= 0:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), main], [warmup])


TRUNK = "backbone"  # The trunk's subtree in the encoder's params and batch stats.


def _param_labels(params: Mapping[str, Any], freeze_trunk: bool = False) -> dict[str, Any]:
  """Optimiser group of every parameter: its top-level key, or ``'frozen'`` for the trunk."""
  labels = {k: jax.tree.map(lambda _, k=k: k, v) for k, v in params.items()}
  if freeze_trunk and TRUNK in labels.get("encoder", {}):
    labels["encoder"] = {**labels["encoder"],
                         TRUNK: jax.tree.map(lambda _: "frozen", labels["encoder"][TRUNK])}
  return labels


def make_optimizer(config: ml_collections.ConfigDict, num_videos: int, total_steps: int,
                   loss: Optional[losses.Loss] = None) -> optax.GradientTransformation:
  """Groups ``'encoder'`` (clip -> Adam(+L2) or AdamW) and, when the loss has parameters,
  ``loss.params_key`` (Adam + L2 with the loss's rate and decay, unclipped); with
  ``model.backbone_mode='frozen'`` the trunk is group ``'frozen'``: no update, no decay, no
  optimiser state (as torch skips parameters without gradients). ``loss``: default
  ``losses.build(config.loss)``."""
  loss = losses.build(config.loss) if loss is None else loss
  t = config.train
  adam = dict(b1=t.adam_b1, b2=t.adam_b2, eps=t.adam_eps)
  lr = learning_rate_schedule(config, t.learning_rate, num_videos, total_steps)
  encoder_tx = []
  if t.grad_clip_norm > 0:
    encoder_tx.append(optax.clip_by_global_norm(t.grad_clip_norm))
  if t.optimizer == "adam_l2":
    # torch.optim.Adam(weight_decay=wd): grad += wd * param (after clipping), then Adam.
    encoder_tx += [optax.add_decayed_weights(t.weight_decay), optax.scale_by_adam(**adam),
                   optax.scale_by_learning_rate(lr)]
  else:
    encoder_tx.append(optax.adamw(lr, weight_decay=t.weight_decay, **adam))
  groups = {"encoder": optax.chain(*encoder_tx)}
  if loss.params_key:
    loss_lr = learning_rate_schedule(config, loss.learning_rate, num_videos, total_steps)
    groups[loss.params_key] = optax.chain(
        optax.add_decayed_weights(loss.weight_decay), optax.scale_by_adam(**adam),
        optax.scale_by_learning_rate(loss_lr))
  freeze = config.model.backbone_mode == "frozen"
  if freeze:
    groups["frozen"] = optax.set_to_zero()
  return optax.multi_transform(groups, functools.partial(_param_labels, freeze_trunk=freeze))


def build_models(config: ml_collections.ConfigDict
                 ) -> tuple[encoder_lib.LACEncoder, encoder_lib.LACEncoder]:
  """(training model with ``bn_axis_name='batch'``, evaluation model without)."""
  eval_model = encoder_lib.build_encoder(config.model)
  return eval_model.clone(bn_axis_name=AXIS), eval_model


def create_train_state(config: ml_collections.ConfigDict, model: encoder_lib.LACEncoder,
                       rng: jax.Array, num_videos: int, total_steps: int,
                       load_weights: bool = True,
                       loss: Optional[losses.Loss] = None) -> TrainState:
  """Initial state: encoder variables (ImageNet trunk if ``model.backbone_weights``), the loss's
  parameters, optimiser state. ``load_weights=False`` skips the weight file (restore targets).
  ``loss``: default ``losses.build(config.loss)``."""
  loss = losses.build(config.loss) if loss is None else loss
  t = config.data.sampling.num_frames
  s = config.data.image_size
  init_model = model.clone(bn_axis_name=None)  # Init runs outside pmap.
  variables = encoder_lib.init_variables(
      init_model, rng, (1, t, s, s, 3),
      config.model.backbone_weights if load_weights else None)
  params = {"encoder": variables["params"]}
  if loss.params_key:
    params[loss.params_key] = loss.init_params(t // config.model.num_context)
  tx = make_optimizer(config, num_videos, total_steps, loss)
  return TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                           batch_stats=variables.get("batch_stats", {}),
                           nonfinite_steps=jnp.zeros((), jnp.int32))


def eval_variables(state: TrainState) -> dict[str, Any]:
  """``{'params', 'batch_stats'}`` of the encoder, for `lac_jax.evaluate`."""
  return {"params": state.params["encoder"], "batch_stats": state.batch_stats}


# ---------------------------------------------------------------------------------------------
# The step.
# ---------------------------------------------------------------------------------------------

def _identity(tree: Any) -> Any:
  return tree


def _all_finite(tree: Any) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def train_step(state: TrainState, batch: Mapping[str, jax.Array], rng: jax.Array, *,
               loss: losses.Loss, num_context: int = 1,
               lr_fn: Optional[optax.Schedule] = None,
               reduce: Callable[[Any], Any] = _identity,
               fixed_trunk_stats: bool = False,
               augment: Optional[Callable[[Mapping[str, jax.Array], jax.Array], jax.Array]]
               = None) -> tuple[TrainState, Metrics]:
  """One optimisation step on one device's share of the batch.

  Args:
    state: the (per-device) train state.
    batch: ``frames`` uint8 ``[B, 2, T, S, S, 3]``, ``steps`` int ``[B, 2, T]``, ``mask`` bool
      ``[B, 2, T]``, optionally ``lengths`` int ``[B]`` (each video's frame count).
    rng: base key; the dropout key is ``fold_in(rng, state.step)``.
    loss: the loss (``losses.build(config.loss)``), called on the embeddings ``[B, 2, T', E]``.
    num_context: the model's frames per embedding step (each step takes its last frame's index,
      and is valid when all its frames are).
    lr_fn: encoder learning-rate schedule, only for the logged ``train/lr``.
    reduce: mean across devices of a pytree (``lax.pmean`` in the pmap wrapper).
    fixed_trunk_stats: the trunk's BatchNorm statistics are never changed (its BN runs on
      running statistics: ``model.backbone_mode`` 'frozen' or 'bn_frozen'), not even by the
      rounding of the cross-device mean.
    augment: ``(batch, step) -> frames``, the augmentation on the device (`make_device_augment`;
      the batch then holds resized frames, ``source_hw`` and ``slot``), or None.
  Returns:
    ``(new_state, metrics)``: metrics are scalars (already reduced): ``train/<loss part>``,
    ``train/<loss log scalar>``, ``train/grad_norm`` (encoder, before clipping), ``train/lr``,
    ``train/finite`` (1.0 or 0.0). A non-finite loss or gradient
    leaves params, optimiser state and BN statistics unchanged and adds 1 to
    ``nonfinite_steps``; ``step`` advances either way (it counts batches consumed).
  """
  rng = jax.random.fold_in(rng, state.step)
  frames = batch["frames"] if augment is None else augment(batch, state.step)
  mask = batch["mask"].astype(bool)
  b, _, t = frames.shape[:3]
  steps = batch["steps"]
  if num_context > 1:  # Embedding steps: last frame of each group, valid iff all frames are.
    steps = steps.reshape(b, 2, t // num_context, num_context)[..., -1]
    step_mask = jnp.all(mask.reshape(b, 2, t // num_context, num_context), -1)
  else:
    step_mask = mask

  def loss_fn(params):
    z, updates = state.apply_fn(
        {"params": params["encoder"], "batch_stats": state.batch_stats},
        frames.reshape((b * 2, t) + frames.shape[3:]), mask.reshape(b * 2, t), train=True,
        rngs={"dropout": rng}, mutable=["batch_stats"])
    z = z.reshape((b, 2) + z.shape[1:])
    value, parts = loss(params.get(loss.params_key), z, steps, step_mask,
                        lengths=batch.get("lengths"))
    return value, (parts, updates.get("batch_stats", state.batch_stats))

  (_, (parts, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  grads, parts, batch_stats = reduce((grads, parts, batch_stats))
  if fixed_trunk_stats and TRUNK in batch_stats:
    batch_stats = {**batch_stats, TRUNK: state.batch_stats[TRUNK]}
  finite = jnp.isfinite(parts["loss"]) & _all_finite(grads)
  new = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  keep = lambda n, o: jax.tree.map(lambda x, y: jnp.where(finite, x, y), n, o)
  new = new.replace(params=keep(new.params, state.params),
                    opt_state=keep(new.opt_state, state.opt_state),
                    batch_stats=keep(new.batch_stats, state.batch_stats),
                    nonfinite_steps=state.nonfinite_steps + (~finite).astype(jnp.int32))
  out = {f"train/{k}": v for k, v in parts.items()}
  out["train/grad_norm"] = optax.tree.norm(grads["encoder"])
  out["train/finite"] = finite.astype(jnp.float32)
  for name, value in loss.log_scalars(state.params.get(loss.params_key)).items():
    out[f"train/{name}"] = value
  if lr_fn is not None:
    out["train/lr"] = jnp.asarray(lr_fn(state.step), jnp.float32)
  return new, out


def make_parallel_train_step(loss: losses.Loss, num_context: int = 1,
                             lr_fn: Optional[optax.Schedule] = None,
                             donate: Optional[bool] = None,
                             fixed_trunk_stats: bool = False,
                             augment: Optional[Callable] = None) -> Callable:
  """``jax.pmap`` of `train_step` over the local devices (axis ``'batch'``): data parallel; the
  step is a plain function of one device's shard, averaged only through ``reduce``, so a move to
  jit + a mesh stays small. pmap rather than jit + NamedSharding because, in JAX 0.10.2 on a
  2-core CPU with forced host devices, back-to-back jit steps with an all-reduce deadlocked about
  1 run in 3 while pmap never hung (docs/dependencies.md, section 2).

  BatchNorm statistics are averaged across devices: with padded frames a device's mean is over
  its own valid frames and devices count equally, which differs slightly from one device holding
  the whole batch (the same without padding).

  Returns ``p_step(replicated_state, sharded_batch, rng) -> (state, metrics)`` where
  ``sharded_batch`` leaves are ``[n_local_devices, B_device, ...]`` and ``rng`` is one key (not
  replicated). Device ``d`` uses the dropout key ``fold_in(fold_in(rng, step), d)``.
  ``donate``: donate the state's buffers (default: on GPU/TPU; CPU cannot use donations).
  ``augment``: see `train_step`.
  """
  def per_device(state, batch, rng):
    rng = jax.random.fold_in(rng, jax.lax.axis_index(AXIS))
    return train_step(state, batch, rng, loss=loss, num_context=num_context,
                      lr_fn=lr_fn, reduce=lambda tree: jax.lax.pmean(tree, AXIS),
                      fixed_trunk_stats=fixed_trunk_stats, augment=augment)

  if donate is None:
    donate = jax.default_backend() != "cpu"
  return jax.pmap(per_device, axis_name=AXIS, in_axes=(0, 0, None),
                  donate_argnums=(0,) if donate else ())


def fit_train_step(config: ml_collections.ConfigDict, loss: losses.Loss,
                   lr_fn: Optional[optax.Schedule], p_state: TrainState,
                   batch: Mapping[str, np.ndarray], rng: jax.Array,
                   augment: Optional[Callable] = None
                   ) -> tuple[Callable, TrainState, memory_lib.Plan]:
  """The compiled parallel step for the trunk setting that fits the memory budget.

  With ``model.trunk_chunk=0``, ``trunk_remat=False`` and ``memory_budget_gb >= 0`` the setting
  is chosen by `lac_jax.memory.fit` (the whole trunk when it fits); otherwise the configured
  one is compiled and its footprint logged. Every process takes process 0's choice.

  Args:
    p_state: the replicated state; batch: one sharded batch (`shard_batch`); rng: the dropout
      key, as the step will get them; augment: `make_device_augment`'s function or None.
  Returns:
    ``(compiled step, p_state with the chosen model's apply_fn, plan)``.
  """
  m = config.model
  budget, source = memory_lib.device_budget(max(float(m.memory_budget_gb), 0.0))
  frames = int(np.prod(batch["frames"].shape[1:4]))  # per device: videos x 2 views x T
  auto = m.memory_budget_gb >= 0 and m.trunk_chunk == 0 and not m.trunk_remat
  models, steps = {}, {}

  def compile_step(chunk: int, remat: bool) -> Any:
    cfg = config.copy_and_resolve_references()
    cfg.model.trunk_chunk, cfg.model.trunk_remat = int(chunk), bool(remat)
    models[(chunk, remat)] = build_models(cfg)[0]
    steps[(chunk, remat)] = step = make_parallel_train_step(
        loss, m.num_context, lr_fn, fixed_trunk_stats=m.backbone_mode != "train",
        augment=augment)
    state = p_state.replace(apply_fn=models[(chunk, remat)].apply)
    return step.lower(state, batch, rng).compile()

  logging.info("Memory budget per device: %s (%s)", memory_lib.size(budget), source)
  if auto:
    plan, compiled = memory_lib.fit(compile_step, frames, budget)
  else:
    compiled = compile_step(int(m.trunk_chunk), bool(m.trunk_remat))
    plan = memory_lib.Plan(int(m.trunk_chunk), bool(m.trunk_remat),
                           memory_lib.footprint(compiled))
    over = m.memory_budget_gb >= 0 and plan.bytes > budget
    (logging.warning if over else logging.info)(
        "Memory: %s per device (config.model.trunk_chunk / trunk_remat as set)%s",
        plan.describe(), " - more than the budget" if over else "")
  if jax.process_count() > 1:  # Every process must run the same program.
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    chunk, remat = (int(v) for v in multihost_utils.broadcast_one_to_all(
        np.array([plan.chunk, int(plan.remat)], np.int32)))
    if (chunk, bool(remat)) != (plan.chunk, plan.remat):
      compiled = compile_step(chunk, bool(remat))
      plan = memory_lib.Plan(chunk, bool(remat), memory_lib.footprint(compiled))
      logging.info("Memory: process 0 chose %s", plan.describe())
    # A multi-process pmap compiled ahead of time expects global arrays; the pmapped function
    # takes this process's shards (and compiles once more).
    compiled = steps[(plan.chunk, plan.remat)]
  return compiled, p_state.replace(apply_fn=models[(plan.chunk, plan.remat)].apply), plan


def make_device_augment(config: ml_collections.ConfigDict
                        ) -> Optional[Callable[[Mapping[str, jax.Array], jax.Array], jax.Array]]:
  """The train step's augmentation when ``data.augment.where`` resolves to 'device' (on GPU /
  TPU by default), else None (the input pipeline augments on the host).

  View ``v`` of the example in global slot ``s`` at step ``t`` draws from the key
  ``fold_in(fold_in(fold_in(fold_in(PRNGKey(seed), 2), t), s), v)``: independent of the
  number of devices and processes, and the same when a run resumes.
  """
  a = config.data.augment
  if not a.enabled or augment_lib.resolve_where(a.where, jax.default_backend()) != "device":
    return None
  aug_config = a.copy_and_resolve_references()
  size = int(config.data.image_size)
  seed = int(config.seed)

  def fn(batch: Mapping[str, jax.Array], step: jax.Array) -> jax.Array:
    frames = batch["frames"]
    b, _, t = frames.shape[:3]
    base = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), 2), step)
    keys = jax.vmap(lambda s: jax.vmap(lambda v: jax.random.fold_in(
        jax.random.fold_in(base, s), v))(jnp.arange(2)))(batch["slot"])  # [B, 2, 2]
    out = device_augment.augment_views(
        keys.reshape(b * 2, -1), frames.reshape((b * 2,) + frames.shape[2:]),
        jnp.repeat(batch["source_hw"], 2, axis=0), size, aug_config)
    return out.reshape((b, 2, t) + out.shape[2:])

  return fn


def shard_batch(batch: Mapping[str, np.ndarray], num_devices: int) -> dict[str, np.ndarray]:
  """``[B, ...]`` -> ``[num_devices, B / num_devices, ...]`` for the model inputs."""
  out = {}
  keys = ("frames", "steps", "mask", "lengths") + (
      ("source_hw", "slot") if "source_hw" in batch else ())
  for key in keys:
    x = batch[key]
    if x.shape[0] % num_devices:
      raise ValueError(f"batch of {x.shape[0]} videos does not split over {num_devices} local "
                       "devices")
    out[key] = x.reshape((num_devices, x.shape[0] // num_devices) + x.shape[1:])
  return out


def replicate(tree: Any) -> Any:
  """Copies ``tree`` onto every local device (leading axis = device), in pmap's device order."""
  return flax.jax_utils.replicate(tree)


def unreplicate(tree: Any) -> Any:
  """This process's first device's copy of a replicated tree.

  Reads only this process's devices: indexing a multi-process pmap output (``x[0]``) would be a
  computation over every process's devices, which the others never join (a deadlock).
  """
  def first(x):
    return x.addressable_data(0)[0] if isinstance(x, jax.Array) else x[0]
  return jax.tree.map(first, tree)


def agree(flag: bool) -> bool:
  """Process 0's ``flag``, on every process (a collective: all processes must call it).

  For decisions read from files that process 0 writes, e.g. whether an evaluation exists, so
  that every process takes the same branch.
  """
  if jax.process_count() == 1:
    return bool(flag)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return bool(multihost_utils.broadcast_one_to_all(np.int32(bool(flag))))


def check_devices(config: ml_collections.ConfigDict) -> tuple[int, int]:
  """(global devices, local devices); the global batch must divide by the global count."""
  n_global, n_local = jax.device_count(), jax.local_device_count()
  batch = int(config.data.batch_size)
  if batch < 1 or batch % n_global:
    raise ValueError(
        f"config.data.batch_size={batch} (the global batch, in videos) must be a positive "
        f"multiple of the number of devices, {n_global} ({jax.process_count()} process(es) x "
        f"{n_local} local {jax.default_backend()} device(s)); e.g. --config.data.batch_size="
        f"{max(1, batch // n_global + 1) * n_global}")
  return n_global, n_local


# ---------------------------------------------------------------------------------------------
# The loop.
# ---------------------------------------------------------------------------------------------

def _report_nonfinite(step: int, row: Mapping[str, float], skipped: int,
                      config: ml_collections.ConfigDict) -> None:
  parts = ", ".join(f"{k.split('/')[-1]}={v:.6g}" for k, v in sorted(row.items()))
  message = (f"step {step}: non-finite loss or gradient ({parts}); the update was not applied "
             f"({skipped} step(s) skipped so far)")
  if config.train.on_nonfinite == "stop":
    raise FloatingPointError(message + "; stopping (config.train.on_nonfinite='stop')")
  logging.warning("%s", message)
  if skipped > config.train.max_nonfinite_steps:
    raise FloatingPointError(
        f"{skipped} steps skipped for non-finite values, more than "
        f"config.train.max_nonfinite_steps={config.train.max_nonfinite_steps}; last: {message}")


def run_evaluation(config: ml_collections.ConfigDict, state: TrainState, workdir: str,
                   step: int, model: encoder_lib.LACEncoder) -> dict[str, Any]:
  """Evaluates the (unreplicated) state; process 0 writes ``eval/eval_step{step}.json``.

  Every process runs the same evaluation on its own devices (no collectives), so none waits
  for another at a barrier however long it takes; only process 0 writes and logs the table.
  """
  start = time.perf_counter()
  primary = jax.process_index() == 0
  result = evaluate_lib.evaluate_dataset(
      config, eval_variables(state), workdir if primary else None, step=step, name=EVAL_NAME,
      model=model, log=None if primary else _no_log)
  logging.info("Evaluation at step %d took %.1f s", step, time.perf_counter() - start)
  return result


def _no_log(message: str) -> None:
  del message


def _eval_row(workdir: str, step: int) -> Optional[dict[str, float]]:
  """The summary row of ``eval/eval_step{step}.json`` if it exists (NaNs come back as None)."""
  path = evaluate_lib.result_path(workdir, EVAL_NAME, step)
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    summary = json.load(f)["summary"]
  return {k: (float("nan") if v is None else float(v)) for k, v in summary.items()}


def summary_table(workdir: str, final_step: int) -> Optional[str]:
  """Untrained (step 0) and trained (``final_step``) rows side by side, also written to
  ``workdir/eval/summary.json``; None when neither result exists."""
  rows = {}
  for step, name in ((0, "untrained (step 0)"), (final_step, f"trained (step {final_step})")):
    row = _eval_row(workdir, step)
    if row is not None:
      rows[name] = row
  if not rows:
    return None
  files.write_json(os.path.join(workdir, SUMMARY_FILE),
                          {"rows": rows, "final_step": final_step})
  return metrics_lib.format_table(rows)


def method_title(config: ml_collections.ConfigDict) -> str:
  """The trained method's name for titles: 'LAC', 'TCC', ... (the loss's registry name)."""
  return str(config.loss.get("name", "lac")).upper()


def with_cache_dir(config: ml_collections.ConfigDict, workdir: str) -> ml_collections.ConfigDict:
  """``config`` with ``data.cache_dir`` = ``workdir/cache`` when unset and the dataset decodes
  into a cache (``DECODE_CACHE``, e.g. 'videos')."""
  cached = getattr(data_lib.dataset(config.data.dataset), "DECODE_CACHE", False)
  if cached and not config.data.get("cache_dir"):
    with config.unlocked():
      config.data.cache_dir = os.path.join(workdir, "cache")
  return config


def write_skipped(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Process 0 lists the inputs the dataset skipped as unreadable in ``workdir/skipped.json``
  (and removes a stale list when none was skipped)."""
  skipped = data_lib.skipped(config.data, config.data.image_size)
  path = os.path.join(workdir, "skipped.json")
  if jax.process_index() != 0:
    return
  if skipped:
    files.write_json(path, {"skipped": skipped})
    logging.warning("%d unreadable input(s) skipped, listed in %s", len(skipped), path)
  elif os.path.exists(path):
    os.remove(path)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains LAC as ``config`` says, in ``workdir`` (resuming from its last checkpoint).

  Returns the final (unreplicated) state. Prints the evaluation table (untrained vs trained
  when ``train.eval_at_start``) on process 0 and writes it to ``workdir/eval/summary.json``.
  """
  workdir = checkpoint.check_workdir(workdir)
  config = with_cache_dir(prepare_config(config), workdir)
  logs.quiet_library_logs()
  n_global, n_local = check_devices(config)
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index() == 0:  # The model's config, for lac_jax.embed / align / retrieve.
    checkpoint.write_config(workdir, config)
  t = config.train
  logging.info("Training in %s on %d device(s) (%d local, %s), %d process(es)", workdir,
               n_global, n_local, jax.default_backend(), jax.process_count())

  ckpts = checkpoint.Checkpoints(os.path.join(workdir, checkpoint.CHECKPOINT_DIR),
                                 keep=t.keep_checkpoints)
  try:
    latest = ckpts.latest_step()
    if latest is None:  # The weights are read only when a run starts.
      check_backbone_weights(config)
    videos = data_lib.load_split(config.data, "train", config.data.action or None,
                                 config.data.image_size)
    write_skipped(config, workdir)
    total_steps = num_train_steps(config, len(videos))
    model, eval_model = build_models(config)
    init_rng, dropout_rng = jax.random.split(jax.random.PRNGKey(config.seed))
    loss = losses.build(config.loss)
    state = create_train_state(config, model, init_rng, len(videos), total_steps,
                               load_weights=latest is None, loss=loss)
    if latest is not None:
      state = ckpts.restore(state)
      logging.info("Resuming from step %d of %d", int(state.step), total_steps)
    start_step = int(state.step)
    per_epoch = pipeline.batches_per_epoch(len(videos), config.data.batch_size,
                                           config.data.drop_last)
    logging.info("%d training videos, global batch %d, %d steps (%.1f epochs)", len(videos),
                 config.data.batch_size, total_steps, total_steps / per_epoch)
    if t.eval_at_start and start_step == 0 and agree(_eval_row(workdir, 0) is None):
      run_evaluation(config, state, workdir, 0, eval_model)
  except BaseException:
    ckpts.close()
    raise

  lr_fn = learning_rate_schedule(config, t.learning_rate, len(videos), total_steps)
  p_state = replicate(state)
  del state
  writer = logs.MetricWriter(workdir, tensorboard=t.tensorboard)
  end_step = total_steps if t.stop_at_step <= 0 else min(total_steps, t.stop_at_step)
  progress = logs.Progress(start_step, total_steps)
  interval: list[dict[str, float]] = []
  pending: Optional[tuple[int, Metrics]] = None
  skipped = 0

  def collect(item: tuple[int, Metrics]) -> None:
    """Host copy of one step's metrics; reports a skipped (non-finite) step at once."""
    nonlocal skipped
    step, metrics = item
    row = {k: float(v) for k, v in jax.device_get(unreplicate(metrics)).items()}
    if row["train/finite"] < 1.0:
      skipped += 1
      _report_nonfinite(step, row, skipped, config)
    interval.append(row)

  augment = make_device_augment(config)
  logging.info("Augmentation: %s", "off" if not config.data.augment.enabled else
               "on the device" if augment else "on the host (input pipeline)")
  it = pipeline.train_iterator(videos, config.data, seed=config.seed, start_step=start_step,
                               device_augment=augment is not None)
  try:
    first = shard_batch(next(it), n_local) if start_step < end_step else None
    if first is not None:
      p_step, p_state, _ = fit_train_step(config, loss, lr_fn, p_state, first, dropout_rng,
                                          augment)
      progress.restart(compiled=jax.process_count() == 1)  # ahead-of-time: no compile left
    for step in range(start_step, end_step):
      batch, first = (first, None) if first is not None else (shard_batch(next(it), n_local),
                                                              None)
      p_state, metrics = p_step(p_state, batch, dropout_rng)
      # Fetch the previous step's metrics while this one runs (keeps the device busy).
      if pending is not None:
        collect(pending)
      pending = (step + 1, metrics)
      done = step + 1
      last = done == end_step
      if done % t.log_every_steps == 0 or last:
        collect(pending)
        pending = None
        timing = progress.update(done)
        mean = logs.mean_metrics(interval)
        interval = []
        mean["train/skipped_steps"] = float(skipped)
        writer.write_scalars(done, {**mean, "train/steps_per_sec": timing["steps_per_sec"]})
        if jax.process_index() == 0:
          logging.info("%s", progress.line(done, mean, timing, tuple(
              f"train/{name}" for name in loss.progress_parts + ("grad_norm", "lr"))))
      if (t.checkpoint_every_steps and done % t.checkpoint_every_steps == 0) or last:
        if pending is not None:  # Never save a state whose step was not checked.
          collect(pending)
          pending = None
        ckpts.save(done, unreplicate(p_state))
      if t.eval_every_steps and done % t.eval_every_steps == 0 and not last:
        result = run_evaluation(config, unreplicate(p_state), workdir, done, eval_model)
        writer.write_scalars(done, {f"eval/{k}": v for k, v in result["summary"].items()})
  finally:
    it.close()
    ckpts.close()
    writer.flush()

  state = jax.device_get(unreplicate(p_state))
  final = int(state.step)
  if final >= total_steps and t.eval_at_end:
    if agree(_eval_row(workdir, final) is None):
      result = run_evaluation(config, state, workdir, final, eval_model)
      writer.write_scalars(final, {f"eval/{k}": v for k, v in result["summary"].items()})
    table = summary_table(workdir, final) if jax.process_index() == 0 else None
    if table:
      print(f"{method_title(config)} evaluation ({config.data.dataset}, {workdir}):\n{table}",
            flush=True)
  elif final < total_steps:
    logging.info("Stopped at step %d of %d (config.train.stop_at_step); rerun the same command "
                 "to resume.", final, total_steps)
  writer.close()
  return state


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str,
                        step: Optional[int] = None) -> dict[str, Any]:
  """``--mode=eval``: restores the newest (or ``step``) checkpoint of ``workdir`` and evaluates it.

  Writes ``workdir/eval/eval_step{step}.json`` (process 0) and returns ``evaluate_dataset``'s
  result.
  """
  workdir = checkpoint.check_workdir(workdir)
  config = with_cache_dir(prepare_config(config), workdir)
  logs.quiet_library_logs()
  model, eval_model = build_models(config)
  ckpts = checkpoint.Checkpoints(os.path.join(workdir, checkpoint.CHECKPOINT_DIR),
                                 keep=config.train.keep_checkpoints)
  try:
    # The optimiser's schedule does not change the state's arrays: 1 video / 1 step will do.
    template = create_train_state(config, model, jax.random.PRNGKey(0), 1, 1,
                                  load_weights=False)
    state = ckpts.restore(template, step)
  finally:
    ckpts.close()
  step = int(state.step)
  result = run_evaluation(config, state, workdir, step, eval_model)
  if jax.process_index() == 0:
    print(f"{method_title(config)} evaluation of {workdir} step {step}:\n"
          f"{metrics_lib.format_table(result['rows'])}", flush=True)
  return result
