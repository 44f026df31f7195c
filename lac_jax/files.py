"""Output files written atomically: a temporary file beside the target, renamed when complete,
so a crash never leaves a half-written file under the target's name."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from typing import Any, Iterator, Mapping, Sequence

import numpy as np


@contextlib.contextmanager
def naming_errors(path: str) -> Iterator[None]:
  """An OSError without a file name (a write or flush: a full disk raises ENOSPC there) raised
  in the block gets ``path`` as its ``filename``, so that its one-line report names the file."""
  try:
    yield
  except OSError as e:
    if e.filename is None and e.errno:
      raise type(e)(e.errno, e.strerror or os.strerror(e.errno), path) from e
    raise


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """A temporary path in ``path``'s directory (created if missing), renamed to ``path`` when the
  block succeeds and removed when it fails. The file gets the usual umask permissions. An
  OSError names ``path``, or the directory when the temporary file cannot be made there."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  stem, ext = os.path.splitext(os.path.basename(path))
  try:
    fd, tmp = tempfile.mkstemp(prefix=f".tmp_{stem}.", suffix=ext, dir=directory)
  except OSError as e:  # names the random temporary file: name the folder instead
    raise type(e)(e.errno, e.strerror, directory) from e
  os.close(fd)
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files.
  try:
    with naming_errors(path):
      yield tmp
      os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def json_safe(value: Any) -> Any:
  """NaN/inf -> None (strict JSON), NumPy scalars and arrays -> Python, containers recursively."""
  if isinstance(value, Mapping):
    return {str(k): json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple, np.ndarray)):
    return [json_safe(v) for v in value]
  if isinstance(value, (np.floating, float)):
    return float(value) if math.isfinite(value) else None
  if isinstance(value, (np.integer, np.bool_)):
    return value.item()
  return value


def read_json_object(path: str, what: str) -> dict[str, Any]:
  """The JSON object in ``path``; ValueError naming ``what`` (e.g. ``'--labels=x.json'``) if the
  file cannot be read, is not JSON or holds something else than an object."""
  try:
    with open(path, encoding="utf-8") as f:
      content = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise ValueError(f"{what}: not a readable JSON file: {e}") from None
  if not isinstance(content, dict):
    raise ValueError(f"{what}: expected a JSON object, got {type(content).__name__}")
  return content


def write_json(path: str, payload: Mapping[str, Any], one_line: Sequence[str] = ()) -> None:
  """Writes ``payload`` as indented JSON; the values of the top-level keys in ``one_line``
  (long lists such as frame pairs) each stay on one line."""
  payload = json_safe(payload)
  marks = {key: f"@@one_line_{key}@@" for key in one_line if key in payload}
  text = json.dumps({k: marks.get(k, v) for k, v in payload.items()}, indent=2)
  for key, mark in marks.items():
    text = text.replace(json.dumps(mark), json.dumps(payload[key]), 1)
  with atomic_path(path) as tmp:
    with open(tmp, "w", encoding="utf-8") as f:
      f.write(text + "\n")


def save_npy(path: str, array: np.ndarray) -> None:
  """``np.save`` to ``path`` (exactly that name: no '.npy' is appended)."""
  with atomic_path(path) as tmp:
    with open(tmp, "wb") as f:
      np.save(f, array)


def save_figure(path: str, figure: Any, dpi: int = 120) -> None:
  """``figure.savefig`` as PNG."""
  with atomic_path(path) as tmp:
    figure.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
