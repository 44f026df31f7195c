"""Tests for lac_jax.preemption: SIGTERM / SIGINT during training -> a checkpoint at the step,
``preempted at step N: checkpoint saved``, exit 0; rerunning resumes to an uninterrupted run's
parameters.

The runs are ``python -m lac_jax.main --config=tests/tiny.py`` subprocesses on CPU. "Mid-run"
without timing: with ``LAC_TEST_PAUSE_AT=3`` every process waits after logging step 3 until it
has seen the signal(s) (`tiny.pause_after`); the test signals once the process has paused, so
one process stops after step 4. Two processes, one of them signalled, are tested with
test_train.py's run E.
"""

import os
import signal
import threading
import time

import numpy as np

from lac_jax import logs
from lac_jax import preemption
import launched
import tiny

NUM_STEPS = 10
# Fully optimised: the uninterrupted run is test_train.py's run A's program (the session's
# compilation cache then serves it).
ARGS = [
  f"--config={launched.TINY}",
  f"--config.train.num_steps={NUM_STEPS}",
  "--config.train.checkpoint_every_steps=0",
]


def _run(workdir, **extra):
  codes, outputs = launched.wait_all(
    launched.launch(ARGS + [f"--workdir={workdir}"], workdir, optimize=True, **extra)
  )
  assert codes == [0] * len(codes), "\n\n".join(o[-4000:] for o in outputs)
  return outputs


def _assert_same_state(workdir_a, workdir_b):
  (a, _), (b, _) = tiny.read_checkpoint(workdir_a), tiny.read_checkpoint(workdir_b)
  fa, fb = tiny.flat(a), tiny.flat(b)
  assert fa.keys() == fb.keys()
  assert int(fa["/step"]) == NUM_STEPS
  for k in fa:  # same seed, data and dropout keys per step, same devices: bit-identical
    np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


def test_sigterm_mid_run_checkpoints_and_resumes(tmp_path):
  """One process: SIGTERM, then SIGINT while it is still stopping (ignored). U runs
  uninterrupted, P is signalled mid-run and then resumed."""
  _run(tmp_path / "U")
  markers = tmp_path / "markers"
  markers.mkdir()
  signals = (signal.SIGTERM, signal.SIGINT)
  procs = launched.launch(
    ARGS + [f"--workdir={tmp_path / 'P'}"],
    tmp_path / "P",
    optimize=True,
    LAC_TEST_PAUSE_AT=3,
    LAC_TEST_MARKERS=markers,
    LAC_TEST_SIGNALS=len(signals),
  )
  launched.wait_for_file(markers / "paused.p0", procs)
  for sig in signals:
    procs[0][0].send_signal(sig)
  codes, outputs = launched.wait_all(procs)
  assert codes == [0], outputs[0][-4000:]
  # The handler's notice (two pending signals are handled in signal-number order).
  assert "received: finishing this step" in outputs[0] and "received again" in outputs[0]
  assert "preempted at step 4: checkpoint saved" in outputs[0], outputs[0][-4000:]
  assert "Stopped at step" not in outputs[0]
  _, steps = tiny.read_checkpoint(tmp_path / "P")
  assert steps == [4]
  assert [r["step"] for r in logs.read_metrics(tmp_path / "P")] == [1, 2, 3, 4]

  outputs = _run(tmp_path / "P")
  assert f"Resuming from step 4 of {NUM_STEPS}" in outputs[0]
  assert [r["step"] for r in logs.read_metrics(tmp_path / "P")] == list(range(1, NUM_STEPS + 1))
  _assert_same_state(tmp_path / "U", tmp_path / "P")


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
