"""Tests for lac_jax.models.conv: the matmul backward equals autodiff of lax.conv."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lac_jax.models import conv
from lac_jax.models import encoder
from lac_jax.models import resnet


def reference_conv(x, w, stride, padding):
  """Plain lax.conv; its autodiff is the reference backward."""
  return jax.lax.conv_general_dilated(
    x, w, (stride, stride), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
  )


CASES = [  # (H, W, C, O, k, stride, padding)
  (9, 8, 3, 5, 7, 2, ((3, 3), (3, 3))),  # ResNet conv1 shape class, odd and even sizes.
  (7, 7, 4, 6, 3, 1, ((1, 1), (1, 1))),
  (8, 9, 4, 6, 3, 2, ((1, 1), (1, 1))),
  (7, 6, 4, 6, 3, 1, ((0, 0), (0, 0))),  # 'valid' (the context conv).
  (6, 7, 4, 5, 3, 1, ((0, 2), (2, 1))),  # Asymmetric padding.
  (7, 7, 5, 3, 1, 1, ((0, 0), (0, 0))),
  (7, 8, 5, 3, 1, 2, ((0, 0), (0, 0))),  # 1x1 stride 2 (ResNet downsample).
]


@pytest.mark.parametrize("case", CASES)
def test_matmul_vjp_equals_autodiff_float64(case):
  h, w_, c, o, k, s, pad = case
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, h, w_, c)))
    w = jnp.asarray(rng.normal(size=(k, k, c, o)))
    y_ref, vjp_ref = jax.vjp(lambda x, w: reference_conv(x, w, s, pad), x, w)
    y, vjp = jax.vjp(lambda x, w: conv.conv2d(x, w, s, pad, grad="matmul"), x, w)
    dy = jnp.asarray(rng.normal(size=y_ref.shape))
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    for got, want, name in zip(vjp(dy), vjp_ref(dy), ("dx", "dw")):
      assert got.shape == want.shape and got.dtype == want.dtype, name
      np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=name)


def test_matmul_vjp_inside_scan_and_float32():
  """The case it exists for: gradients through a lax.scan over chunks (float32 tolerance)."""
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(3, 2, 10, 10, 4)), jnp.float32)  # 3 chunks of 2 images.
  w = jnp.asarray(rng.normal(size=(3, 3, 4, 8)) * 0.3, jnp.float32)

  def loss(w, x, fn):
    def body(carry, xc):
      return carry + jnp.sum(jnp.tanh(fn(xc, w)) ** 2), None

    return jax.lax.scan(body, 0.0, x)[0]

  ours = jax.jit(jax.grad(lambda w, x: loss(w, x, lambda a, b: conv.conv2d(a, b, 2, 1, "matmul"))))
  ref = jax.jit(
    jax.grad(lambda w, x: loss(w, x, lambda a, b: reference_conv(a, b, 2, ((1, 1), (1, 1)))))
  )
  np.testing.assert_allclose(ours(w, x), ref(w, x), rtol=2e-5, atol=2e-5)


def test_grad_auto_and_errors():
  assert conv.resolve_grad("auto") == ("matmul" if jax.default_backend() == "cpu" else "xla")
  assert conv.resolve_grad("xla") == "xla"
  with pytest.raises(ValueError, match="conv grad must be one of"):
    conv.resolve_grad("cudnn")
  x, w = jnp.zeros((1, 5, 5, 3)), jnp.zeros((3, 3, 3, 4))
  with pytest.raises(ValueError, match="matching C"):
    conv.conv2d(x, jnp.zeros((3, 3, 2, 4)))
  with pytest.raises(ValueError, match=r"padding must be in \[0, k-1\]"):
    conv.conv2d(x, w, 1, 3)
  with pytest.raises(ValueError, match="config.model.conv_grad: expected one of"):
    config = encoder.default_config()
    config.conv_grad = "fast"
    encoder.build_encoder(config)


def test_resnet_gradients_match_between_backends():
  """ResNet-50 to layer2 (every conv kind; BN in train mode): both backwards give the same grads."""
  rng = np.random.default_rng(2)
  images = jnp.asarray(rng.integers(0, 256, (2, 40, 40, 3)), jnp.uint8)
  grads = {}
  # The variables do not depend on the backward (jit_init: one compiled init, not op by op).
  variables = encoder.jit_init(
    resnet.ResNet(depth=50, cut="layer2"), jax.random.PRNGKey(0), images[:1]
  )
  for impl in ("matmul", "xla"):
    model = resnet.ResNet(depth=50, cut="layer2", conv_grad=impl)

    def loss(params):
      y, _ = model.apply(
        {"params": params, "batch_stats": variables["batch_stats"]},
        images,
        True,
        mutable=["batch_stats"],
      )
      return jnp.mean(y**2)

    grads[impl] = jax.jit(jax.grad(loss))(variables["params"])
  flat_m = jax.tree_util.tree_leaves_with_path(grads["matmul"])
  flat_x = dict(jax.tree_util.tree_leaves_with_path(grads["xla"]))
  assert {p for p, _ in flat_m} == set(flat_x) and len(flat_x) > 30
  for path, g in flat_m:
    ref = flat_x[path]
    scale = float(jnp.max(jnp.abs(ref))) + 1e-12
    np.testing.assert_allclose(g / scale, ref / scale, atol=1e-4, err_msg=str(path))


def test_bfloat16_gradients_close_to_xla():
  """bfloat16 compute: the matmul taps accumulate in float32; results match XLA's to bf16 eps."""
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(2, 9, 9, 8)), jnp.bfloat16)
  w = jnp.asarray(rng.normal(size=(3, 3, 8, 4)) * 0.3, jnp.bfloat16)
  grads = {
    impl: jax.grad(
      lambda x, w, impl=impl: jnp.sum(conv.conv2d(x, w, 2, 1, impl).astype(jnp.float32) ** 2),
      argnums=(0, 1),
    )(x, w)
    for impl in ("matmul", "xla")
  }
  for got, want in zip(grads["matmul"], grads["xla"]):
    assert got.dtype == want.dtype == jnp.bfloat16
    want = np.asarray(want, np.float32)
    np.testing.assert_allclose(np.asarray(got, np.float32), want, atol=0.02 * np.abs(want).max())
