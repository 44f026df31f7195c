"""The baseline losses (SCL, TCC, ...) against float64 NumPy restatements of their original codes'
lines (each reference names the file and commit it restates), finite gradients on degenerate
and padded inputs, and a few training steps through the trainer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import log_softmax, softmax, xlogy

from lac_jax import logs
from lac_jax import losses

B, T, E = 3, 7, 5


def _batch(seed, lengths=None, scale=1.0):
  """z [B, 2, T, E], sorted raw steps [B, 2, T], prefix masks, video lengths [B]."""
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(B, 2, T, E)) * scale
  video_len = rng.integers(2 * T, 3 * T, size=B)
  steps = np.sort(rng.integers(0, video_len[:, None, None], size=(B, 2, T)), axis=-1)
  mask = np.ones((B, 2, T), bool)
  for (b, v), n in (lengths or {}).items():
    mask[b, v, n:] = False
    steps[b, v, n:] = steps[b, v, n - 1]
  return z, steps, mask, video_len


PADDED = {(0, 1): 4, (2, 0): 5}


def _value(loss_name, z, steps, mask, lengths, **overrides):
  cfg = losses.default_config(loss_name)
  cfg.update(overrides)
  with jax.enable_x64(True):
    value, parts = losses.build(cfg)(
      None, jnp.asarray(z), jnp.asarray(steps), jnp.asarray(mask), lengths=jnp.asarray(lengths)
    )
    return float(value), {k: float(v) for k, v in parts.items()}


def _value_and_grad(loss_name, z, steps, mask, **overrides):
  """Float64 value and gradient with respect to ``z``."""
  cfg = losses.default_config(loss_name)
  cfg.update(overrides)
  loss = losses.build(cfg)
  with jax.enable_x64(True):
    value, grad = jax.value_and_grad(
      lambda x: loss(None, x, jnp.asarray(steps), jnp.asarray(mask))[0]
    )(jnp.asarray(z))
    return float(value), np.asarray(grad)


def _grad_checks(loss_name, **overrides):
  """Finite gradients for identical views, zero embeddings and padded frames (no gradient to
  padded frames where masks are honoured)."""
  cfg = losses.default_config(loss_name)
  cfg.update(overrides)
  loss = losses.build(cfg)
  z, steps, mask, lengths = _batch(9, PADDED)
  same = np.concatenate([z[:, :1], z[:, :1]], 1)
  # Compiled once for the four cases (op by op, each case took seconds).
  grad_fn = jax.jit(
    jax.grad(
      lambda x: loss(None, x, jnp.asarray(steps), jnp.asarray(mask), lengths=jnp.asarray(lengths))[
        0
      ]
    )
  )
  for case in (z, same, np.zeros_like(z), z * 1e3):
    grad = grad_fn(jnp.asarray(case, jnp.float32))
    assert bool(jnp.all(jnp.isfinite(grad))), loss_name
  if cfg.get("honour_masks", False) and not cfg.get("padded_weight", 0.0):
    assert float(jnp.abs(grad[~mask]).max()) == 0.0


# ---------------------------------------------------------------------------------------------
# SCL.


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def scl_reference(z, steps, mask, tau=0.1, var=10.0):
  """CARL_code algos/scl.py @c574312 for one video at a time (CARL's configs: one video per
  process, gradients averaged over processes): KL(Y || Q) summed over the valid pairs of the two
  views, both directions, divided by the number of valid frames, then the mean over videos
  (float64; padded frames removed)."""
  out = []
  for b in range(len(z)):
    za, zb = z[b, 0][mask[b, 0]], z[b, 1][mask[b, 1]]
    sa, sb = steps[b, 0][mask[b, 0]], steps[b, 1][mask[b, 1]]
    total = 0.0
    for q, k, sq, sk in ((za, zb, sa, sb), (zb, za, sb, sa)):
      g = np.exp(-((sq[:, None] - sk[None, :]) ** 2) / (2 * var))
      y = g / g.sum(1, keepdims=True)
      p = softmax(_unit(q) @ _unit(k).T / tau, axis=1)
      total += np.sum(xlogy(y, y) - y * np.log(p + 1e-6))
    out.append(total / (len(za) + len(zb)))
  return np.mean(out)


def carl_batch_reference(z, steps, mask, lengths, tau=0.1, var=10.0):
  """CARL_code algos/scl.py @c574312 ``compute_sequence_loss`` (``single_noself``, ``gauss``),
  which the official LAC code's model/scl.py @52fb74b copies, restated line by line in float64
  on the whole batch: one (2BT)^2 logit matrix, weight 0 outside the own video and in the own
  view, 1e-6 wherever a pair has a padded frame, ``safe_div`` rows, ``F.kl_div`` summed over the
  valid pairs and divided by the batch's number of valid frames."""
  nb, _, t, e = z.shape
  n = nb * 2 * t
  embs = _unit(z).reshape(n, e)
  st = steps.reshape(n).astype(float)
  seq = np.repeat(lengths, 2 * t).astype(float)
  m = mask.reshape(n).astype(float)
  input_masks = m[:, None] * m[None, :]
  logits = embs @ embs.T / tau
  dist = np.abs(st[:, None] / seq[:, None] * seq[None, :] - st[None, :])
  dist[input_masks == 0] = 1e6
  weight = np.ones_like(logits)
  label = np.zeros_like(logits)
  pos = np.exp(-np.square(dist) / (2 * var))

  def safe_div(a, b):  # CARL's: 0 / 0 -> 0
    with np.errstate(invalid="ignore"):
      return np.nan_to_num(a / b, nan=0.0)

  for b in range(nb):
    start, mid, end = b * 2 * t, b * 2 * t + t, (b + 1) * 2 * t
    weight[start:end, :start] = 0
    weight[start:end, end:] = 0
    weight[start:mid, start:mid] = 0
    weight[mid:end, mid:end] = 0
    for rows, cols in ((slice(start, mid), slice(mid, end)), (slice(mid, end), slice(start, mid))):
      label[rows, cols] = safe_div(pos[rows, cols], pos[rows, cols].sum(1, keepdims=True))
  weight[input_masks == 0] = 1e-6
  exp_logits = np.exp(logits)
  sum_negative = np.sum(weight * exp_logits, 1, keepdims=True)
  kl = xlogy(label, label) - label * np.log(safe_div(exp_logits, sum_negative) + 1e-6)
  return np.sum(kl * input_masks) / np.sum(m)


def test_scl_matches_carl():
  z, steps, mask, lengths = _batch(0, PADDED)
  value, parts = _value("scl", z, steps, mask, lengths)
  np.testing.assert_allclose(value, scl_reference(z, steps, mask), rtol=1e-10)
  assert set(parts) == {"loss", "kl12", "kl21"}
  # Padded frames change nothing.
  z2 = z.copy()
  z2[~mask] = 50.0
  np.testing.assert_allclose(_value("scl", z2, steps, mask, lengths)[0], value, rtol=1e-12)
  _grad_checks("scl")


def test_scl_official_code_is_carls_batch_loss():
  """The official preset is CARL's / the official LAC code's loss on the device batch: the
  batch's KL total over its valid frames, padded frames at weight 1e-6 in every denominator."""
  z, steps, mask, lengths = _batch(0, PADDED)
  official = losses.default_config("scl", "official_code")
  assert (official.reduction, official.padded_weight) == ("frames", 1e-6)
  value, _ = _value("scl", z, steps, mask, lengths, **official.to_dict())
  want = carl_batch_reference(z, steps, mask, lengths)
  np.testing.assert_allclose(value, want, rtol=1e-10)
  # Not the per-video mean; nor the batch total without the padded frames' 1e-6 weights, which
  # reach across videos (a padded frame 50 units away dominates its 1e-6-weighted term).
  assert abs(want / scl_reference(z, steps, mask) - 1) > 1e-3
  z2 = z.copy()
  z2[~mask] = 50.0 * _unit(z[0, 0, :1])
  np.testing.assert_allclose(
    _value("scl", z2, steps, mask, lengths, **official.to_dict())[0],
    carl_batch_reference(z2, steps, mask, lengths),
    rtol=1e-10,
  )
  exact = _value("scl", z, steps, mask, lengths, reduction="frames")[0]
  assert 0 < abs(exact - value) < 1e-3 * value
  # Without padding every video has the same number of frames: both reductions agree.
  full = np.ones_like(mask)
  np.testing.assert_allclose(
    _value("scl", z, steps, full, lengths, **official.to_dict())[0],
    scl_reference(z, steps, full),
    rtol=1e-10,
  )
  _grad_checks("scl", **official.to_dict())


# ---------------------------------------------------------------------------------------------
# TCC.


def tcc_reference(
  z,
  steps,
  mask,
  lengths,
  pairs="videos",
  temperature=0.1,
  lam=0.001,
  loss_type="regression_mse_var",
  honour=True,
  similarity="l2",
  label_smoothing=0.1,
):
  """google-research tcc @0c1bbe5, tcc/tcc/deterministic_alignment.py (get_scaled_similarity,
  align_pair_of_sequences) and tcc/tcc/losses.py (classification_loss with Keras label
  smoothing, regression_loss), float64, per ordered pair, rows concatenated (padded frames
  dropped when ``honour``)."""
  seqs = z.reshape(2 * B, T, E)
  times = steps.reshape(2 * B, T) / np.repeat(lengths, 2)[:, None]
  valid = mask.reshape(2 * B, T) if honour else np.ones((2 * B, T), bool)
  ids = range(0, 2 * B, 2) if pairs == "videos" else range(2 * B)

  def sim(a, b):  # get_scaled_similarity: no normalisation for 'cosine'
    s = a @ b.T if similarity == "cosine" else -((a[:, None] - b[None]) ** 2).sum(-1)
    return s / a.shape[1] / temperature

  rows = []
  for i in ids:
    for j in ids:
      if i == j:
        continue
      u, v, su = seqs[i][valid[i]], seqs[j][valid[j]], times[i][valid[i]]
      nn = softmax(sim(u, v), axis=1) @ v
      logits = sim(nn, u)
      if loss_type == "classification":
        n = len(u)
        target = (1 - label_smoothing) * np.eye(n) + label_smoothing / n
        rows += list(-(target * log_softmax(logits, axis=1)).sum(1))
        continue
      beta = softmax(logits, axis=1)
      mu = beta @ su
      nu = (beta * (su[None] - mu[:, None]) ** 2).sum(1)
      rows += list((su - mu) ** 2 / nu + lam * np.log(nu))
  return np.mean(rows)


@pytest.mark.parametrize("pairs, honour", [("videos", True), ("sequences", False)])
def test_tcc_matches_the_tcc_code(pairs, honour):
  z, steps, mask, lengths = _batch(1, PADDED)
  value, _ = _value("tcc", z, steps, mask, lengths, pairs=pairs, honour_masks=honour)
  np.testing.assert_allclose(
    value, tcc_reference(z, steps, mask, lengths, pairs, honour=honour), rtol=1e-9
  )
  official = losses.default_config("tcc", "official_code")
  assert (official.pairs, official.honour_masks) == ("sequences", False)


def test_tcc_cosine_and_classification_as_the_tcc_code():
  """TCC's 'cosine' is the raw dot product / channels / temperature (no normalisation); its
  classification variant smooths the labels by ALIGNMENT.LABEL_SMOOTHING = 0.1."""
  z, steps, mask, lengths = _batch(1, PADDED)
  assert losses.default_config("tcc").label_smoothing == 0.1
  value, _ = _value("tcc", z, steps, mask, lengths, similarity="cosine")
  want = tcc_reference(z, steps, mask, lengths, similarity="cosine")
  np.testing.assert_allclose(value, want, rtol=1e-9)
  normalised = tcc_reference(_unit(z), steps, mask, lengths, similarity="cosine")
  assert abs(normalised / want - 1) > 1e-2  # the old, normalised 'cosine'
  for similarity in ("l2", "cosine"):
    value, _ = _value(
      "tcc", z, steps, mask, lengths, loss_type="classification", similarity=similarity
    )
    want = tcc_reference(z, steps, mask, lengths, loss_type="classification", similarity=similarity)
    np.testing.assert_allclose(value, want, rtol=1e-9)
    unsmoothed = tcc_reference(
      z,
      steps,
      mask,
      lengths,
      loss_type="classification",
      similarity=similarity,
      label_smoothing=0.0,
    )
    assert abs(unsmoothed / want - 1) > 1e-2
  _grad_checks("tcc", similarity="cosine")
  _grad_checks("tcc", loss_type="classification")


def test_tcc_needs_two_videos_and_lengths():
  z, steps, mask, lengths = _batch(2)
  loss = losses.build(losses.default_config("tcc"))
  with pytest.raises(ValueError, match="at least 2 videos"):
    loss(
      None,
      jnp.asarray(z[:1]),
      jnp.asarray(steps[:1]),
      jnp.asarray(mask[:1]),
      lengths=jnp.asarray(lengths[:1]),
    )
  with pytest.raises(ValueError, match="lengths"):
    loss(None, jnp.asarray(z), jnp.asarray(steps), jnp.asarray(mask))
  _grad_checks("tcc")


# ---------------------------------------------------------------------------------------------
# TCN.


def tcn_npairs_reference(z, mask, lam=0.002, order="tcc"):
  """google-research tcc @0c1bbe5: tcc/datasets.py interleaves each sampled step after its
  positive, ``[pos_0, step_0, pos_1, ...]`` (the positive 1-5 frames earlier: our view 2), and
  tcc/algos/tcn.py ``single_sequence_loss`` takes ``embs[0::2]`` as the anchors and
  ``embs[1::2]`` as the positives; ``_npairs_loss``: softmax cross entropy of ``anchors @
  positives^T`` against the identity plus ``0.25 lam (mean |a|^2 + mean |p|^2)``, mean over
  videos. ``order='carl'``: CARL_code @c574312 datasets/pouring.py interleaves ``[step, pos]``
  for the same algos/tcn.py lines. Float64, valid frames only. Returns ``(value, d value / dz)``
  (the gradient by hand: ``(softmax - I) / n`` through the matrix product)."""
  grad = np.zeros_like(z)
  out = []
  for b in range(len(z)):
    keep = mask[b, 0] & mask[b, 1]
    later, earlier = z[b, 0][keep], z[b, 1][keep]
    pairs = (earlier, later) if order == "tcc" else (later, earlier)
    embs = np.stack(pairs, 1).reshape(-1, z.shape[-1])
    a, p = embs[0::2], embs[1::2]
    n = len(a)
    sm = softmax(a @ p.T, axis=1)
    xent = -np.diag(np.log(sm))
    out.append(xent.mean() + 0.25 * lam * ((a**2).sum(1).mean() + (p**2).sum(1).mean()))
    d_logits = (sm - np.eye(n)) / n
    da = d_logits @ p + 0.5 * lam * a / n
    dp = d_logits.T @ a + 0.5 * lam * p / n
    d_later, d_earlier = (dp, da) if order == "tcc" else (da, dp)
    grad[b, 0][keep], grad[b, 1][keep] = d_later, d_earlier
  return np.mean(out), grad / len(z)


def test_tcn_npairs_anchors_are_the_earlier_frames():
  """Value and gradient of the default equal TCC's n-pairs (anchors = the earlier frames);
  ``anchors='later'`` is CARL's order, which differs."""
  z, steps, mask, lengths = _batch(3, PADDED)
  assert losses.default_config("tcn").anchors == "earlier"
  want, want_grad = tcn_npairs_reference(z, mask)
  carl, carl_grad = tcn_npairs_reference(z, mask, order="carl")
  for anchors, (v, g) in (("earlier", (want, want_grad)), ("later", (carl, carl_grad))):
    value, grad = _value_and_grad("tcn", z, steps, mask, anchors=anchors)
    np.testing.assert_allclose(value, v, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(grad), g, rtol=1e-8, atol=1e-12)
  assert abs(carl / want - 1) > 1e-2
  assert np.abs(carl_grad - want_grad).max() > 1e-2


def tcn_triplet_reference(z, steps, mask, margin=0.2, pos=10, neg=30):
  out = []
  for b in range(len(z)):
    per_anchor = []
    for i in np.flatnonzero(mask[b, 0]):
      gaps = np.abs(steps[b, 0, i] - steps[b, 1])
      ps = [j for j in range(T) if mask[b, 1, j] and gaps[j] <= pos]
      ns = [j for j in range(T) if mask[b, 1, j] and gaps[j] >= neg]
      if not ps or not ns:
        continue
      d = lambda j: np.linalg.norm(z[b, 0, i] - z[b, 1, j] + 1e-6)  # pylint: disable=cell-var-from-loop
      per_anchor.append(np.mean([max(d(p) - d(n) + margin, 0) for p in ps for n in ns]))
    out.append(np.mean(per_anchor) if per_anchor else 0.0)
  return np.mean(out)


def test_tcn_triplets():
  z, steps, mask, lengths = _batch(4, PADDED)
  steps = np.sort(np.random.default_rng(4).integers(0, 80, size=(B, 2, T)), axis=-1)
  value, _ = _value("tcn", z, steps, mask, lengths, variant="triplet")
  np.testing.assert_allclose(value, tcn_triplet_reference(z, steps, mask), rtol=1e-10)
  assert losses.default_config("tcn", "official_code").variant == "triplet"
  _grad_checks("tcn")
  _grad_checks("tcn", anchors="later")
  _grad_checks("tcn", variant="triplet")


def test_tcn_positive_sampling():
  from lac_jax.data import sampling  # pylint: disable=g-import-not-at-top

  cfg = sampling.default_config()
  cfg.num_frames, cfg.views, cfg.positive_window = 16, "tcn_positives", 5
  steps, mask = sampling.sample_two_views(60, cfg, np.random.default_rng(0))
  back = steps[0] - steps[1]
  assert np.all((back >= 1) & (back <= 5) | (steps[1] == 0))  # 1-5 frames before the anchor
  np.testing.assert_array_equal(mask[0], mask[1])


# ---------------------------------------------------------------------------------------------
# LAV.


def lav_reference(
  z,
  steps,
  mask,
  lengths,
  normalize=False,
  bug=False,
  honour=True,
  gamma=0.1,
  alpha=0.5,
  sigma=10.0,
  margin=2.0,
):
  """LAV-CVPR21 @3c4154c losses.py (soft-DTW + C-IDM) on the official LAC code's pairs
  (model/lav.py @52fb74b: sequence k against sequence k + B), float64."""
  from test_soft_dtw import reference as sdtw  # pylint: disable=g-import-not-at-top

  seqs = z.reshape(2 * B, T, E)
  s = steps.reshape(2 * B, T).astype(float)
  vlen = np.repeat(lengths, 2).astype(float)
  valid = mask.reshape(2 * B, T) if honour else np.ones((2 * B, T), bool)
  sq = lambda a, b: ((a[:, None] - b[None]) ** 2).sum(-1)

  def idm(seq, idx):
    x, st, keep = seqs[seq], s[idx], valid[seq]
    total = 0.0
    for i in np.flatnonzero(keep):
      for j in np.flatnonzero(keep):
        d = ((x[i] - x[j]) ** 2).sum()
        gap = abs(st[i] - st[j])
        total += d if gap <= sigma else (1 + (gap / vlen[idx]) ** 2) * max(0.0, margin - d)
    return total

  out = []
  for k in range(B):
    a, b2 = k, k + B
    x, y = seqs[a][valid[a]], seqs[b2][valid[b2]]
    delta = sdtw(sq(x, y), gamma)
    if normalize:
      delta -= 0.5 * (sdtw(sq(x, x), gamma) + sdtw(sq(y, y), gamma))
    ia, ib = (2 * k, 2 * k + 1) if bug else (a, b2)
    out.append((delta + alpha * (idm(a, ia) + idm(b2, ib))) / T)
  return np.mean(out)


@pytest.mark.parametrize("preset", ["paper", "official_code"])
def test_lav_matches_lav_cvpr21(preset):
  z, steps, mask, lengths = _batch(5, PADDED, scale=0.3)
  cfg = losses.default_config("lav", preset)
  value, parts = _value("lav", z, steps, mask, lengths, **cfg.to_dict())
  want = lav_reference(
    z, steps, mask, lengths, normalize=cfg.normalize, bug=cfg.idm_index_bug, honour=cfg.honour_masks
  )
  np.testing.assert_allclose(value, want, rtol=1e-9)
  np.testing.assert_allclose(parts["alignment"] + parts["idm"], value, rtol=1e-12)
  _grad_checks("lav", **cfg.to_dict())


@pytest.mark.parametrize("preset", ["paper", "official_code"])
def test_lav_pairs_different_videos_and_refuses_one_video(preset):
  """LAV-CVPR21's AlignData draws two different videos; the official LAC code's split pairs a
  video's two views when a device holds one video. Every B >= 2 pairs different videos (odd B
  included); B = 1 is refused."""
  from lac_jax.losses import lav  # pylint: disable=g-import-not-at-top

  for b in range(2, 9):
    first, second = lav.pair_indices(b)
    assert len(first) == b and np.all(first // 2 != second // 2), b
  z, steps, mask, lengths = _batch(5)
  loss = losses.build(losses.default_config("lav", preset))
  with pytest.raises(ValueError, match="at least 2 videos per device, got 1.*data.batch_size"):
    loss(
      None,
      jnp.asarray(z[:1]),
      jnp.asarray(steps[:1]),
      jnp.asarray(mask[:1]),
      lengths=jnp.asarray(lengths[:1]),
    )


# ---------------------------------------------------------------------------------------------
# GTA.


def smooth_dtw_reference(x, y, gf=0.1, gs=0.1):
  """VideoAlignment @01b10ba d2tw/smoothDTW.py ``smoothDTW`` ('cosine', D2TW_NORM, 'dtw_prob'),
  float64, with the float-max border cells left out of the neighbours' softmax (where the
  original gives them probability exactly 0). Returns ``r[1:, 1:]``."""
  n, m = len(x), len(y)
  c = -log_softmax(x @ y.T / gf, axis=0)
  r = np.zeros((n + 1, m + 1))
  for a in range(1, n + 1):
    for b in range(1, m + 1):
      cands = []
      for ia, ib in ((a, b - 1), (a - 1, b - 1), (a - 1, b)):
        if (ia, ib) == (0, 0) or (ia >= 1 and ib >= 1):
          cands.append(r[ia, ib])
      cands = np.array(cands)
      pi = softmax(-cands / gs)
      r[a, b] = c[a - 1, b - 1] + (pi * cands).sum()
  return r[1:, 1:]


def gta_reference(z, pairs="videos", transpose=True, ls=0.1, weight=0.1, mask=None):
  """VideoAlignment @01b10ba d2tw/smoothDTW.py ``compute_dtw_alignment_consistency_loss``
  (anchor 0 against the others, ``transpose(A B)``, Keras cross entropy with label smoothing,
  ``+ 0.1 c_ij + 0.1 c_ji``), float64. With ``mask``, every sequence is cropped to its valid
  frames first (GTA's sampler never pads)."""
  nb = len(z)
  seqs = _unit(z).reshape(2 * nb, z.shape[2], z.shape[3])
  valid = np.ones(seqs.shape[:2], bool) if mask is None else mask.reshape(2 * nb, -1)
  partners = range(2, 2 * nb, 2) if pairs == "videos" else range(1, 2 * nb)
  x = seqs[0][valid[0]]
  ces, cxy, cyx = [], [], []
  for j in partners:
    y = seqs[j][valid[j]]
    rxy, ryx = smooth_dtw_reference(x, y), smooth_dtw_reference(y, x)
    p = softmax(-rxy, axis=0) @ softmax(-ryx, axis=0)
    logits = p.T if transpose else p
    n = len(x)
    target = (1 - ls) * np.eye(n) + ls / n
    ces.append(-(target * log_softmax(logits, axis=1)).sum(1).mean())
    cxy.append(rxy[-1, -1])
    cyx.append(ryx[-1, -1])
  return np.mean(ces) + weight * (np.mean(cxy) + np.mean(cyx))


@pytest.mark.parametrize("preset", ["paper", "official_code"])
def test_gta_matches_video_alignment(preset):
  z, steps, mask, lengths = _batch(6)
  cfg = losses.default_config("gta", preset)
  value, parts = _value("gta", z, steps, mask, lengths, **cfg.to_dict())
  np.testing.assert_allclose(value, gta_reference(z, cfg.pairs, cfg.transpose), rtol=1e-9)
  np.testing.assert_allclose(parts["consistency"] + parts["cost"], value, rtol=1e-12)
  _grad_checks("gta", **cfg.to_dict())


GTA_PADDED = {(0, 0): 5, (1, 0): 4, (2, 0): 6, (1, 1): 3}


@pytest.mark.parametrize("pairs, transpose", [("videos", True), ("sequences", False)])
def test_gta_padded_batch_equals_its_valid_frames(pairs, transpose):
  """With masks honoured (default) the loss of a padded batch (padded frames = copies of the
  last valid frame, as our sampler makes them) is GTA's loss of the cropped sequences; the
  official preset counts the copies as frames."""
  z, steps, mask, lengths = _batch(7, GTA_PADDED)
  for (b, v), n in GTA_PADDED.items():
    z[b, v, n:] = z[b, v, n - 1]
  value, _ = _value("gta", z, steps, mask, lengths, pairs=pairs, transpose=transpose)
  cropped = gta_reference(z, pairs, transpose, mask=mask)
  np.testing.assert_allclose(value, cropped, rtol=1e-9)
  z2 = z.copy()
  z2[~mask] = np.random.default_rng(0).normal(size=z2[~mask].shape)
  np.testing.assert_allclose(
    _value("gta", z2, steps, mask, lengths, pairs=pairs, transpose=transpose)[0], cropped, rtol=1e-9
  )
  official = losses.default_config("gta", "official_code")
  assert official.honour_masks is False
  unmasked, _ = _value(
    "gta", z, steps, mask, lengths, pairs=pairs, transpose=transpose, honour_masks=False
  )
  np.testing.assert_allclose(unmasked, gta_reference(z, pairs, transpose), rtol=1e-9)
  assert abs(unmasked / cropped - 1) > 1e-3


# ---------------------------------------------------------------------------------------------
# End to end: every baseline trains through the trainer (--config.loss.name=...), is evaluated
# by the same pass and resumes.

TRAIN_SCRIPT = """
import importlib.util, json, sys
import jax, numpy as np
spec = importlib.util.spec_from_file_location("tiny", sys.argv[1])
tiny = importlib.util.module_from_spec(spec); spec.loader.exec_module(tiny)
from lac_jax import checkpoint, train
root = sys.argv[2]
out = {}
for name in ("scl", "tcc", "tcn", "lav", "gta"):
  cfg = tiny.get_config()
  cfg.loss.name = name  # as --config.loss.name=<name>: the trainer takes that loss's defaults
  cfg.train.num_steps, cfg.train.eval_at_end = 3, True
  state = train.train_and_evaluate(cfg, f"{root}/{name}")
  out[name] = int(state.step)
cfg = tiny.get_config()
cfg.loss.name = "tcc"
cfg.train.num_steps, cfg.train.stop_at_step = 4, 2
train.train_and_evaluate(cfg, f"{root}/resumed")
cfg.train.stop_at_step = 0
resumed = train.train_and_evaluate(cfg, f"{root}/resumed")
whole = train.train_and_evaluate(cfg, f"{root}/whole")
same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(resumed.params),
                                                 jax.tree.leaves(whole.params)))
json.dump({"steps": out, "resume_equal": same, "resumed_step": int(resumed.step)},
          open(f"{root}/results.json", "w"))
"""


def test_every_baseline_trains_evaluates_and_resumes(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  import launched  # pylint: disable=g-import-not-at-top

  (tmp_path / "run.py").write_text(TRAIN_SCRIPT)
  proc = launched.run([tmp_path / "run.py", launched.TINY, tmp_path], timeout=900)
  assert proc.returncode == 0, proc.stderr[-5000:]
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["steps"] == {name: 3 for name in ("scl", "tcc", "tcn", "lav", "gta")}
  assert results["resume_equal"] and results["resumed_step"] == 4
  for name in results["steps"]:
    saved = json.loads((tmp_path / name / "config.json").read_text())
    assert saved["loss"]["name"] == name
    assert (saved["data"]["sampling"]["views"] == "tcn_positives") == (name == "tcn")
    summary = json.loads((tmp_path / name / "eval" / "summary.json").read_text())
    row = summary["rows"]["trained (step 3)"]
    assert all(np.isfinite(v) for k, v in row.items() if k in ("class_100", "ap_5", "tau"))
    rows = [r for r in logs.read_metrics(tmp_path / name) if "train/loss" in r]
    parts = {"lav": "train/idm", "gta": "train/consistency", "scl": "train/kl12"}
    assert len(rows) == 3 and all(np.isfinite(r["train/loss"]) for r in rows)
    assert parts.get(name, "train/loss") in rows[-1]
