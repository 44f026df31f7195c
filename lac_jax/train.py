"""Training: state, optimiser, the data-parallel step and the loop with checkpoints and logs.

``train_and_evaluate(config, workdir)`` is ``--mode=train``: videos -> resumable batch iterator
-> pmapped `train_step` (the loss, ``losses.build(config.loss)``, is passed in) -> logs ->
orbax checkpoints -> evaluation -> the paper's table, untrained vs trained. A run resumed from
a checkpoint ends with the parameters of an uninterrupted one: the data and the dropout key of
step ``s`` depend only on ``(seed, s)``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Optional

from absl import logging
from flax.training import train_state
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from lac_jax import checkpoint
from lac_jax import config as config_lib
from lac_jax import evaluate as evaluate_lib
from lac_jax import logs
from lac_jax import losses
from lac_jax import memory as memory_lib
from lac_jax import preemption
from lac_jax import tables
from lac_jax import workdir as workdir_lib
from lac_jax import data as data_lib
from lac_jax.data import pipeline
from lac_jax.config import check_backbone_weights, prepare_config
from lac_jax.data.device_augment import make_device_augment
from lac_jax.distributed import agree, check_devices, replicate, shard_batch, unreplicate
from lac_jax.models import encoder as encoder_lib
from lac_jax.optim import TRUNK, learning_rate_schedule, make_optimizer, num_train_steps

AXIS = "batch"  # pmap axis name (also given to BatchNorm as bn_axis_name).

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


def build_models(
  config: ml_collections.ConfigDict,
) -> tuple[encoder_lib.LACEncoder, encoder_lib.LACEncoder]:
  """(training model with ``bn_axis_name='batch'``, evaluation model without)."""
  eval_model = encoder_lib.build_encoder(config.model)
  return eval_model.clone(bn_axis_name=AXIS), eval_model


def create_train_state(
  config: ml_collections.ConfigDict,
  model: encoder_lib.LACEncoder,
  rng: jax.Array,
  num_videos: int,
  total_steps: int,
  load_weights: bool = True,
  loss: Optional[losses.Loss] = None,
) -> TrainState:
  """Initial state: encoder variables (ImageNet trunk if ``model.backbone_weights``), the loss's
  parameters, optimiser state. ``load_weights=False`` skips the weight file (restore targets).
  ``loss``: default ``losses.build(config.loss)``."""
  loss = losses.build(config.loss) if loss is None else loss
  num_frames, size = config.data.sampling.num_frames, config.data.image_size
  init_model = model.clone(bn_axis_name=None)  # Init runs outside pmap.
  variables = encoder_lib.init_variables(
    init_model,
    rng,
    (1, num_frames, size, size, 3),
    config.model.backbone_weights if load_weights else None,
  )
  params = {"encoder": variables["params"]}
  if loss.params_key:
    params[loss.params_key] = loss.init_params(num_frames // config.model.num_context)
  tx = make_optimizer(config, num_videos, total_steps, loss)
  return TrainState.create(
    apply_fn=model.apply,
    params=params,
    tx=tx,
    batch_stats=variables.get("batch_stats", {}),
    nonfinite_steps=jnp.zeros((), jnp.int32),
  )


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


def train_step(
  state: TrainState,
  batch: Mapping[str, jax.Array],
  rng: jax.Array,
  *,
  loss: losses.Loss,
  num_context: int = 1,
  lr_fn: Optional[optax.Schedule] = None,
  reduce: Callable[[Any], Any] = _identity,
  fixed_trunk_stats: bool = False,
  augment: Optional[Callable[[Mapping[str, jax.Array], jax.Array], jax.Array]] = None,
) -> tuple[TrainState, Metrics]:
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
      frames.reshape((b * 2, t) + frames.shape[3:]),
      mask.reshape(b * 2, t),
      train=True,
      rngs={"dropout": rng},
      mutable=["batch_stats"],
    )
    z = z.reshape((b, 2) + z.shape[1:])
    value, parts = loss(
      params.get(loss.params_key), z, steps, step_mask, lengths=batch.get("lengths")
    )
    return value, (parts, updates.get("batch_stats", state.batch_stats))

  (_, (parts, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  grads, parts, batch_stats = reduce((grads, parts, batch_stats))
  if fixed_trunk_stats and TRUNK in batch_stats:
    batch_stats = {**batch_stats, TRUNK: state.batch_stats[TRUNK]}
  finite = jnp.isfinite(parts["loss"]) & _all_finite(grads)
  new = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  keep = lambda n, o: jax.tree.map(lambda x, y: jnp.where(finite, x, y), n, o)
  new = new.replace(
    params=keep(new.params, state.params),
    opt_state=keep(new.opt_state, state.opt_state),
    batch_stats=keep(new.batch_stats, state.batch_stats),
    nonfinite_steps=state.nonfinite_steps + (~finite).astype(jnp.int32),
  )
  out = {f"train/{k}": v for k, v in parts.items()}
  out["train/grad_norm"] = optax.tree.norm(grads["encoder"])
  out["train/finite"] = finite.astype(jnp.float32)
  for name, value in loss.log_scalars(state.params.get(loss.params_key)).items():
    out[f"train/{name}"] = value
  if lr_fn is not None:
    out["train/lr"] = jnp.asarray(lr_fn(state.step), jnp.float32)
  return new, out


def make_parallel_train_step(
  loss: losses.Loss,
  num_context: int = 1,
  lr_fn: Optional[optax.Schedule] = None,
  donate: Optional[bool] = None,
  fixed_trunk_stats: bool = False,
  augment: Optional[Callable] = None,
) -> Callable:
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
    return train_step(
      state,
      batch,
      rng,
      loss=loss,
      num_context=num_context,
      lr_fn=lr_fn,
      reduce=lambda tree: jax.lax.pmean(tree, AXIS),
      fixed_trunk_stats=fixed_trunk_stats,
      augment=augment,
    )

  if donate is None:
    donate = jax.default_backend() != "cpu"
  return jax.pmap(
    per_device, axis_name=AXIS, in_axes=(0, 0, None), donate_argnums=(0,) if donate else ()
  )


def fit_train_step(
  config: ml_collections.ConfigDict,
  loss: losses.Loss,
  lr_fn: Optional[optax.Schedule],
  p_state: TrainState,
  batch: Mapping[str, np.ndarray],
  rng: jax.Array,
  augment: Optional[Callable] = None,
) -> tuple[Callable, TrainState, memory_lib.Plan]:
  """The compiled parallel step for the trunk setting that fits the memory budget
  (`memory.fit_step`); ``augment``: `make_device_augment`'s function or None."""
  m = config.model

  def make_step(chunk: int, remat: bool) -> tuple[encoder_lib.LACEncoder, Callable]:
    cfg = config.copy_and_resolve_references()
    cfg.model.trunk_chunk, cfg.model.trunk_remat = chunk, remat
    return build_models(cfg)[0], make_parallel_train_step(
      loss, m.num_context, lr_fn, fixed_trunk_stats=m.backbone_mode != "train", augment=augment
    )

  return memory_lib.fit_step(m, make_step, p_state, batch, rng)


# ---------------------------------------------------------------------------------------------
# The loop.
# ---------------------------------------------------------------------------------------------


def _report_nonfinite(
  step: int, row: Mapping[str, float], skipped: int, config: ml_collections.ConfigDict
) -> None:
  parts = ", ".join(f"{k.split('/')[-1]}={v:.6g}" for k, v in sorted(row.items()))
  message = (
    f"step {step}: non-finite loss or gradient ({parts}); the update was not applied "
    f"({skipped} step(s) skipped so far)"
  )
  if config.train.on_nonfinite == "stop":
    raise FloatingPointError(message + "; stopping (config.train.on_nonfinite='stop')")
  logging.warning("%s", message)
  if skipped > config.train.max_nonfinite_steps:
    raise FloatingPointError(
      f"{skipped} steps skipped for non-finite values, more than "
      f"config.train.max_nonfinite_steps={config.train.max_nonfinite_steps}; last: {message}"
    )


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains as ``config`` says, in ``workdir`` (resuming from its last checkpoint).

  Returns the final (unreplicated) state. Prints the evaluation table (untrained vs trained
  when ``train.eval_at_start``) on process 0 and writes it to ``workdir/eval/summary.json``.
  One run at a time per workdir, and a resumed run's config changes are checked and recorded
  (`lac_jax.workdir`).
  """
  workdir = checkpoint.check_workdir(workdir)
  config = data_lib.with_cache_dir(prepare_config(config), workdir)
  with workdir_lib.locked(workdir, "train"):
    return _train_and_evaluate(config, workdir)


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """`train_and_evaluate` under the workdir's lock (``config`` prepared)."""
  logs.quiet_library_logs()
  n_global, n_local = check_devices(config)
  os.makedirs(workdir, exist_ok=True)
  # config.json (for lac_jax.embed / align / retrieve), checked against a resumed run's.
  workdir_lib.record_config(workdir, config)
  tc = config.train
  logging.info(
    "Training in %s on %d device(s) (%d local, %s), %d process(es)",
    workdir,
    n_global,
    n_local,
    jax.default_backend(),
    jax.process_count(),
  )

  with (
    checkpoint.Checkpoints(
      os.path.join(workdir, checkpoint.CHECKPOINT_DIR), keep=tc.keep_checkpoints
    ) as ckpts,
    logs.MetricWriter(workdir, tensorboard=tc.tensorboard) as writer,
  ):
    # Data, model, loss and state (restored when the workdir has a checkpoint).
    latest = ckpts.latest_step()
    if latest is None:  # The weights are read only when a run starts.
      check_backbone_weights(config)
    videos = data_lib.load_split(
      config.data, "train", config.data.action or None, config.data.image_size
    )
    data_lib.write_skipped(config.data, workdir)
    total_steps = num_train_steps(config, len(videos))
    model, eval_model = build_models(config)
    init_rng, dropout_rng = jax.random.split(jax.random.PRNGKey(config.seed))
    loss = losses.build(config.loss)
    state = create_train_state(
      config, model, init_rng, len(videos), total_steps, load_weights=latest is None, loss=loss
    )
    if latest is not None:
      state = ckpts.restore(state)
      logging.info("Resuming from step %d of %d", int(state.step), total_steps)
    writer.truncate(int(state.step))  # a killed run's redone steps are not logged twice
    per_epoch = pipeline.batches_per_epoch(
      len(videos), config.data.batch_size, config.data.drop_last
    )
    logging.info(
      "%d training videos, global batch %d, %d steps (%.1f epochs)",
      len(videos),
      config.data.batch_size,
      total_steps,
      total_steps / per_epoch,
    )

    def evaluate(state: TrainState, step: int) -> None:
      result = evaluate_lib.run_evaluation(config, eval_variables(state), workdir, step, eval_model)
      writer.write_scalars(step, {f"eval/{k}": v for k, v in result["summary"].items()})

    if (
      tc.eval_at_start and int(state.step) == 0 and agree(evaluate_lib.eval_row(workdir, 0) is None)
    ):
      evaluate(state, 0)
    # The steps.
    state = _train_steps(
      config, loss, state, videos, total_steps, dropout_rng, ckpts, writer, evaluate
    )
    # The closing evaluation and table.
    final = int(state.step)
    if final >= total_steps and tc.eval_at_end:
      if agree(evaluate_lib.eval_row(workdir, final) is None):
        evaluate(state, final)
      table = evaluate_lib.summary_table(workdir, final) if jax.process_index() == 0 else None
      if table:
        title = f"{config_lib.method_title(config)} evaluation"
        print(f"{title} ({config.data.dataset}, {workdir}):\n{table}", flush=True)
    elif final < total_steps and 0 < tc.stop_at_step <= final:  # (else preempted: logged)
      logging.info(
        "Stopped at step %d of %d (config.train.stop_at_step); rerun the same command to resume.",
        final,
        total_steps,
      )
  return state


def _train_steps(
  config: ml_collections.ConfigDict,
  loss: losses.Loss,
  state: TrainState,
  videos: list,
  total_steps: int,
  dropout_rng: jax.Array,
  ckpts: checkpoint.Checkpoints,
  writer: logs.MetricWriter,
  evaluate: Callable[[TrainState, int], None],
) -> TrainState:
  """Runs steps ``state.step`` .. the end (or ``train.stop_at_step``, or the step at which a
  SIGTERM / SIGINT stops every process: `lac_jax.preemption`): the input pipeline, the pmapped
  step, logs, checkpoints, periodic evaluations. Returns the unreplicated state."""
  tc = config.train
  n_local = jax.local_device_count()
  start_step = int(state.step)
  end_step = total_steps if tc.stop_at_step <= 0 else min(total_steps, tc.stop_at_step)
  lr_fn = learning_rate_schedule(config, tc.learning_rate, len(videos), total_steps)
  p_state = replicate(state)
  del state
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
  logging.info(
    "Augmentation: %s",
    "off"
    if not config.data.augment.enabled
    else "on the device"
    if augment
    else "on the host (input pipeline)",
  )
  # SIGTERM / SIGINT: finish the step, checkpoint it and return (lac_jax.preemption).
  with (
    preemption.StopRequest() as stop_request,
    pipeline.train_iterator(
      videos,
      config.data,
      seed=config.seed,
      start_step=start_step,
      device_augment=augment is not None,
    ) as it,
  ):
    first = shard_batch(next(it), n_local) if start_step < end_step else None
    if first is not None:
      p_step, p_state, _ = fit_train_step(config, loss, lr_fn, p_state, first, dropout_rng, augment)
      progress.restart(compiled=jax.process_count() == 1)  # ahead-of-time: no compile left
    for step in range(start_step, end_step):
      batch, first = (first, None) if first is not None else (shard_batch(next(it), n_local), None)
      p_state, metrics = p_step(p_state, batch, dropout_rng)
      # Fetch the previous step's metrics while this one runs (keeps the device busy).
      if pending is not None:
        collect(pending)
      pending = (step + 1, metrics)
      done = step + 1
      preempted = stop_request.should_stop()  # the same answer on every process
      last = done == end_step or preempted
      if done % tc.log_every_steps == 0 or last:
        collect(pending)
        pending = None
        timing = progress.update(done)
        mean = logs.mean_metrics(interval)
        interval = []
        mean["train/skipped_steps"] = float(skipped)
        writer.write_scalars(done, {**mean, "train/steps_per_sec": timing["steps_per_sec"]})
        if jax.process_index() == 0:
          logging.info(
            "%s",
            progress.line(
              done,
              mean,
              timing,
              tuple(f"train/{name}" for name in loss.progress_parts + ("grad_norm", "lr")),
            ),
          )
      if (tc.checkpoint_every_steps and done % tc.checkpoint_every_steps == 0) or last:
        if pending is not None:  # Never save a state whose step was not checked.
          collect(pending)
          pending = None
        host_state = unreplicate(p_state)
        workdir_lib.check_free_space(ckpts.directory, host_state)  # before orbax's threads fail
        ckpts.save(done, host_state)
      if preempted:
        ckpts.wait()  # still under the handlers: a second signal cannot cut the save short
        logging.info("preempted at step %d: checkpoint saved", done)
        if jax.process_index() == 0:
          print(f"preempted at step {done}: checkpoint saved", flush=True)
        break
      if tc.eval_every_steps and done % tc.eval_every_steps == 0 and not last:
        evaluate(unreplicate(p_state), done)
  writer.flush()
  return jax.device_get(unreplicate(p_state))


def evaluate_checkpoint(
  config: ml_collections.ConfigDict, workdir: str, step: Optional[int] = None
) -> dict[str, Any]:
  """``--mode=eval``: restores the newest (or ``step``) checkpoint of ``workdir`` and evaluates it.

  Writes ``workdir/eval/eval_step{step}.json`` (process 0) and returns ``evaluate_dataset``'s
  result.
  """
  workdir = checkpoint.check_workdir(workdir)
  config = data_lib.with_cache_dir(prepare_config(config), workdir)
  with workdir_lib.locked(workdir, "eval", create=False):  # it writes workdir/eval
    return _evaluate_checkpoint(config, workdir, step)


def _evaluate_checkpoint(
  config: ml_collections.ConfigDict, workdir: str, step: Optional[int]
) -> dict[str, Any]:
  """`evaluate_checkpoint` under the workdir's lock (``config`` prepared)."""
  logs.quiet_library_logs()
  model, eval_model = build_models(config)
  with checkpoint.Checkpoints(
    os.path.join(workdir, checkpoint.CHECKPOINT_DIR), keep=config.train.keep_checkpoints
  ) as ckpts:
    # The optimiser's schedule does not change the state's arrays: 1 video / 1 step will do.
    template = create_train_state(config, model, jax.random.PRNGKey(0), 1, 1, load_weights=False)
    state = ckpts.restore(template, step, move_damaged=False)  # (eval leaves the folder as is)
  step = int(state.step)
  result = evaluate_lib.run_evaluation(config, eval_variables(state), workdir, step, eval_model)
  if jax.process_index() == 0:
    print(
      f"{config_lib.method_title(config)} evaluation of {workdir} step {step}:\n"
      f"{tables.format_table(result['rows'])}",
      flush=True,
    )
  return result
