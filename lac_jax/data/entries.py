"""Cache entries that are never half-written: each is written into a folder aside
(``.incomplete-<entry>.<host>.<pid>.<random>``) and renamed into place, a damaged one is renamed
aside (``.damaged-*``) before it is deleted, and what a killed run left is found by `leftovers`
and removed by `discard`. Used by the ``videos`` and ``rendered`` datasets' caches."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
import uuid

# Unfinished entries name their writer, so the next run can tell one left by a killed process
# from one another live process is writing into a shared cache.
INCOMPLETE, DAMAGED = ".incomplete-", ".damaged-"
_ABANDONED_AFTER_S = 3600.0  # untouched this long: abandoned, whoever wrote it


def discard(path: str) -> None:
  """Removes a cache entry or leftover, first renamed aside: other processes then see it whole
  or gone, and a run killed while deleting leaves a ``.damaged-*`` that the next run removes."""
  if os.path.basename(path).startswith(DAMAGED):
    _remove(path)
    return
  aside = os.path.join(
    os.path.dirname(path), f"{DAMAGED}{os.path.basename(path)}.{uuid.uuid4().hex[:8]}"
  )
  try:
    os.rename(path, aside)
  except FileNotFoundError:  # another process moved it first
    return
  except OSError as e:
    raise ValueError(
      f"{path}: cannot move this damaged cache entry aside ({e.strerror}); delete it"
    ) from None
  _remove(aside)


def _remove(path: str) -> None:
  """Deletes a folder or file, whichever ``path`` is; gone already is fine."""
  if os.path.isdir(path) and not os.path.islink(path):
    shutil.rmtree(path, ignore_errors=True)
  else:
    try:
      os.remove(path)
    except FileNotFoundError:
      pass


def host() -> str:
  """This machine's name, as it goes into an unfinished entry's name (no dots)."""
  return "".join(c if c.isalnum() or c == "-" else "_" for c in socket.gethostname()) or "host"


def _pid_alive(pid: int) -> bool:
  """Whether a process ``pid`` runs on this machine (signal 0 only asks)."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except (PermissionError, OverflowError, ValueError):  # another user's, or not a pid
    return pid > 0
  return True


def _newest_mtime(path: str) -> float:
  """The last time anything in the tree ``path`` changed (a live writer keeps it recent)."""
  newest = os.lstat(path).st_mtime
  for root, dirs, names in os.walk(path):
    for name in dirs + names:
      try:
        newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
      except OSError:
        pass
  return newest


def abandoned(path: str) -> bool:
  """Whether a ``.incomplete-*`` folder is left by a killed run (its writer is gone)."""
  parts = os.path.basename(path)[len(INCOMPLETE) :].split(".", 1)
  owner = parts[1].rsplit(".", 2) if len(parts) == 2 else []
  if len(owner) == 3 and owner[0] == host() and owner[1].isdigit():
    if not _pid_alive(int(owner[1])):
      return True
  try:
    return time.time() - _newest_mtime(path) > _ABANDONED_AFTER_S
  except OSError:  # removed meanwhile
    return False


def leftovers(cache_dir: str) -> dict[str, list[str]]:
  """``{entry name: [paths]}`` of the unfinished entries of ``cache_dir`` whose writer is gone
  (``''``: unknown entry), and the ``.damaged-*`` folders a killed run did not finish removing
  (under ``''``)."""
  found: dict[str, list[str]] = {}
  try:
    names = os.listdir(cache_dir)
  except OSError:
    return found
  for name in names:
    path = os.path.join(cache_dir, name)
    if name.startswith(DAMAGED):
      found.setdefault("", []).append(path)
    elif name.startswith(INCOMPLETE) and abandoned(path):
      base = name[len(INCOMPLETE) :].split(".", 1)
      found.setdefault(base[0] if len(base) == 2 else "", []).append(path)
  return found


def new_aside(entry: str) -> str:
  """A new, empty folder beside ``entry`` (created with its parent) to write the entry into
  before `os.rename` puts it in place; the name says which entry, host and process."""
  parent = os.path.dirname(entry)
  os.makedirs(parent, exist_ok=True)
  prefix = f"{INCOMPLETE}{os.path.basename(entry)}.{host()}.{os.getpid()}."
  return tempfile.mkdtemp(prefix=prefix, dir=parent)
