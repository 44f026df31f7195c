"""The opt-in XLA:CPU loop option (`lac_jax.cpu_loops`)."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lac_jax import alignment, cpu_loops

OPT = cpu_loops.OPTION
REPO = os.path.dirname(os.path.dirname(os.path.abspath(cpu_loops.__file__)))
EXTRA = "--xla_backend_extra_options="


def test_merged_flags_add_the_option_to_empty_flags():
  assert cpu_loops.merged_xla_flags("", 1234) == f"{EXTRA}{OPT}=1234"


def test_merged_flags_keep_other_flags_and_extra_options():
  flags = f"--xla_force_host_platform_device_count=4 {EXTRA}xla_cpu_disable_slp_vectorizer=1"
  merged = cpu_loops.merged_xla_flags(flags, 99)
  assert merged.split() == [
    "--xla_force_host_platform_device_count=4",
    f"{EXTRA}xla_cpu_disable_slp_vectorizer=1,{OPT}=99",
  ]


def test_merged_flags_keep_a_user_threshold():
  flags = f"{EXTRA}{OPT}=5,foo=1"
  assert cpu_loops.merged_xla_flags(flags, 99) == flags


def test_merged_flags_reject_negative_threshold():
  with pytest.raises(ValueError, match="threshold"):
    cpu_loops.merged_xla_flags("", -1)


def test_enable_after_backend_start_is_refused(monkeypatch, caplog):
  jnp.zeros(1).block_until_ready()  # backends exist in this test process
  monkeypatch.setenv("XLA_FLAGS", "")
  assert not cpu_loops.enable()
  assert os.environ["XLA_FLAGS"] == ""
  assert "before the first JAX computation" in caplog.text


def _sw_value_and_grad(sim):
  fn = jax.jit(
    jax.value_and_grad(lambda s: alignment.soft_smith_waterman(s, 1.0, 0.5, 0.7)[0].sum())
  )
  return fn, fn(sim)


def test_option_compiles_sw_loops_whole_with_identical_results(tmp_path):
  """In a fresh process, `enable()` makes XLA hoist the kernel's loops (HLO attribute
  ``xla_cpu_small_call``) and the value and gradient equal those computed here without it."""
  sim = np.random.default_rng(0).normal(size=(3, 7, 5)).astype(np.float32)
  np.save(tmp_path / "sim.npy", sim)
  child = textwrap.dedent(f"""
      import sys
      sys.path.insert(0, {REPO!r})
      from lac_jax import cpu_loops
      assert cpu_loops.enable()
      import jax, numpy as np
      from lac_jax import alignment
      sim = np.load({str(tmp_path / "sim.npy")!r})
      fn = jax.jit(jax.value_and_grad(
          lambda s: alignment.soft_smith_waterman(s, 1.0, 0.5, 0.7)[0].sum()))
      hlo = fn.lower(sim).compile().as_text()
      value, grad = fn(sim)
      np.save({str(tmp_path / "grad.npy")!r}, np.asarray(grad))
      print(hlo.count("xla_cpu_small_call"), float(value))
  """)
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)
  out = subprocess.run(
    [sys.executable, "-c", child], check=True, capture_output=True, text=True, env=env, timeout=300
  ).stdout.split()
  hoisted, value = int(out[0]), float(out[1])
  fn, (ref_value, ref_grad) = _sw_value_and_grad(jnp.asarray(sim))
  assert hoisted > 0
  if OPT not in os.environ.get("XLA_FLAGS", ""):  # this process runs with XLA's defaults
    assert "xla_cpu_small_call" not in fn.lower(jnp.asarray(sim)).compile().as_text()
  np.testing.assert_allclose(value, float(ref_value), rtol=1e-6)
  np.testing.assert_allclose(
    np.load(tmp_path / "grad.npy"), np.asarray(ref_grad), rtol=1e-5, atol=1e-7
  )
