"""Tests for lac_jax.preemption: SIGTERM / SIGINT during training -> a checkpoint at the step,
``preempted at step N: checkpoint saved``, exit 0; rerunning resumes to an uninterrupted run's
parameters.

The runs are ``python -m lac_jax.main`` subprocesses on CPU with a tiny config (tests/tiny.py,
10 steps). "Mid-run" without timing: with ``LAC_TEST_PAUSE_AT=3`` the config file makes every
process wait after logging step 3 until its own `StopRequest` has seen the signal(s) (it then
releases the others through a file) or another process released it; the test signals once the
process has paused. So the stop step is fixed: one process stops after step 4 (it reads its
own flag at step 4), two after step 5 (each reads the processes' summed flags one step late).
"""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np

from lac_jax import checkpoint
from lac_jax import logs
from lac_jax import preemption
import launched

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(REPO, "tests")
NUM_STEPS = 10

CONFIG = f'''
import os, sys, time
sys.path.insert(0, {TESTS!r})
from tiny import tiny_train_config


def _pause_after_logging(at, markers, signals):
  """Every process waits after writing step ``at``'s metrics (see tests/test_preemption.py)."""
  from lac_jax import logs, preemption
  if getattr(logs.MetricWriter, "_test_pause", False):
    return
  original = logs.MetricWriter.write_scalars

  def write_scalars(self, step, scalars):
    original(self, step, scalars)
    if step != at:
      return
    import jax
    open(os.path.join(markers, f"paused.p{{jax.process_index()}}"), "w").close()
    release = os.path.join(markers, "released")
    deadline = time.monotonic() + 300
    while not os.path.exists(release):
      request = preemption.active()
      if request is not None and request.count >= signals:
        open(release, "w").close()
        break
      if time.monotonic() > deadline:
        raise RuntimeError("the test sent no signal")
      time.sleep(0.02)

  logs.MetricWriter.write_scalars = write_scalars
  logs.MetricWriter._test_pause = True


def get_config():
  if os.environ.get("LAC_TEST_PAUSE_AT"):
    _pause_after_logging(int(os.environ["LAC_TEST_PAUSE_AT"]), os.environ["LAC_TEST_MARKERS"],
                         int(os.environ.get("LAC_TEST_SIGNALS", "1")))
  return tiny_train_config(num_steps={NUM_STEPS}, log_every_steps=1, checkpoint_every_steps=0,
                           eval_at_end=False)
'''


def _env(devices=None, cache=None):
  env = dict(os.environ)
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  flags = [f for f in env.get("XLA_FLAGS", "").split() if "force_host_platform" not in f]
  if devices:
    flags.append(f"--xla_force_host_platform_device_count={devices}")
  env["XLA_FLAGS"] = " ".join(flags)
  env["JAX_PLATFORMS"] = "cpu"
  for k in ("LAC_TEST_PAUSE_AT", "LAC_TEST_MARKERS", "LAC_TEST_SIGNALS"):
    env.pop(k, None)
  if cache:
    env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  return env


def _free_port():
  import socket  # pylint: disable=g-import-not-at-top
  with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1]


def _launch(config, workdir, processes=1, devices=None, cache=None, pause=None):
  """Starts the run as ``processes`` processes on localhost (output in workdir.p<rank>.log);
  ``pause``: ``(step, markers_dir, signals)`` (see the module docstring). ``cache``: the
  compilation cache folder (JAX writes it from process 0 only; process 1's step program has
  another key, so process 1 compiles its step in every run)."""
  port = _free_port()
  procs = []
  for rank in range(processes):
    env = _env(devices, cache)
    if processes > 1:
      env.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_PROCESS_ID=str(rank),
                 JAX_NUM_PROCESSES=str(processes))
    if pause:
      env.update(LAC_TEST_PAUSE_AT=str(pause[0]), LAC_TEST_MARKERS=str(pause[1]),
                 LAC_TEST_SIGNALS=str(pause[2]))
    log = open(f"{workdir}.p{rank}.log", "w")  # pylint: disable=consider-using-with
    procs.append((subprocess.Popen(
        [sys.executable, "-m", "lac_jax.main", f"--config={config}", f"--workdir={workdir}"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT), log))
  return procs


def _run(*args, **kwargs):
  codes, outputs = launched.wait_all(_launch(*args, **kwargs))
  assert codes == [0] * len(codes), "\n\n".join(o[-4000:] for o in outputs)
  return outputs


def _wait_for(path, procs, timeout=300):
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


def _state(workdir):
  ckpts = checkpoint.Checkpoints(os.path.join(workdir, checkpoint.CHECKPOINT_DIR))
  try:
    return ckpts.restore_raw(), ckpts.all_steps()
  finally:
    ckpts.close()


def _flat(tree, prefix=""):
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(_flat(v, f"{prefix}/{k}"))
    return out
  return {prefix: np.asarray(tree)}


def _assert_same_state(workdir_a, workdir_b):
  (a, _), (b, _) = _state(workdir_a), _state(workdir_b)
  fa, fb = _flat(a), _flat(b)
  assert fa.keys() == fb.keys()
  assert int(fa["/step"]) == NUM_STEPS
  for k in fa:  # same seed, data and dropout keys per step, same devices: bit-identical
    np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


def _preempted_then_resumed(tmp_path, processes, devices, signalled, signals, stop_step):
  """Runs U (uninterrupted), P (signalled mid-run) and P again (resumed); checks P's stop."""
  config = tmp_path / "tiny_preempt.py"
  config.write_text(CONFIG)
  cache = tmp_path / "cache"
  _run(config, tmp_path / "U", processes, devices, cache)

  markers = tmp_path / "markers"
  markers.mkdir()
  procs = _launch(config, tmp_path / "P", processes, devices, cache, (3, markers, len(signals)))
  _wait_for(markers / f"paused.p{signalled}", procs)
  for sig in signals:
    procs[signalled][0].send_signal(sig)
  codes, outputs = launched.wait_all(procs)
  assert codes == [0] * processes, "\n\n".join(o[-4000:] for o in outputs)
  # The handler's notice (two pending signals are handled in signal-number order).
  assert "received: finishing this step" in outputs[signalled]
  assert ("received again" in outputs[signalled]) == (len(signals) > 1)
  for out in outputs:  # every process stopped after the same step
    assert f"preempted at step {stop_step}: checkpoint saved" in out, out[-4000:]
    assert "Stopped at step" not in out
  _, steps = _state(tmp_path / "P")
  assert steps == [stop_step]
  assert [r["step"] for r in logs.read_metrics(tmp_path / "P")] == list(range(1, stop_step + 1))

  outputs = _run(config, tmp_path / "P", processes, devices, cache)
  assert f"Resuming from step {stop_step} of {NUM_STEPS}" in outputs[0]
  assert [r["step"] for r in logs.read_metrics(tmp_path / "P")] == list(
      range(1, NUM_STEPS + 1))
  _assert_same_state(tmp_path / "U", tmp_path / "P")


def test_sigterm_mid_run_checkpoints_and_resumes(tmp_path):
  """One process: SIGTERM, then SIGINT while it is still stopping (ignored)."""
  _preempted_then_resumed(tmp_path, processes=1, devices=None, signalled=0,
                          signals=(signal.SIGTERM, signal.SIGINT), stop_step=4)


def test_one_of_two_processes_signalled(tmp_path):
  """Two processes x two CPU devices; only process 1 (not the one that logs) gets SIGTERM."""
  _preempted_then_resumed(tmp_path, processes=2, devices=2, signalled=1,
                          signals=(signal.SIGTERM,), stop_step=5)


def _handlers():
  return {s: signal.getsignal(s) for s in preemption.SIGNALS}


def _wait_count(request, count):
  deadline = time.monotonic() + 10
  while request.count < count and time.monotonic() < deadline:
    time.sleep(0.01)  # the Python handler runs in the main thread, between bytecodes


def test_stop_request_flags_signals_and_restores_handlers():
  before = _handlers()
  with preemption.StopRequest() as request:
    assert preemption.active() is request
    assert not request.requested and not request.should_stop()
    os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt
    _wait_count(request, 1)
    os.kill(os.getpid(), signal.SIGTERM)  # a second signal changes nothing
    _wait_count(request, 2)
    assert request.count == 2 and request.signum == signal.SIGINT
    assert request.requested and request.should_stop()
  assert preemption.active() is None
  assert _handlers() == before


def test_stop_request_outside_the_main_thread_keeps_the_handlers():
  before, seen = _handlers(), []

  def body():
    with preemption.StopRequest() as request:
      seen.append((_handlers(), request.should_stop()))

  thread = threading.Thread(target=body)
  thread.start()
  thread.join()
  assert seen == [(before, False)]
  assert _handlers() == before
