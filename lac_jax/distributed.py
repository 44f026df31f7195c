"""Several processes (multi-host): start-up, and ending every process when one fails.

`initialize` runs ``jax.distributed.initialize`` when the environment asks for it (explicit
``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID``, or a multi-task SLURM
/ Open MPI job, or always with ``mode='on'``) and starts a watchdog thread. A process that raises
reports the error (`report_failure`) and exits; the watchdogs end the others within
``POLL_SECONDS``. A killed process and the rest: docs/performance.md#several-processes.

A run that succeeds ends with `finish` (a barrier, then exit without JAX's shutdown). SIGTERM or
SIGINT to any process during training stops every process at the same step, checkpointed
(`lac_jax.preemption`); then the run ends as one that succeeds (status 0).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from typing import Any, Mapping, Optional

from absl import logging
import flax
import jax
import ml_collections
import numpy as np

ERROR_KEY = "lac_jax/failed_process"
POLL_SECONDS = 1.0
EXIT_STATUS = 1

_watchdog: Optional[tuple[threading.Thread, threading.Event]] = None


def multi_process_env() -> bool:
  """True when the environment describes several processes (explicit JAX variables, SLURM or
  Open MPI with more than one task)."""
  env = os.environ
  return (
    "JAX_COORDINATOR_ADDRESS" in env
    or int(env.get("SLURM_NTASKS", "1")) > 1
    or int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1
  )


def initialize(mode: str = "auto", heartbeat_timeout_s: int = 100) -> bool:
  """Calls ``jax.distributed.initialize`` as ``mode`` says (before any other JAX work).

  Args:
    mode: 'auto' (when `multi_process_env`), 'on' (always; JAX detects TPU pods, SLURM, Open
      MPI, k8s) or 'off'.
    heartbeat_timeout_s: a process silent this long is declared dead and the others end.
  Returns:
    Whether JAX's distributed runtime was initialised.
  """
  if mode not in ("auto", "on", "off"):
    raise ValueError(f"--distributed: expected auto, on or off, got {mode!r}")
  if heartbeat_timeout_s < 1:
    raise ValueError(f"--heartbeat_timeout_s: need >= 1, got {heartbeat_timeout_s}")
  if mode == "off" or (mode == "auto" and not multi_process_env()):
    return False
  env = os.environ
  kwargs = {"heartbeat_timeout_seconds": int(heartbeat_timeout_s)}
  # SIGTERM is handled by lac_jax.preemption (during training: checkpoint, then exit 0). JAX's
  # preemption service would install a C handler that only logs it, so that a SIGTERM outside
  # the training loop (start-up, evaluation) would never end the process.
  jax.config.update("jax_enable_preemption_service", False)
  if "JAX_COORDINATOR_ADDRESS" in env:
    missing = [k for k in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID") if k not in env]
    if missing:
      raise ValueError(
        f"JAX_COORDINATOR_ADDRESS is set but {missing} are not: set all three "
        "(see launch/gpu_cluster.sh)"
      )
    jax.distributed.initialize(
      env["JAX_COORDINATOR_ADDRESS"],
      num_processes=int(env["JAX_NUM_PROCESSES"]),
      process_id=int(env["JAX_PROCESS_ID"]),
      **kwargs,
    )
  else:
    jax.distributed.initialize(**kwargs)  # Cluster auto-detection.
  logging.info(
    "jax.distributed: process %d of %d, %d local / %d global devices; a process "
    "silent for %d s ends the run",
    jax.process_index(),
    jax.process_count(),
    jax.local_device_count(),
    jax.device_count(),
    heartbeat_timeout_s,
  )
  if jax.process_count() > 1:
    _start_watchdog()
  return True


def _client():
  from jax._src import distributed as jax_distributed  # pylint: disable=g-import-not-at-top

  return jax_distributed.global_state.client


def report_failure(message: str) -> None:
  """Tells the other processes that this one failed with ``message`` (best effort)."""
  client = _client()
  if client is None:
    return
  try:
    client.key_value_set(
      ERROR_KEY, f"process {jax.process_index()}: {message}", allow_overwrite=True
    )
  except Exception:  # pylint: disable=broad-except  (the service may be gone already)
    pass


def exit_after_failure(message: str) -> None:
  """Reports ``message``, flushes the output and exits this process at once (status 1),
  skipping JAX's shutdown barrier, which would wait for the others for minutes."""
  report_failure(message)
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(EXIT_STATUS)  # pylint: disable=protected-access


def _watch(stop: threading.Event) -> None:
  client = _client()
  while not stop.wait(POLL_SECONDS):
    try:
      failed = client.key_value_try_get(ERROR_KEY)
    except Exception:  # pylint: disable=broad-except  (not set yet: NOT_FOUND)
      continue
    if failed and not stop.is_set():
      print(
        f"lac_jax: error: {failed}; stopping process {jax.process_index()} too",
        file=sys.stderr,
        flush=True,
      )
      sys.stdout.flush()
      os._exit(EXIT_STATUS)  # pylint: disable=protected-access


def _start_watchdog() -> None:
  global _watchdog
  if _watchdog is not None:
    return
  stop = threading.Event()
  thread = threading.Thread(target=_watch, args=(stop,), name="lac_jax_watchdog", daemon=True)
  thread.start()
  _watchdog = (thread, stop)
  atexit.register(_stop_watchdog)  # Runs before JAX's shutdown (registered earlier).


def _stop_watchdog() -> None:
  global _watchdog
  if _watchdog is not None:
    thread, stop = _watchdog
    stop.set()
    thread.join(timeout=5 * POLL_SECONDS)
    _watchdog = None


def finish(timeout_s: int = 600) -> None:
  """Ends a multi-process run that succeeded: all processes meet at a barrier, then exit
  (status 0) without JAX's distributed shutdown, whose coordination-service teardown
  (jaxlib 0.10.2) sometimes aborts on a pending request after all work is done. Process 0,
  which hosts the service, leaves last. A no-op in a single-process run.
  """
  if not is_multi_process():
    return
  _stop_watchdog()
  logging.flush()
  sys.stdout.flush()
  sys.stderr.flush()
  _client().wait_at_barrier("lac_jax_finish", int(timeout_s * 1000))
  if jax.process_index() == 0:
    time.sleep(1.0)  # the others leave first
  os._exit(0)  # pylint: disable=protected-access


def peer_lost(error: BaseException) -> bool:
  """Whether ``error`` is a collective that failed because another process went away."""
  text = str(error)
  return any(
    s in text
    for s in (
      "Connection closed by peer",
      "Connection reset by peer",
      "unhealthy",
      "detected fatal errors",
    )
  )


def is_multi_process() -> bool:
  """Whether this is one of several processes (without initialising anything)."""
  return _client() is not None and jax.process_count() > 1


# ------------------------------------------------------------------------------------------
# Data parallelism: replicated states, sharded batches, decisions every process shares.


def shard_batch(batch: Mapping[str, np.ndarray], num_devices: int) -> dict[str, np.ndarray]:
  """``[B, ...]`` -> ``[num_devices, B / num_devices, ...]`` for the model inputs."""
  out = {}
  keys = ("frames", "steps", "mask", "lengths") + (
    ("source_hw", "slot") if "source_hw" in batch else ()
  )
  for key in keys:
    x = batch[key]
    if x.shape[0] % num_devices:
      raise ValueError(
        f"batch of {x.shape[0]} videos does not split over {num_devices} local devices"
      )
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


def all_agree(flag: bool) -> bool:
  """Whether ``flag`` is True on every process (a collective: all processes must call it).

  For a decision each process makes from what it read itself, e.g. whether a checkpoint is
  intact, so that all take the same branch and none goes on with data another found damaged.
  """
  if jax.process_count() == 1:
    return bool(flag)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  return bool(np.all(multihost_utils.process_allgather(np.int32(bool(flag)))))


def barrier(name: str) -> None:
  """Waits until every process reaches the barrier ``name`` (a no-op with one process)."""
  if jax.process_count() == 1:
    return
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  multihost_utils.sync_global_devices(name)


def check_devices(config: ml_collections.ConfigDict) -> tuple[int, int]:
  """(global devices, local devices); the global batch must divide by the global count."""
  n_global, n_local = jax.device_count(), jax.local_device_count()
  batch = int(config.data.batch_size)
  if batch < 1 or batch % n_global:
    raise ValueError(
      f"config.data.batch_size={batch} (the global batch, in videos) must be a positive "
      f"multiple of the number of devices, {n_global} ({jax.process_count()} process(es) x "
      f"{n_local} local {jax.default_backend()} device(s)); e.g. --config.data.batch_size="
      f"{max(1, batch // n_global + 1) * n_global}"
    )
  return n_global, n_local
