"""Checkpoints of the training state with orbax's `CheckpointManager` (``workdir/checkpoints``).

The state is saved as its flax state dict (nested dicts of host NumPy arrays: params, batch
statistics, optimiser state, gap penalties, step, skipped-step counter), so a checkpoint is
independent of the number of devices it was written from, and is restored into a template
state built from the same config (`restore`). Every process calls `save`; orbax writes the
host arrays once, from process 0. Orbax keeps no checksum of the array data, so each save also
stores a sha256 per array, and a restore that meets a damaged, truncated or unreadable
checkpoint reports it and falls back to the newest intact one (`Checkpoints`).
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Any, Callable, Mapping, Optional, Union

from absl import logging
from etils import epath
import jax
from flax import serialization
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from lac_jax import distributed
from lac_jax import files

CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.json"  # the resolved config of the run, written when training starts
STATE_ITEM = "default"  # orbax's name for a lone item: the only one before checksums were saved
CHECKSUMS_ITEM = "checksums"
CHECKSUM_KEY = "sha256"  # in the checksums item: {array path: array_checksum}
DAMAGED_DIR = "damaged"  # under checkpoints/: damaged step folders (orbax lists no such name)


def check_workdir(workdir: str) -> str:
  """The absolute ``workdir``; raises if it is an existing file (a directory is created later).

  Raises:
    NotADirectoryError: ``workdir`` (or a parent of it) exists and is not a directory.
  """
  if not workdir:
    raise ValueError("--workdir: expected a directory path, got an empty string")
  path = os.path.abspath(os.path.expanduser(str(workdir)))
  probe = path
  while probe and not os.path.exists(probe):
    parent = os.path.dirname(probe)
    if parent == probe:
      break
    probe = parent
  if os.path.exists(probe) and not os.path.isdir(probe):
    raise NotADirectoryError(
      f"--workdir {workdir!r}: {probe!r} is a file, expected a directory (the run's "
      "checkpoints, metrics and evaluation results go there; it is created if missing)"
    )
  return path


def write_config(workdir: str, config: ml_collections.ConfigDict) -> str:
  """Writes the resolved ``config`` to ``workdir/config.json`` (atomically); returns the path.

  Tools that use a trained workdir (``lac_jax.embed``, ``align``, ``retrieve``) rebuild the
  model from it with `read_config`.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  files.write_json(path, config.copy_and_resolve_references().to_dict())
  return path


def _merge(target: ml_collections.ConfigDict, values: dict, where: str) -> None:
  for key, value in values.items():
    name = f"{where}.{key}" if where else key
    if key not in target:
      raise ValueError(
        f"field {name!r} is not in this version's config (the run was written "
        "by another version of lac_jax?); pass the training config with --config"
      )
    if isinstance(target[key], ml_collections.ConfigDict) and isinstance(value, dict):
      _merge(target[key], value, name)
      continue
    if isinstance(value, list):  # JSON has no tuples; config sequences are tuples.
      value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
    try:
      target[key] = value
    except (TypeError, ValueError) as e:
      raise ValueError(f"field {name!r}: cannot set {value!r}: {e}") from None


def _rename(values: dict, renamed: Mapping[str, str]) -> None:
  """Moves each saved field ``old`` (a dotted path) to ``new``, in place."""
  for old, new in renamed.items():
    *head, last = old.split(".")
    section = values
    for key in head:
      section = section.get(key) if isinstance(section, dict) else None
    if not isinstance(section, dict) or last not in section:
      continue
    value = section.pop(last)
    *head, last = new.split(".")
    section = values
    for key in head:
      section = section.setdefault(key, {})
    section[last] = value


def read_config(
  workdir: str,
  template: Union[ml_collections.ConfigDict, Callable[[dict], ml_collections.ConfigDict]],
  renamed: Optional[Mapping[str, str]] = None,
) -> ml_collections.ConfigDict:
  """The config saved in ``workdir/config.json``, merged into a copy of ``template`` (or of
  ``template(values)``, the template for the saved values, e.g. with their loss's fields).
  ``renamed``: ``{old: new}`` dotted paths of fields that moved since older runs were saved.

  Raises:
    FileNotFoundError: no ``config.json`` (a workdir written before configs were saved): the
      message says to pass ``--config``.
    ValueError: the file is not valid JSON or has a field the template lacks, naming it.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(
      f"{path} not found (runs trained before lac_jax saved its config there have none): "
      "pass the config the run was trained with, e.g. --config=configs/synthetic.py"
    )
  values = files.read_json_object(path, path)
  _rename(values, renamed or {})
  if callable(template):
    template = template(values)
  config = template.copy_and_resolve_references()
  try:
    _merge(config, values, "")
  except ValueError as e:
    raise ValueError(f"{path}: {e}") from None
  return config


class DamagedCheckpoint(Exception):
  """A checkpoint that cannot be read or whose arrays differ from their saved checksums."""


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  """Nested dicts -> ``{'a/b/c': leaf}``; empty dicts and None (no arrays) are left out."""
  if isinstance(tree, Mapping):
    out: dict[str, Any] = {}
    for key, value in tree.items():
      out.update(_flatten(value, f"{prefix}/{key}" if prefix else str(key)))
    return out
  return {} if tree is None else {prefix: tree}


def _map_leaves(fn: Callable[[str, Any], Any], tree: Any, prefix: str = "") -> Any:
  """Nested dicts with ``fn(path, leaf)`` for each leaf (paths as in `_flatten`)."""
  if isinstance(tree, Mapping):
    return {
      key: _map_leaves(fn, value, f"{prefix}/{key}" if prefix else str(key))
      for key, value in tree.items()
    }
  return fn(prefix, tree) if tree is not None else None


def _saved_dtype(meta: Any) -> Optional[np.dtype]:
  dtype = getattr(meta, "dtype", None)
  return None if dtype is None else np.dtype(dtype)


def _check_fits(saved: dict[str, Any], want: dict[str, Any], where: str) -> None:
  """Raises ValueError naming the first array whose path or shape differs between the saved
  tree (``saved``: flat orbax metadata) and the template (``want``: flat arrays). A dtype may
  differ (e.g. a step saved as int32, a Python int in a new state): it is cast, as orbax does."""
  problem = None
  for path, leaf in want.items():
    shape = np.shape(leaf)
    if path not in saved:
      problem = f"the config's state has {path} {list(shape)}, the checkpoint not"
    elif tuple(getattr(saved[path], "shape", ()) or ()) != shape:
      problem = (
        f"{path} has shape {list(saved[path].shape)} in the checkpoint, {list(shape)} "
        "in the config's state"
      )
    if problem:
      break
  extra = sorted(set(saved) - set(want))
  if problem is None and extra:
    problem = f"the checkpoint has {extra[0]}, which the config's state lacks"
  if problem:
    raise ValueError(
      f"Checkpoint {where} does not match the state built from the config (was "
      f"it written with another model/loss/data config?): {problem}"
    )


def _cast_like(x: Any, like: Any) -> Any:
  """``x`` as the type of ``like``: a Python scalar, or an array of its dtype."""
  if isinstance(like, (bool, int, float, complex)):
    return type(like)(np.asarray(x).item())
  return np.asarray(x, dtype=np.asarray(like).dtype)


def array_checksum(x: Any) -> str:
  """sha256 (hex) of an array's dtype, shape and bytes (``x``: any shape and dtype, or a
  Python scalar, which is hashed as ``np.asarray(x)``)."""
  a = np.ascontiguousarray(np.asarray(x))
  digest = hashlib.sha256(f"{a.dtype.str} {a.shape} ".encode())
  digest.update(a.reshape(-1).view(np.uint8))  # bytes of any dtype (bfloat16 has no buffer code)
  return digest.hexdigest()


def _quiet_closed_loop_reports() -> None:
  """Drops, from now on, the "RuntimeError: Event loop is closed" reports that follow a failed
  read: orbax closes its event loop at the first error while tensorstore still completes the
  restore's other reads, whose callbacks then find the loop closed (harmless; each printed a
  traceback on stderr, dozens after the warning that named the damaged checkpoint)."""
  previous = sys.unraisablehook
  if getattr(previous, "lac_jax_quiet", False):
    return

  def hook(unraisable: Any) -> None:
    error = unraisable.exc_value
    if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
      previous(unraisable)

  hook.lac_jax_quiet = True  # type: ignore[attr-defined]
  sys.unraisablehook = hook


def _first_line(error: BaseException, limit: int = 300) -> str:
  text = (str(error).strip().splitlines() or [type(error).__name__])[0]
  return text if len(text) <= limit else text[:limit] + "..."


class Checkpoints:
  """Saves and restores training states under ``directory``, keeping the last ``keep``.

  Each step's folder holds two orbax items: ``default`` (the state dict; checkpoints written
  before checksums have only this one) and ``checksums`` (JSON: `array_checksum` of every
  array, keyed by its path in the state dict), written by the same save, so a step folder that
  orbax lists as complete has both. `restore` checks the saved tree against the template, reads
  the arrays and checks them against their checksums; a damaged or unreadable newest checkpoint
  is reported and moved to ``directory/damaged/<step>``, and the newest intact one is restored.

  Args:
    directory: e.g. ``workdir/checkpoints`` (created on first save).
    keep: number of checkpoints kept (older ones are deleted); None keeps all.
  """

  def __init__(self, directory: str, keep: Optional[int] = 3):
    if keep is not None and keep < 1:
      raise ValueError(f"config.train.keep_checkpoints: need >= 1, got {keep}")
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    handlers = {
      STATE_ITEM: ocp.StandardCheckpointHandler(),
      CHECKSUMS_ITEM: ocp.JsonCheckpointHandler(),
    }
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)
    self._reader = ocp.StandardCheckpointHandler()  # reads one step's state item (`restore`)

  def latest_step(self) -> Optional[int]:
    """The step of the newest complete checkpoint (intact or not), or None."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: Any) -> None:
    """Saves ``state`` (a single-copy pytree: unreplicate pmapped states first) as ``step``,
    with the checksum of each array.

    Writing continues in the background; `wait` or `close` finish it. Saving a step that
    already exists is a no-op.
    """
    if step in self._manager.all_steps():
      return
    host = jax.device_get(serialization.to_state_dict(state))
    # Only the primary process writes the JSON item: the others skip the hashing.
    sums = (
      {path: array_checksum(x) for path, x in _flatten(host).items()}
      if jax.process_index() == 0
      else {}
    )
    args = ocp.args.Composite(
      **{
        STATE_ITEM: ocp.args.StandardSave(host),
        CHECKSUMS_ITEM: ocp.args.JsonSave({CHECKSUM_KEY: sums}),
      }
    )
    self._manager.save(int(step), args=args, force=True)

  def restore(self, template: Any, step: Optional[int] = None, *, move_damaged: bool = True) -> Any:
    """``template`` with every array replaced by the checkpoint's: the newest intact one if
    ``step`` is None (a damaged newer one is reported with a warning and, with
    ``move_damaged``, moved to ``directory/damaged/``), else exactly ``step``.

    Every process must call it (the processes agree on which checkpoint is intact).

    Raises:
      FileNotFoundError: there is no checkpoint (or not ``step``).
      ValueError: the checkpoint does not fit the template (different config), naming both;
        or no intact checkpoint is left (or ``step`` is damaged), naming the folders.
    """
    target = jax.device_get(serialization.to_state_dict(template))
    step, restored = self._restore(target, step, move_damaged)
    logging.info("Restored checkpoint %s/%d", self.directory, step)
    return serialization.from_state_dict(template, restored)

  def read(self, step: Optional[int] = None) -> tuple[int, Any]:
    """``(step, saved state dict)`` (nested dicts of NumPy arrays) without a template, for
    tools: the newest intact checkpoint if ``step`` is None (damaged ones are reported, never
    moved), else exactly ``step``. Raises as `restore` does."""
    return self._restore(None, step, move_damaged=False)

  def restore_raw(self, step: Optional[int] = None) -> Any:
    """The saved state dict as nested dicts of NumPy arrays, without a template (inspection)."""
    return self.read(step)[1]

  def _restore(
    self, target: Optional[dict], step: Optional[int], move_damaged: bool
  ) -> tuple[int, Any]:
    """Tries ``step`` (or every step, newest first) until one reads intact on every process."""
    steps = self.all_steps()
    if (step is None and not steps) or (step is not None and int(step) not in steps):
      raise FileNotFoundError(
        f"No checkpoint{'' if step is None else f' for step {step}'} in {self.directory} "
        f"(steps present: {steps}); train first with --mode=train and the same --workdir"
      )
    candidates = [int(step)] if step is not None else steps[::-1]
    damaged: list[tuple[int, str]] = []
    for candidate in candidates:
      try:
        restored, reason = self._read_verified(candidate, target), ""
      except DamagedCheckpoint as e:
        restored, reason = None, str(e)
      # The same decision on every process: intact only if every process read it intact.
      if distributed.all_agree(restored is not None):
        break
      reason = reason or "damaged or unreadable on another process"
      logging.warning("Checkpoint %s/%d is damaged: %s", self.directory, candidate, reason)
      damaged.append((candidate, reason))
    else:
      listed = "; ".join(f"{self.directory}/{s}: {r}" for s, r in damaged)
      if step is not None:
        raise ValueError(f"Checkpoint {self.directory}/{step} is damaged: {damaged[0][1]}")
      raise ValueError(
        f"No intact checkpoint in {self.directory}, every one is damaged ({listed}); move "
        "them out of the way to train from the start"
      )
    if damaged and move_damaged:
      self._move_aside([s for s, _ in damaged])
    if damaged:
      logging.warning(
        "Restoring the newest intact checkpoint, %s/%d, instead", self.directory, candidate
      )
    return candidate, restored

  def _read_verified(self, step: int, target: Optional[dict]) -> Any:
    """Step ``step``'s state dict, its arrays checked against their checksums.

    Raises:
      DamagedCheckpoint: a file is missing, truncated or unreadable, or an array differs from
        its checksum.
      ValueError: the saved tree's structure, shapes or dtypes differ from ``target``'s.
    """
    where = f"{self.directory}/{step}"
    state_dir = epath.Path(where) / STATE_ITEM
    recast: dict[str, Any] = {}  # path -> the template's leaf, where the saved dtype differs
    if target is not None:  # From the metadata alone, before any array is read.
      try:
        saved = _flatten(self._reader.metadata(state_dir).tree)
      except Exception as e:  # pylint: disable=broad-except  (any read error: damaged)
        raise DamagedCheckpoint(f"its metadata cannot be read: {_first_line(e)}") from e
      _check_fits(saved, _flatten(target), where)
      recast = {
        path: leaf
        for path, leaf in _flatten(target).items()
        if _saved_dtype(saved[path]) not in (None, np.asarray(leaf).dtype)
      }
      # Those are read as saved (the checksums are of the saved bytes), then cast.
      target = _map_leaves(
        lambda path, leaf: (
          np.zeros(np.shape(leaf), _saved_dtype(saved[path])) if path in recast else leaf
        ),
        target,
      )
    sums_dir = epath.Path(where) / CHECKSUMS_ITEM
    verified = sums_dir.is_dir()
    # The item handlers, not the manager: its restore ends with a barrier that a process whose
    # read failed would skip (the processes agree afterwards, in `_restore`).
    try:
      state = self._reader.restore(state_dir, args=ocp.args.StandardRestore(target))
      saved_sums = ocp.JsonCheckpointHandler().restore(sums_dir) if verified else None
    except Exception as e:  # pylint: disable=broad-except  (tensorstore raises ValueError too)
      _quiet_closed_loop_reports()
      raise DamagedCheckpoint(f"it cannot be read: {_first_line(e)}") from e
    if not verified:
      logging.warning(
        "Checkpoint %s has no checksums (written before lac_jax stored them): "
        "restored without verifying its arrays",
        where,
      )
    else:
      sums = saved_sums.get(CHECKSUM_KEY) if isinstance(saved_sums, dict) else None
      arrays = _flatten(state)
      if not isinstance(sums, dict) or set(sums) != set(arrays):
        raise DamagedCheckpoint(f"its {CHECKSUMS_ITEM} file does not list its arrays")
      for path, value in arrays.items():
        if array_checksum(value) != sums[path]:
          raise DamagedCheckpoint(f"array {path} differs from its saved checksum")
    return _map_leaves(lambda path, x: _cast_like(x, recast[path]) if path in recast else x, state)

  def _move_aside(self, steps: list[int]) -> None:
    """Process 0 moves each step's folder to ``damaged/`` (orbax then no longer lists it, and a
    new save of that step is possible); every process then re-reads the step list."""
    if jax.process_index() == 0:
      aside = os.path.join(self.directory, DAMAGED_DIR)
      os.makedirs(aside, exist_ok=True)
      for step in steps:
        dest, n = os.path.join(aside, str(step)), 1
        while os.path.exists(dest):  # the same step damaged before
          dest, n = os.path.join(aside, f"{step}-{n}"), n + 1
        os.rename(os.path.join(self.directory, str(step)), dest)
        logging.warning("Moved the damaged checkpoint %s/%d to %s", self.directory, step, dest)
    distributed.barrier("lac_jax_checkpoints_moved")
    self._manager.reload()

  def wait(self) -> None:
    """Blocks until background writes are done."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves, then closes (idempotent)."""
    if self._manager is None:
      return
    self._manager.wait_until_finished()
    self._manager.close()
    self._manager = None
    self._reader.close()

  def __enter__(self) -> "Checkpoints":
    return self

  def __exit__(self, *exc: Any) -> None:
    self.close()
