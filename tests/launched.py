"""Starting and waiting for the tests' subprocesses (``python -m lac_jax.main`` runs, tools).

Every subprocess gets the session's compilation cache from the environment conftest.py sets, so
a program compiled by one test (or process 0 of a multi-process run) is loaded by the next.
"""

import os
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(REPO, "tests", "tiny.py")  # the training config file of the subprocess tests
_TEST_VARS = ("LAC_TEST_PAUSE_AT", "LAC_TEST_MARKERS", "LAC_TEST_SIGNALS")


def env(devices=None, optimize=False, **extra):
  """The environment of a test subprocess: the repository importable, JAX on CPU with
  ``devices`` forced host devices (None: one), plus ``extra`` variables.

  ``optimize=False``: XLA skips its optimisation passes (``JAX_DISABLE_MOST_OPTIMIZATIONS``),
  which halves the compile time that dominates these short runs. The subprocess tests check
  plumbing (exit codes, files, messages) and compare runs with each other, all compiled alike;
  numbers checked against references are computed in-process, fully optimised (unoptimised
  XLA:CPU can get a max's gradient wrong: docs/dependencies.md section 2).
  """
  out = dict(os.environ)
  if not optimize:
    out["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
  out["PYTHONPATH"] = REPO + os.pathsep + out.get("PYTHONPATH", "")
  flags = [f for f in out.get("XLA_FLAGS", "").split() if "force_host_platform" not in f]
  if devices:
    flags.append(f"--xla_force_host_platform_device_count={devices}")
  out["XLA_FLAGS"] = " ".join(flags)
  out["JAX_PLATFORMS"] = "cpu"
  for key in _TEST_VARS:
    out.pop(key, None)
  out.update({k: str(v) for k, v in extra.items()})
  return out


def run(args, devices=None, timeout=400, cwd=REPO, optimize=False, **extra):
  """``python ARGS`` in ``cwd`` (the repository root); the finished process (output captured).
  ``optimize``: as for `env`."""
  return subprocess.run(
    [sys.executable, *map(str, args)],
    cwd=cwd,
    env=env(devices, optimize, **extra),
    capture_output=True,
    text=True,
    timeout=timeout,
  )


def _free_port():
  with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1]


def launch(
  args,
  log_prefix,
  processes=1,
  devices=None,
  per_process=None,
  distributed=None,
  optimize=False,
  **extra,
):
  """Starts ``python -m lac_jax.main ARGS`` as ``processes`` processes on localhost, each with
  ``devices`` forced CPU devices, its own extra arguments from ``per_process`` (a list, one
  tuple per process) and the ``extra`` variables; output goes to ``<log_prefix>.p<rank>.log``.
  ``distributed`` (default: more than one process): start through ``jax.distributed``, as a
  pod's processes are. ``optimize``: as for `env`. Returns ``[(Popen, log file)]`` for
  `wait_all`."""
  per_process = list(per_process or [()] * processes)
  if distributed is None:
    distributed = len(per_process) > 1
  port = _free_port()
  procs = []
  for rank, own in enumerate(per_process):
    variables = dict(extra)
    if distributed:
      variables.update(
        JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
        JAX_PROCESS_ID=rank,
        JAX_NUM_PROCESSES=len(per_process),
        JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo",
      )  # (JAX's default) pinned
    log = open(f"{log_prefix}.p{rank}.log", "w")  # pylint: disable=consider-using-with
    procs.append(
      (
        subprocess.Popen(
          [sys.executable, "-m", "lac_jax.main", *map(str, args), *map(str, own)],
          cwd=REPO,
          env=env(devices, optimize, **variables),
          stdout=log,
          stderr=subprocess.STDOUT,
        ),
        log,
      )
    )
  return procs


def wait_all(procs, timeout=400):
  """``(return codes, outputs)`` of ``[(Popen, open log file)]``; kills every process if one
  times out."""
  codes, outputs = [], []
  for proc, log in procs:
    try:
      codes.append(proc.wait(timeout=timeout))
    except subprocess.TimeoutExpired:
      for p, _ in procs:
        p.kill()
      raise
    log.close()
    with open(log.name) as f:
      outputs.append(f.read())
  return codes, outputs


def wait_for_file(path, procs, timeout=300):
  """Waits until ``path`` exists; kills ``procs`` and fails with their output's end if one of
  them ended first or ``timeout`` passed."""
  deadline = time.monotonic() + timeout
  while not os.path.exists(path):
    if time.monotonic() > deadline or any(p.poll() is not None for p, _ in procs):
      for p, _ in procs:
        p.kill()
      outputs = []
      for _, log in procs:
        with open(log.name) as f:
          outputs.append(f.read()[-4000:])
      raise AssertionError(f"{path} never appeared:\n" + "\n\n".join(outputs))
    time.sleep(0.05)
