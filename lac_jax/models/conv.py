"""2D convolution (NHWC, HWIO) whose backward pass XLA:CPU runs at matmul speed, even in loops.

``conv2d`` keeps ``lax.conv_general_dilated`` for the forward pass and, with ``grad='matmul'``,
a custom VJP (weight gradient one matmul per kernel tap; input gradient a matmul, a flipped conv
or XLA's transposed conv). ``grad='auto'`` (the default) picks ``'matmul'`` on CPU and ``'xla'``
(plain autodiff) elsewhere; both give the same gradients. Why XLA:CPU needs it and the exact
formulas: docs/models.md#the-cpu-convolution; measurements: docs/performance.md.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

GRAD_IMPLS = ("auto", "matmul", "xla")
_DIMS = ("NHWC", "HWIO", "NHWC")
Padding = Tuple[Tuple[int, int], Tuple[int, int]]


def _conv(x: jax.Array, w: jax.Array, stride: int, padding: Padding) -> jax.Array:
  return jax.lax.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=_DIMS)


def resolve_grad(grad: str) -> str:
  """'auto' -> 'matmul' on CPU, 'xla' on other backends; checks the name."""
  if grad not in GRAD_IMPLS:
    raise ValueError(f"conv grad must be one of {GRAD_IMPLS}, got {grad!r}")
  if grad == "auto":
    return "matmul" if jax.default_backend() == "cpu" else "xla"
  return grad


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_matmul_grad(x: jax.Array, w: jax.Array, stride: int, padding: Padding) -> jax.Array:
  return _conv(x, w, stride, padding)


def _fwd(x, w, stride, padding):
  return _conv(x, w, stride, padding), (x, w)


def _bwd(stride, padding, res, dy):
  x, w = res
  kh, kw = w.shape[:2]
  (pt, pb), (pl, pr) = padding
  ho, wo = dy.shape[1:3]
  # Weight gradient: one [C, N*Ho*Wo] x [N*Ho*Wo, O] matmul per kernel tap.
  xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))  # conv2d checked pads >= 0.
  acc = jnp.promote_types(w.dtype, jnp.float32)  # bf16 taps accumulate in float32.
  rows = []
  for i in range(kh):
    taps = []
    for j in range(kw):
      patch = jax.lax.slice(
        xp,
        (0, i, j, 0),
        (xp.shape[0], i + stride * (ho - 1) + 1, j + stride * (wo - 1) + 1, xp.shape[3]),
        (1, stride, stride, 1),
      )
      taps.append(
        jnp.einsum("nhwc,nhwo->co", patch, dy, preferred_element_type=acc).astype(w.dtype)
      )
    rows.append(jnp.stack(taps))
  dw = jnp.stack(rows)
  if kh == kw == 1 and pt == pb == pl == pr == 0:
    # 1x1: a matmul, spread back onto the strided grid with interior padding.
    d = jnp.einsum("nhwo,co->nhwc", dy, w[0, 0], preferred_element_type=acc).astype(x.dtype)
    h_pad, w_pad = (x.shape[1] - 1 - stride * (ho - 1), x.shape[2] - 1 - stride * (wo - 1))
    dx = jax.lax.pad(
      d,
      jnp.zeros((), d.dtype),
      ((0, 0, 0), (0, h_pad, stride - 1), (0, w_pad, stride - 1), (0, 0, 0)),
    )
  elif stride == 1:
    # Input gradient as a forward conv of dy with the flipped, in/out-swapped kernel.
    w_t = jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)
    dx = _conv(dy, w_t, 1, ((kh - 1 - pt, kh - 1 - pb), (kw - 1 - pl, kw - 1 - pr)))
  else:
    dx = jax.vjp(lambda x_: _conv(x_, w, stride, padding), x)[1](dy)[0]
  return dx.astype(x.dtype), dw


_conv_matmul_grad.defvjp(_fwd, _bwd)


def conv2d(
  x: jax.Array,
  w: jax.Array,
  stride: int = 1,
  padding: Union[int, Sequence[Tuple[int, int]]] = 0,
  grad: str = "auto",
) -> jax.Array:
  """``[N, H, W, C]`` * kernel ``[kh, kw, C, O]`` -> ``[N, H', W', O]`` (no bias).

  Args:
    x: input, NHWC.
    w: kernel, HWIO (the same dtype as ``x``).
    stride: the same stride on both spatial axes.
    padding: ``p`` (``p`` on every side) or ``((top, bottom), (left, right))``; each must be
      in ``[0, k - 1]``.
    grad: 'auto', 'matmul' or 'xla' (see the module docstring).
  """
  if x.ndim != 4 or w.ndim != 4 or w.shape[2] != x.shape[3]:
    raise ValueError(
      f"conv2d expects x [N, H, W, C] and w [kh, kw, C, O] with matching C, got "
      f"{x.shape} and {w.shape}"
    )
  if isinstance(padding, int):
    padding = ((padding, padding), (padding, padding))
  pads = tuple((int(lo), int(hi)) for lo, hi in padding)
  for (lo, hi), k in zip(pads, w.shape[:2]):
    if not (0 <= lo <= k - 1 and 0 <= hi <= k - 1):
      raise ValueError(f"conv2d padding must be in [0, k-1] = [0, {k - 1}], got {padding}")
  if resolve_grad(grad) == "xla":
    return _conv(x, w, int(stride), pads)
  return _conv_matmul_grad(x, w, int(stride), pads)


class Conv(nn.Module):
  """``nn.Conv``-compatible 2D conv without bias (parameter ``kernel [k, k, C, features]``).

  Padding ``(k - 1) // 2`` on every side, as torchvision's ResNet; see ``conv2d`` for ``grad``.
  """

  features: int
  kernel_size: int
  stride: int = 1
  dtype: Any = jnp.float32
  kernel_init: Callable[..., jax.Array] = nn.initializers.lecun_normal()
  grad: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features))
    x, kernel = jnp.asarray(x, self.dtype), jnp.asarray(kernel, self.dtype)
    return conv2d(x, kernel, self.stride, (k - 1) // 2, self.grad)
