"""What every benchmark writes next to what it prints: ``benchmarks/results/<name>.json`` with
the host, date, commit, software, the benchmark's configuration and its numbers."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from typing import Any, Mapping, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIRECTORY = os.path.join(ROOT, "benchmarks", "results")
sys.path.insert(0, ROOT)
from lac_jax import files  # pylint: disable=g-import-not-at-top


def _commit() -> str:
  def git(*args):
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

  commit = git("rev-parse", "HEAD") or "unknown"
  return commit + ("+uncommitted" if git("status", "--porcelain", "--untracked-files=no") else "")


def write(name: str, config: Mapping[str, Any], results: Any, path: Optional[str] = None) -> str:
  """Writes the results of benchmark ``name`` (``config``: its arguments and setup) and returns
  the path (default ``benchmarks/results/<name>.json``, replaced by each run)."""
  software = {"python": platform.python_version()}
  for module in ("jax", "jaxlib", "flax", "numpy"):
    if module in sys.modules:
      software[module] = getattr(sys.modules[module], "__version__", None)
  if "jax" in sys.modules:
    jax = sys.modules["jax"]
    device = jax.devices()[0]
    software["backend"] = f"{jax.default_backend()} ({device.device_kind}, "
    software["backend"] += f"{jax.device_count()} device(s))"
  path = path or os.path.join(DIRECTORY, f"{name}.json")
  files.write_json(
    path,
    {
      "benchmark": name,
      "host": platform.node(),
      "machine": platform.machine(),
      "cpus": os.cpu_count(),
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "commit": _commit(),
      "command": " ".join(sys.argv),
      "software": software,
      "config": dict(config),
      "results": results,
    },
  )
  print(f"-> {os.path.relpath(path, os.getcwd())}")
  return path
