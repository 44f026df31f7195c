"""Waiting for the training subprocesses the multi-process tests launch."""

import subprocess


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
