"""What a run directory allows: one run at a time (`locked`), and which config changes a resumed
run may make (`record_config`). The rules and the files: docs/training.md.

``workdir/run.lock`` holds an exclusive ``fcntl.flock`` while a ``--mode=train`` or ``--mode=eval``
process 0 works there (the OS releases it when the process dies); it also names the holder's pid,
host, mode and start time for the error another run gets. ``workdir/config_history.json`` lists
the config changes accepted on resume, with the step from which each holds.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import socket
import time
from typing import Any, Iterator, Optional

from absl import logging
import ml_collections

from lac_jax import checkpoint
from lac_jax import config as config_lib
from lac_jax import files

LOCK_FILE = "run.lock"
HISTORY_FILE = "config_history.json"

# Fields a resumed run may change: the checkpoint's arrays and the data of each step (which
# depend only on (seed, step)) stay valid. Dotted paths; one ending in '.' names a section.
RESUMABLE = (
  "train.",
  "eval.",
  "data.data_dir",
  "data.cache_dir",
  "data.num_workers",
  "data.prefetch",
  "model.trunk_chunk",
  "model.trunk_remat",
  "model.memory_budget_gb",
  "model.conv_grad",
)
# Read only when a run starts (the checkpoint holds the weights): a changed value is ignored, and
# config.json keeps the one the model was built with.
START_ONLY = ("model.backbone_weights", "model.require_backbone_weights")
# Resumable sections' fields that change the optimiser state's layout (the checkpoint would not
# restore): refused.
OPTIMISER_LAYOUT = ("train.optimizer",)
_ABSENT = "<absent>"


# ---------------------------------------------------------------------------------------------
# The lock.
# ---------------------------------------------------------------------------------------------


def _process_index() -> int:
  import jax  # pylint: disable=g-import-not-at-top  (after jax.distributed.initialize)

  return jax.process_index()


def _read_holder(fd: int) -> dict[str, Any]:
  os.lseek(fd, 0, os.SEEK_SET)
  text = os.read(fd, 4096).decode("utf-8", "replace")
  try:
    holder = json.loads(text) if text.strip() else {}
  except json.JSONDecodeError:
    return {}
  return holder if isinstance(holder, dict) else {}


def _describe(holder: dict[str, Any]) -> str:
  if not holder:
    return "another process"
  return (
    f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
    f"(--mode={holder.get('mode', '?')}, started {holder.get('started', '?')})"
  )


@contextlib.contextmanager
def locked(workdir: str, mode: str, create: bool = True) -> Iterator[None]:
  """Holds ``workdir``'s exclusive lock for the block, on process 0 only (the processes of one
  multi-process run share the workdir); ``create``: make ``workdir`` if missing (else a missing
  one is left to the caller's own error).

  Raises:
    ValueError: another live process holds it; names its pid, host, mode and start time.
  """
  if _process_index() != 0 or (not create and not os.path.isdir(workdir)):
    yield
    return
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, LOCK_FILE)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    unsupported = None
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise ValueError(
        f"--workdir {workdir} is in use by {_describe(_read_holder(fd))}: wait until it ends, "
        f"or use another --workdir (the lock is {path})"
      ) from None
    except OSError as e:  # a file system without locks (some network mounts): run unguarded
      unsupported = e
    if unsupported is not None:
      logging.warning(
        "%s: cannot lock (%s); make sure no other run uses this workdir", path, unsupported
      )
      yield
      return
    stale = _read_holder(fd)
    if stale:  # a clean exit empties the file: its holder died (the OS released its lock)
      logging.info(
        "Taking over %s from %s, which ended without releasing it", path, _describe(stale)
      )
    holder = {
      "pid": os.getpid(),
      "host": socket.gethostname(),
      "mode": mode,
      "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
    try:
      yield
    finally:
      os.ftruncate(fd, 0)
      fcntl.flock(fd, fcntl.LOCK_UN)
  finally:
    os.close(fd)


# ---------------------------------------------------------------------------------------------
# The config of a resumed run.
# ---------------------------------------------------------------------------------------------


def last_checkpoint_step(workdir: str) -> Optional[int]:
  """The newest finished checkpoint step in ``workdir/checkpoints`` (orbax names a finished step's
  folder by its number; one being written has a suffix), or None; creates nothing."""
  directory = os.path.join(workdir, checkpoint.CHECKPOINT_DIR)
  if not os.path.isdir(directory):
    return None
  steps = [
    int(n)
    for n in os.listdir(directory)
    if n.isdigit() and os.path.isdir(os.path.join(directory, n))
  ]
  return max(steps) if steps else None


def _flat(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """``{'section.field': JSON value}`` (tuples as lists, as config.json holds them)."""
  out: dict[str, Any] = {}

  def walk(values: Any, prefix: str) -> None:
    for key, value in values.items():
      if isinstance(value, dict):
        walk(value, f"{prefix}{key}.")
      else:
        out[prefix + key] = value

  walk(json.loads(json.dumps(files.json_safe(config.copy_and_resolve_references().to_dict()))), "")
  return out


def _refusal(field: str, old: Any, new: Any) -> bool:
  if field in START_ONLY:
    return False
  if field in OPTIMISER_LAYOUT:
    return True
  if field == "train.grad_clip_norm":  # clipping on <-> off changes the optimiser's layout
    return (
      isinstance(old, (int, float)) and isinstance(new, (int, float)) and ((old > 0) != (new > 0))
    )
  return not any(field == p or (p.endswith(".") and field.startswith(p)) for p in RESUMABLE)


def _show(value: Any) -> str:
  return value if value is _ABSENT else json.dumps(value)


def record_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Before a training run writes anything else: ``workdir/config.json`` for the tools, checked
  against the saved one when the workdir has a checkpoint to resume.

  A fresh run (no checkpoint) writes ``config`` (process 0). A resumed run refuses changes to
  the model, loss, data (except its paths and loader threads), seed and optimiser type; the
  accepted changes (``train.*``, ``eval.*``, ...: `RESUMABLE`) are appended to
  ``workdir/config_history.json`` with the checkpoint step they start from, and config.json
  then holds the new values. `START_ONLY` fields keep their saved values.

  Raises:
    ValueError: a refused change, listing every differing field ``old -> new``.
  """
  path = os.path.join(workdir, checkpoint.CONFIG_FILE)
  history_path = os.path.join(workdir, HISTORY_FILE)
  step = last_checkpoint_step(workdir)
  writer = _process_index() == 0
  if step is None or not os.path.isfile(path):
    if writer:
      if step is None and os.path.exists(history_path):  # a fresh start: no earlier changes
        os.remove(history_path)
      checkpoint.write_config(workdir, config)
    return
  try:
    saved = checkpoint.read_config(
      workdir, config_lib.saved_config_template, renamed=config_lib.RENAMED
    )
  except ValueError as e:
    raise ValueError(f"--workdir {workdir}: cannot check the resumed run's config: {e}") from None
  old, new = _flat(saved), _flat(config)
  changes = {
    k: (old.get(k, _ABSENT), new.get(k, _ABSENT))
    for k in sorted(old.keys() | new.keys())
    if old.get(k, _ABSENT) != new.get(k, _ABSENT)
  }
  refused = [k for k, (a, b) in changes.items() if _refusal(k, a, b)]
  if refused:
    diff = "; ".join(f"{k}: {_show(changes[k][0])} -> {_show(changes[k][1])}" for k in refused)
    raise ValueError(
      f"--workdir {workdir} holds a checkpoint (step {step}) of another config: {diff}. A "
      "resumed run may change train.*, eval.* and data paths only: pass the saved values "
      f"({path}) or use another --workdir"
    )
  ignored = [k for k in changes if k in START_ONLY]
  for k in ignored:
    logging.info(
      "config.%s: %s ignored on resume (only read when a run starts); the run keeps %s",
      k,
      _show(changes[k][1]),
      _show(changes[k][0]),
    )
  accepted = {k: {"old": a, "new": b} for k, (a, b) in changes.items() if k not in ignored}
  if not accepted or not writer:
    return
  logging.info(
    "Config changes from step %d on (recorded in %s): %s",
    step,
    history_path,
    "; ".join(f"{k}: {_show(v['old'])} -> {_show(v['new'])}" for k, v in accepted.items()),
  )
  history = []
  if os.path.isfile(history_path):
    history = list(files.read_json_object(history_path, history_path).get("config_history", []))
  history.append({"step": step, "time": time.strftime("%Y-%m-%d %H:%M:%S %z"), "changes": accepted})
  files.write_json(history_path, {"config_history": history})
  config = config.copy_and_resolve_references()
  with config.unlocked():
    for k in ignored:
      section, field = k.split(".", 1)
      config[section][field] = saved[section][field]
  checkpoint.write_config(workdir, config)


def check_free_space(directory: str, state: Any) -> None:
  """Process 0: raises OSError(ENOSPC) naming ``directory`` when its file system has less room
  than ``state``'s arrays take (a checkpoint's size, uncompressed). Orbax would fail in its
  background threads, with dozens of tracebacks, only after the run went on."""
  if _process_index() != 0:
    return
  import jax  # pylint: disable=g-import-not-at-top

  needed = sum(getattr(x, "nbytes", 0) for x in jax.tree.leaves(state))
  probe = directory
  while not os.path.isdir(probe) and os.path.dirname(probe) != probe:
    probe = os.path.dirname(probe)
  free = shutil.disk_usage(probe).free
  if free < needed:
    raise OSError(errno.ENOSPC, f"{free} bytes free, a checkpoint needs {needed}", directory)
