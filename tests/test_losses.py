"""Tests of the LAC loss against slow NumPy float64 restatements of the paper and official code."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import log_softmax, softmax, xlogy

from lac_jax import losses
from lac_jax.losses import lac
from sw_reference import sw_reference

# Every non-default switch of the paper preset at once (masks stay honoured).
VARIANT = dict(
  lc_similarity="dot",
  lc_directions=2,
  lc_normalization="T2",
  lc_divergence="kl",
  lc_log_eps=1e-3,
  ll_product="matmul",
  ll_tau=0.5,
  sw_similarity="inverse_squared_distance",
  sw_eps=1e-3,
  include_zero=False,
  sw_sign=-1,
  tau=0.3,
  gamma=0.6,
  alpha=0.3,
  beta=2.0,
  var=4.0,
  gap_per_cell=False,
  gap_positive=True,
  ll_stop_gradient=False,
)


def _cfg(preset="paper", **overrides):
  cfg = lac.default_config(preset)
  cfg.update(overrides)
  return cfg


# ---------------------------------------------------------------------------------------------
# Slow references.
# ---------------------------------------------------------------------------------------------


def ref_paper(z1, z2, s1, s2, go, ge, cfg, n1=None, n2=None):
  """All terms from the paper's equations in float64, on the valid blocks (masks = slicing)."""
  n1 = len(z1) if n1 is None else n1
  n2 = len(z2) if n2 is None else n2
  z1, z2 = np.asarray(z1, np.float64)[:n1], np.asarray(z2, np.float64)[:n2]
  s1, s2 = np.asarray(s1, np.float64)[:n1], np.asarray(s2, np.float64)[:n2]
  go, ge = np.asarray(go, np.float64), np.asarray(ge, np.float64)
  cut = lambda p, a, b: p if p.ndim == 0 else p[:a, :b]

  g = np.exp(-((s1[:, None] - s2[None, :]) ** 2) / (2 * cfg.var))
  y12 = g / g.sum(1, keepdims=True)
  y21 = g.T / g.T.sum(1, keepdims=True)
  if cfg.lc_similarity == "cosine":
    unit = lambda z: z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), cfg.normalize_eps)
    sim = unit(z1) @ unit(z2).T
  else:
    sim = z1 @ z2.T

  def lc(y, logits, n_rows):
    logp = log_softmax(logits, axis=1)
    if cfg.lc_log_eps > 0:
      logp = np.log(np.exp(logp) + cfg.lc_log_eps)
    per_row = -(y * logp).sum(1)
    if cfg.lc_divergence == "kl":
      per_row += xlogy(y, y).sum(1)
    return per_row.sum() / (n1 * n2 if cfg.lc_normalization == "T2" else n_rows)

  out = {"l_c12": lc(y12, sim / cfg.tau, n1)}
  out["l_c"] = out["l_c12"]
  if cfg.lc_directions == 2:
    out["l_c21"] = lc(y21, sim.T / cfg.tau, n2)
    out["l_c"] = 0.5 * (out["l_c12"] + out["l_c21"])

  sq = ((z1[:, None, :] - z2[None, :, :]) ** 2).sum(-1)
  if cfg.sw_similarity == "inverse_distance":
    s = 1.0 / (np.sqrt(sq) + cfg.sw_eps)
  else:
    s = 1.0 / (sq + cfg.sw_eps)
  sw12, d12 = sw_reference(s, cut(go, n1, n2), cut(ge, n1, n2), cfg.gamma, cfg.include_zero)
  sw21, d21 = sw_reference(s.T, cut(go, n2, n1), cut(ge, n2, n1), cfg.gamma, cfg.include_zero)

  tau_l = cfg.tau if cfg.ll_tau is None else cfg.ll_tau
  p12, p21 = softmax(d12 / tau_l, axis=1), softmax(d21 / tau_l, axis=1)
  if cfg.ll_product == "elementwise":
    big_l = p12 * p21.T
  else:
    m = min(n1, n2)
    big_l = p12[:, :m] @ p21[:, :m].T
  out["l_l"] = -(y12 * log_softmax(big_l, axis=1)).sum() / n1
  out["l_sw12"], out["l_sw21"] = sw12, sw21
  out["loss"] = out["l_c"] + cfg.alpha * (out["l_l"] + cfg.beta * cfg.sw_sign * (sw12 + sw21))
  return out


def ref_official(emb, steps, go, ge):
  """The official forward (docs/official_code.md §3.1-3.2), restated in NumPy float64.

  emb [B, 2, T, C], steps [B, 2, T]; no masks; go, ge [T, T] shared by both directions.
  """
  total = 0.0
  b_size, _, t, _ = emb.shape
  for b in range(b_size):
    z1, z2 = emb[b, 0].astype(np.float64), emb[b, 1].astype(np.float64)
    s1, s2 = steps[b, 0].astype(np.float64), steps[b, 1].astype(np.float64)
    g = np.exp(-((s1[:, None] - s2[None, :]) ** 2) / (2 * 10.0))
    den = g.sum(1, keepdims=True)
    y = np.where(den > 0, g / np.where(den > 0, den, 1.0), 0.0)  # safe_div
    e = np.exp(z1 @ z2.T / 0.8)
    p = e / e.sum(1, keepdims=True)
    l_c = (xlogy(y, y) - y * np.log(p + 1e-6)).sum() / t**2  # F.kl_div summed / T^2
    v12, d12 = sw_reference(1.0 / ((z1[:, None] - z2[None]) ** 2).sum(-1), go, ge, 0.8, False)
    v21, d21 = sw_reference(1.0 / ((z2[:, None] - z1[None]) ** 2).sum(-1), go, ge, 0.8, False)
    a = softmax(d12, axis=1) @ softmax(d21, axis=1).T
    l_l = np.mean(-(y * log_softmax(a, axis=1)).sum(1))
    total += l_c + 0.01 * (l_l + 1.0 * (v12 + v21))
  return total / b_size


def _inputs(rng, b, t, e, lengths=None):
  """z [B, 2, T, E], sorted steps [B, 2, T] (padded steps repeat the last one), prefix masks."""
  z = rng.normal(size=(b, 2, t, e))
  steps = np.sort(rng.integers(0, 2 * t, size=(b, 2, t)), axis=-1)
  mask = np.ones((b, 2, t), bool)
  if lengths is not None:
    for (bi, v), n in lengths.items():
      mask[bi, v, n:] = False
      steps[bi, v, n:] = steps[bi, v, n - 1]
  return z, steps, mask


def _penalties(rng, t):
  return rng.uniform(0.3, 1.5, size=(t, t)), rng.uniform(0.1, 1.0, size=(t, t))


# ---------------------------------------------------------------------------------------------
# Shared jitted functions: compiling is what costs time here, so every test reuses these.
# ---------------------------------------------------------------------------------------------

B, T, E = 3, 6, 4
LENGTHS = {(0, 1): 4, (1, 0): 5, (1, 1): 3}  # (video, view) -> valid prefix length


@functools.lru_cache(maxsize=None)
def _jac_fn(preset, overrides):
  """jit of (z, steps, mask, raw_go, raw_ge) -> (jac, parts) of the `lac.LAC` loss.

  ``jac[k]`` for k in (loss, l_l): gradients w.r.t. (z, raw_go, raw_ge); ``parts``: the batch
  means. Steps and masks are traced arguments, so one compilation serves every test.
  """
  cfg = _cfg(preset, **dict(overrides))

  loss = losses.build(cfg)

  def f(z, raw_go, raw_ge, steps, mask):
    _, parts = loss({"gap_open": raw_go, "gap_extend": raw_ge}, z, steps, mask)
    return {k: parts[k] for k in ("loss", "l_l")}, parts

  jac = jax.jacrev(f, argnums=(0, 1, 2), has_aux=True)
  return cfg, jax.jit(lambda z, steps, mask, go, ge: jac(z, go, ge, steps, mask))


def _run(preset, overrides, *args):
  cfg, fn = _jac_fn(preset, tuple(sorted(overrides.items())))
  jac, parts = fn(*args)
  return cfg, jac, {k: np.asarray(v) for k, v in parts.items()}


def _ref_batch(z, steps, mask, go, ge, cfg):
  """Mean over videos of `ref_paper` (masks as slicing)."""
  refs = [
    ref_paper(
      z[b, 0], z[b, 1], steps[b, 0], steps[b, 1], go, ge, cfg, mask[b, 0].sum(), mask[b, 1].sum()
    )
    for b in range(len(z))
  ]
  return {k: np.mean([r[k] for r in refs]) for k in refs[0]}


def _case(seed, dtype=np.float64, per_cell=True):
  rng = np.random.default_rng(seed)
  z, steps, mask = _inputs(rng, B, T, E, LENGTHS)
  if per_cell:
    go, ge = _penalties(rng, T)
  else:
    go, ge = np.float64(rng.uniform(-0.5, 1.0)), np.float64(rng.uniform(-1.5, 0.0))
  return rng, (z.astype(dtype), steps, mask, go.astype(dtype), ge.astype(dtype))


def _effective(cfg, go, ge):
  if cfg.gap_positive:  # softplus
    return np.logaddexp(0.0, go), np.logaddexp(0.0, ge)
  return go, ge


# ---------------------------------------------------------------------------------------------
# Values.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", [{}, VARIANT], ids=["paper", "variant"])
def test_terms_match_paper_reference_float64(overrides):
  _, args = _case(0, per_cell=not overrides)
  z, steps, mask, go, ge = args
  with jax.enable_x64(True):
    cfg, _, parts = _run("paper", overrides, *args)
  assert parts["loss"].dtype == np.float64
  go, ge = _effective(cfg, go, ge)
  ref = _ref_batch(z, steps, mask, go, ge, cfg)
  assert set(ref) == set(parts)
  for k in ref:
    np.testing.assert_allclose(parts[k], ref[k], rtol=1e-9, err_msg=k)
  # The switches matter: the variant's value differs from the paper's.
  if overrides:
    assert abs(_ref_batch(z, steps, mask, go, ge, _cfg())["loss"] - parts["loss"]) > 1e-3


def test_unequal_lengths_scalar_penalties_tied_tau_float64():
  rng = np.random.default_rng(1)
  cfg = _cfg(lc_directions=2, tau=0.5, gap_per_cell=False)  # ll_tau None -> tau
  z1, z2 = rng.normal(size=(5, 4)), rng.normal(size=(7, 4))
  s1, s2 = np.sort(rng.integers(0, 12, 5)), np.sort(rng.integers(0, 12, 7))
  m1, m2 = np.ones(5, bool), np.arange(7) < 6
  with jax.enable_x64(True):
    fn = jax.jit(
      lambda *a: lac.lac_loss(
        *a[:4], gap_open=0.7, gap_extend=0.2, mask1=a[4], mask2=a[5], **lac.loss_kwargs(cfg)
      )[1]
    )
    parts = fn(z1, z2, s1, s2, m1, m2)
  ref = ref_paper(z1, z2, s1, s2, 0.7, 0.2, cfg, 5, 6)
  for k in ref:
    np.testing.assert_allclose(parts[k], ref[k], rtol=1e-9, err_msg=k)


def test_official_preset_matches_official_forward():
  _, (z, steps, mask, go, ge) = _case(2)  # masks have padding: the preset must ignore them
  ref = ref_official(z, steps, go, ge)
  with jax.enable_x64(True):
    _, _, parts64 = _run("official_code", {}, z, steps, mask, go, ge)
  np.testing.assert_allclose(parts64["loss"], ref, rtol=1e-9)
  _, _, parts32 = _run(
    "official_code",
    {},
    *(np.float32(a) if a.dtype == np.float64 else a for a in (z, steps, mask, go, ge)),
  )
  assert parts32["loss"].dtype == np.float32
  np.testing.assert_allclose(parts32["loss"], ref, rtol=2e-5)
  # L_l of a matmul of two softmaxes is close to log T (docs/official_code.md §3.1).
  assert abs(parts32["l_l"] - np.log(T)) < 0.1


def test_paper_float32_matches_float64_reference():
  _, (z, steps, mask, go, ge) = _case(3)
  cfg, _, parts = _run("paper", {}, np.float32(z), steps, mask, np.float32(go), np.float32(ge))
  ref = _ref_batch(z, steps, mask, go, ge, cfg)
  for k in ref:
    assert parts[k].dtype == np.float32
    np.testing.assert_allclose(parts[k], ref[k], rtol=2e-5, err_msg=k)


def test_batch_equals_mean_of_per_video_calls():
  _, (z, steps, mask, go, ge) = _case(4, np.float32)
  cfg, _, parts = _run("paper", {}, z, steps, mask, go, ge)
  single = jax.jit(
    lambda *a: lac.lac_loss(
      *a[:4], gap_open=a[6], gap_extend=a[7], mask1=a[4], mask2=a[5], **lac.loss_kwargs(cfg)
    )[1]
  )
  singles = [
    single(z[b, 0], z[b, 1], steps[b, 0], steps[b, 1], mask[b, 0], mask[b, 1], go, ge)
    for b in range(B)
  ]
  assert set(parts) == set(singles[0]) == {"loss", "l_c", "l_c12", "l_l", "l_sw12", "l_sw21"}
  for k in parts:
    np.testing.assert_allclose(parts[k], np.mean([s[k] for s in singles]), rtol=1e-5, err_msg=k)


# ---------------------------------------------------------------------------------------------
# Gradients.
# ---------------------------------------------------------------------------------------------


def _check_directional(f, grads, args, rng, n_dirs=3, h=1e-5, rtol=1e-6):
  """Gradients against central differences of f along random directions, per argument."""
  for a, (x, g) in enumerate(zip(args, grads)):
    for _ in range(n_dirs):
      v = rng.normal(size=np.shape(x))
      plus, minus = list(args), list(args)
      plus[a], minus[a] = x + h * v, x - h * v
      fd = (float(f(*plus)) - float(f(*minus))) / (2 * h)
      an = float(np.sum(np.asarray(g) * v))
      assert abs(an - fd) <= rtol * max(1.0, abs(fd)) + 1e-8, (a, an, fd)


@pytest.mark.parametrize("overrides", [{}, VARIANT], ids=["paper", "variant"])
def test_gradients_match_finite_differences(overrides):
  """Embeddings and gap penalties (per-cell raw, or scalar through softplus in the variant)."""
  rng, (z, steps, mask, go, ge) = _case(5, per_cell=not overrides)
  with jax.enable_x64(True):
    _, jac, _ = _run("paper", overrides, z, steps, mask, go, ge)
    for part in ("loss", "l_l"):  # L_l alone: its gradient flows through the D output.
      f = lambda z_, go_, ge_: _run("paper", overrides, z_, steps, mask, go_, ge_)[2][part]
      _check_directional(f, jac[part], (z, go, ge), rng)
    assert float(jnp.abs(jac["l_l"][0]).max()) > 1e-6
    assert all(float(jnp.abs(g).max()) > 0 for g in jac["loss"])


def test_gradients_official_preset_stop_l_l():
  """Official preset: exact gradients of everything but L_l, which gets none."""
  rng, (z, steps, mask, go, ge) = _case(6)
  with jax.enable_x64(True):
    cfg, jac, _ = _run("official_code", {}, z, steps, mask, go, ge)

    def no_ll(z_, go_, ge_):
      parts = _run("official_code", {}, z_, steps, mask, go_, ge_)[2]
      return parts["loss"] - cfg.alpha * parts["l_l"]

    _check_directional(no_ll, jac["loss"], (z, go, ge), rng)
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jac["l_l"])


# ---------------------------------------------------------------------------------------------
# Masks, degenerate inputs.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", [{}, VARIANT], ids=["paper", "variant"])
def test_padded_frames_change_nothing(overrides):
  rng, (z, steps, mask, go, ge) = _case(8, per_cell=not overrides)
  z2, steps2 = z.copy(), steps.copy()
  z2[~mask] = 100.0 * rng.normal(size=z2[~mask].shape)
  steps2[~mask] = rng.integers(0, 50, size=steps2[~mask].shape)
  with jax.enable_x64(True):
    _, jac, p1 = _run("paper", overrides, z, steps, mask, go, ge)
    _, _, p2 = _run("paper", overrides, z2, steps2, mask, go, ge)
    for k in p1:
      np.testing.assert_allclose(p1[k], p2[k], rtol=1e-12, err_msg=k)
    assert float(jnp.abs(jac["loss"][0][~mask]).max()) == 0.0
    assert float(jnp.abs(jac["loss"][0][mask]).min()) > 0.0
    # Ignoring masks (the official code's behaviour) makes the padded frames count.
    ones = np.ones((T, T))
    _, _, q1 = _run("official_code", {}, z, steps, mask, ones, ones)
    _, _, q2 = _run("official_code", {}, z2, steps2, mask, ones, ones)
    assert abs(q1["loss"] - q2["loss"]) > 1e-3


@pytest.mark.parametrize("preset", lac.PRESETS)
def test_identical_and_zero_embeddings_are_finite(preset):
  _, (_, steps, mask, go, ge) = _case(9, np.float32)
  rng = np.random.default_rng(9)
  same = rng.normal(size=(B, 1, T, E))
  cases = {
    "zeros": np.zeros((B, 2, T, E)),  # every distance 0, zero vectors for cosine
    "same_views": np.concatenate([same, same], 1),  # d(z1_i, z2_i) = 0
    "constant": np.ones((B, 2, T, E)),
  }  # all frames identical
  for name, z in cases.items():
    _, jac, parts = _run(preset, {}, np.float32(z), steps, mask, go, ge)
    for k, v in parts.items():
      assert np.all(np.isfinite(v)), (name, k)
    for g in jac["loss"]:
      assert bool(jnp.all(jnp.isfinite(g))), name


# ---------------------------------------------------------------------------------------------
# Config, gap parameters, bad input.
# ---------------------------------------------------------------------------------------------


def test_loss_config_presets_and_validation():
  paper, official = lac.default_config(), lac.default_config("official_code")
  assert paper.keys() == official.keys()
  assert paper.name == "lac" and losses.default_config("lac").to_dict() == paper.to_dict()
  assert (paper.alpha, paper.beta, paper.var, paper.gamma) == (0.01, 1.0, 10.0, 0.8)
  assert paper.honour_masks and not official.honour_masks
  assert official.ll_stop_gradient and official.ll_product == "matmul"
  assert (paper.gap_lr, paper.gap_weight_decay) == (0.1, 1e-5)
  with pytest.raises(ValueError, match="preset"):
    lac.default_config("nope")
  bad = [
    ("lc_similarity", "l1"),
    ("tau", 0.0),
    ("lc_directions", 3),
    ("sw_sign", 0),
    ("sw_eps", -1.0),
    ("ll_tau", -2.0),
    ("ll_product", "outer"),
    ("gap_lr", -1.0),
    ("gap_open_init", float("nan")),
  ]
  for field, value in bad:
    cfg = lac.default_config()
    cfg[field] = value
    with pytest.raises(ValueError, match=f"loss.{field}"):
      losses.check_config(cfg)
  cfg = lac.default_config()
  cfg.gap_positive, cfg.gap_open_init = True, 0.0
  with pytest.raises(ValueError, match="gap_open_init"):
    losses.build(cfg)
  # Maximising the score needs positive gaps (unbounded otherwise), in both presets.
  for preset in ("paper", "official_code"):
    cfg = lac.default_config(preset)
    cfg.sw_sign = -1
    with pytest.raises(
      ValueError, match=r"^config.loss.gap_positive: must be True with loss.sw_sign=-1"
    ):
      losses.check_config(cfg)
    cfg.gap_positive = True
    losses.check_config(cfg)
  # The registry: unknown names and fields are errors naming them.
  cfg = lac.default_config()
  cfg.name = "nope"
  with pytest.raises(ValueError, match="loss.name: expected one of"):
    losses.build(cfg)
  cfg = lac.default_config()
  cfg.gama = 0.5
  with pytest.raises(ValueError, match=r"unknown fields \['gama'\]"):
    losses.check_config(cfg)


def test_gap_penalty_init_and_values():
  loss = losses.build(lac.default_config("official_code"))
  assert loss.params_key == "gap" and (loss.learning_rate, loss.weight_decay) == (0.1, 1e-5)
  p = loss.init_params(7)
  assert p["gap_open"].shape == (7, 7) and p["gap_extend"].shape == (7, 7)
  np.testing.assert_array_equal(loss.penalties(p)["gap_open"], np.ones((7, 7)))
  assert {k: float(v) for k, v in loss.log_scalars(p).items()} == {
    "gap_open": 1.0,
    "gap_extend": 1.0,
  }
  loss = losses.build(
    _cfg(gap_per_cell=False, gap_positive=True, gap_open_init=1e-3, gap_extend_init=30.0)
  )
  p = loss.init_params(7)
  assert p["gap_open"].shape == ()
  v = loss.penalties(p)
  np.testing.assert_allclose([v["gap_open"], v["gap_extend"]], [1e-3, 30.0], rtol=1e-5)
  # Softplus keeps any raw value positive.
  v = lac.gap_penalty_values({"gap_open": jnp.float32(-50.0), "gap_extend": 0.0}, True)
  assert float(v["gap_open"]) > 0
  with pytest.raises(ValueError, match="gap_extend"):
    lac.gap_penalty_values({"gap_open": 1.0}, True)


def test_bad_inputs_raise():
  rng = np.random.default_rng(10)
  cfg = _cfg()
  z1, z2 = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
  s = np.arange(5)
  settings = lac.loss_kwargs(cfg)
  kw = dict(gap_open=1.0, gap_extend=1.0, **settings)
  with pytest.raises(ValueError, match="prefix"):
    lac.lac_loss(z1, z2, s, s, mask1=np.array([1, 0, 1, 1, 1], bool), **kw)
  with pytest.raises(ValueError, match="no valid frame"):
    lac.lac_loss(z1, z2, s, s, mask2=np.zeros(5, bool), **kw)
  with pytest.raises(ValueError, match="gap_open"):
    lac.lac_loss(z1, z2, s, s, gap_open=np.ones((4, 4)), gap_extend=1.0, **settings)
  with pytest.raises(ValueError, match="gap_extend"):
    lac.lac_loss(
      z1,
      rng.normal(size=(6, 4)),
      s,
      np.arange(6),
      gap_open=1.0,
      gap_extend=np.ones((5, 6)),
      **settings,
    )
  with pytest.raises(ValueError, match="steps2"):
    lac.lac_loss(z1, z2, s, np.arange(4), **kw)
  with pytest.raises(ValueError, match=r"\[\.\.\., T1, E\]"):
    lac.lac_loss(z1[None], z2, s, s, **kw)
  with pytest.raises(ValueError, match=r"\[B, 2, T, E\]"):
    losses.build(cfg)({"gap_open": 1.0, "gap_extend": 1.0}, z1[None], s[None])
  with pytest.raises(ValueError, match="matmul"):
    lac.lac_loss(
      z1,
      rng.normal(size=(6, 4)),
      s,
      np.arange(6),
      gap_open=1.0,
      gap_extend=1.0,
      **lac.loss_kwargs(_cfg(ll_product="matmul")),
    )
