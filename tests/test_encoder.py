"""Tests for lac_jax.models.encoder on a tiny ResNet-18 config and 32x32 frames."""

import logging

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny import tiny_encoder_config

from lac_jax.models import convert
from lac_jax.models import encoder
from lac_jax.models import resnet
from lac_jax.models import resnet_trunk

# One worker runs this module (pytest-xdist): its module fixtures then run once.
pytestmark = pytest.mark.xdist_group("encoder")

B, T, H = 2, 4, 32


def tiny_config(**overrides):
  return tiny_encoder_config(**overrides)


_APPLY_CACHE = {}


def apply_eval(config, variables, frames, mask):
  """Eval apply, compiled once per (config, shapes) and cached for the session."""
  key = (config.to_json(), frames.shape, str(frames.dtype))
  if key not in _APPLY_CACHE:
    model = encoder.build_encoder(config)
    _APPLY_CACHE[key] = jax.jit(lambda v, x, m: model.apply(v, x, m, train=False))
  return np.asarray(_APPLY_CACHE[key](variables, frames, mask))


@pytest.fixture(scope="module")
def variables():
  model = encoder.build_encoder(tiny_config())
  return encoder.init_variables(model, jax.random.PRNGKey(0), (B, T, H, H, 3))


@pytest.fixture(scope="module")
def frames():
  rng = np.random.default_rng(0)
  return rng.integers(0, 256, size=(B, T, H, H, 3), dtype=np.uint8)


def test_shapes_unit_norm_and_determinism(variables, frames):
  mask = np.ones((B, T), bool)
  y1 = apply_eval(tiny_config(), variables, frames, mask)
  y2 = apply_eval(tiny_config(), variables, frames, mask)
  assert y1.shape == (B, T, 8) and y1.dtype == np.float32
  np.testing.assert_array_equal(y1, y2)
  np.testing.assert_allclose(np.linalg.norm(y1, axis=-1), 1.0, rtol=1e-5)
  y_raw = apply_eval(tiny_config(l2_normalize=False), variables, frames, mask)
  assert not np.allclose(np.linalg.norm(y_raw, axis=-1), 1.0, atol=1e-3)
  np.testing.assert_allclose(
    y_raw / np.linalg.norm(y_raw, axis=-1, keepdims=True), y1, rtol=1e-5, atol=1e-6
  )
  # Float frames in [0, 1] are the same images as uint8 in [0, 255].
  y_float = apply_eval(tiny_config(), variables, frames.astype(np.float32) / 255.0, mask)
  np.testing.assert_allclose(y_float, y1, rtol=1e-5, atol=1e-5)


def test_attention_mixes_time_within_a_video_only(variables, frames):
  mask = np.ones((B, T), bool)
  y = apply_eval(tiny_config(), variables, frames, mask)
  changed = frames.copy()
  changed[0, 2] = 255 - changed[0, 2]
  y_changed = apply_eval(tiny_config(), variables, changed, mask)
  diff = np.abs(y_changed - y).max(axis=-1)
  assert np.all(diff[0] > 1e-4), diff  # Every frame of video 0 sees frame 2.
  np.testing.assert_array_equal(y_changed[1], y[1])  # Video 1 is untouched.


def test_padded_frames_do_not_affect_valid_frames(variables, frames):
  mask = np.array([[True, True, True, False], [True, True, True, True]])
  y = apply_eval(tiny_config(), variables, frames, mask)
  changed = frames.copy()
  changed[0, 3] = 0  # Change the padded frame only.
  y_changed = apply_eval(tiny_config(), variables, changed, mask)
  np.testing.assert_array_equal(y_changed[0, :3], y[0, :3])
  # With positions 0..T-1, a padded video embeds like the same video without the padding.
  y_short = apply_eval(tiny_config(), variables, frames[:1, :3], np.ones((1, 3), bool))
  np.testing.assert_allclose(y[0, :3], y_short[0], rtol=1e-5, atol=1e-6)


def test_chunked_trunk_equals_unchunked(variables, frames):
  mask = np.ones((B, T), bool)
  y = apply_eval(tiny_config(), variables, frames, mask)
  y_chunked = apply_eval(tiny_config(trunk_chunk=3), variables, frames, mask)  # 8 = 3+3+2.
  np.testing.assert_allclose(y_chunked, y, rtol=1e-5, atol=1e-6)


def test_conv3d_with_one_context_frame_uses_only_the_centre_slice(variables, frames):
  kernel = variables["params"]["context_conv_0"]["kernel"]
  assert kernel.shape == (3, 3, 3, 64, 16)  # The official Conv3d shape, (t, h, w, Cin, Cout).
  mask = np.ones((B, T), bool)
  y = apply_eval(tiny_config(), variables, frames, mask)
  params = jax.tree_util.tree_map(lambda x: x, variables["params"])
  params["context_conv_0"] = dict(params["context_conv_0"])
  params["context_conv_0"]["kernel"] = kernel.at[0].set(7.0).at[2].set(-7.0)
  y_outer = apply_eval(tiny_config(), {**variables, "params": params}, frames, mask)
  np.testing.assert_array_equal(y_outer, y)


def reference_conv3d(x, kernel, bias, spatial_pad):
  """Slow Conv3D: zero-pad time by 1 and space by ``spatial_pad``, sum over kernel offsets."""
  n, t, h, w, _ = x.shape
  xp = np.pad(x, ((0, 0), (1, 1), (spatial_pad,) * 2, (spatial_pad,) * 2, (0, 0)))
  ho, wo = h + 2 * spatial_pad - 2, w + 2 * spatial_pad - 2
  out = np.zeros((n, t, ho, wo, kernel.shape[-1])) + bias
  for dt in range(3):
    for dh in range(3):
      for dw in range(3):
        out += np.einsum(
          "nthwc,co->nthwo", xp[:, dt : dt + t, dh : dh + ho, dw : dw + wo], kernel[dt, dh, dw]
        )
  return out


@pytest.mark.parametrize("nc,padding", [(1, "valid"), (1, "same"), (2, "valid")])
def test_context_conv3d_matches_reference(nc, padding):
  rng = np.random.default_rng(nc)
  x = rng.standard_normal((2, nc, 5, 6, 3)).astype(np.float32)
  conv = encoder.ContextConv3D(4, padding)
  params = {
    "kernel": rng.standard_normal((3, 3, 3, 3, 4)).astype(np.float32),
    "bias": rng.standard_normal(4).astype(np.float32),
  }
  y = conv.apply({"params": params}, x)
  ref = reference_conv3d(
    x.astype(np.float64),
    params["kernel"].astype(np.float64),
    params["bias"],
    1 if padding == "same" else 0,
  )
  assert y.shape == ref.shape
  np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_train_mode_dropout_gradients_and_backbone_modes(variables, frames):
  """Which parameters and statistics each backbone mode trains, and chunking's exactness (the
  same compile settings on both sides)."""
  mask = np.array([[True, True, True, False], [True, True, True, True]])
  results = {}
  # Dropout only in one run: its threefry bits dominate CPU compile time. XLA's own convolution
  # gradients compile faster than the CPU default (test_conv.py checks both against each other).
  no_dropout = {"mlp_dropout": 0.0, "pe_dropout": 0.0, "transformer_dropout": 0.0}
  runs = {
    mode: {"backbone_mode": mode, "conv_grad": "xla", **(no_dropout if mode != "train" else {})}
    for mode in encoder.BACKBONE_MODES
  }
  # Running BN statistics make chunking exact, so a chunked, rematerialised trunk must give
  # the same outputs and gradients (8 frames = chunks of 3 + 3 + 2 padded).
  runs["chunked"] = {
    "backbone_mode": "bn_frozen",
    "trunk_chunk": 3,
    "trunk_remat": True,
    "conv_grad": "xla",
    **no_dropout,
  }
  for name, overrides in runs.items():
    # A smaller graph than the fixture's (extra variables are ignored): these compiles dominate.
    model = encoder.build_encoder(tiny_config(cut="conv2a", num_layers=1, **overrides))

    def loss(params, rng):
      y, updates = model.apply(
        {**variables, "params": params},
        frames,
        mask,
        train=True,
        rngs={"dropout": rng},
        mutable=["batch_stats"],
      )
      return jnp.sum(y[:, :, 0]), (y, updates)

    grad_fn = jax.jit(jax.grad(loss, has_aux=True))
    grads, (y, updates) = grad_fn(variables["params"], jax.random.PRNGKey(1))
    results[name] = (grads, y, updates)
    if name == "train":  # Same compiled function, another dropout key.
      _, (y_other, _) = grad_fn(variables["params"], jax.random.PRNGKey(2))
      assert not np.allclose(y, y_other)  # Dropout is active in train mode.

  def norm(tree):
    return float(sum(jnp.sum(jnp.abs(x)) for x in jax.tree_util.tree_leaves(tree)))

  def changed(updates, name):
    old, new = variables["batch_stats"][name], updates["batch_stats"][name]
    return norm(jax.tree_util.tree_map(lambda a, b: a - b, old, new)) > 0

  for mode in encoder.BACKBONE_MODES:
    grads, y, updates = results[mode]
    assert norm(grads["output"]) > 0 and norm(grads["context_conv_0"]) > 0, mode
    assert changed(updates, "context_bn_0"), mode  # Head BN always trains.
    assert (norm(grads["backbone"]) > 0) == (mode != "frozen"), mode
    assert changed(updates, "backbone") == (mode == "train"), mode
  for a, b in zip(
    jax.tree_util.tree_leaves(results["chunked"]), jax.tree_util.tree_leaves(results["bn_frozen"])
  ):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_num_context_groups_frames(variables, frames):
  config = tiny_config(num_context=2)
  model = encoder.build_encoder(config)
  mask = np.array([[True, True, True, False], [True, True, True, True]])
  # Same parameter shapes for any num_context.
  y = jax.jit(lambda v: model.apply(v, frames, mask))(variables)
  assert y.shape == (B, T // 2, 8)
  np.testing.assert_array_equal(
    encoder.context_mask(jnp.asarray(mask), 2), [[True, False], [True, True]]
  )
  with pytest.raises(ValueError, match="divide by num_context=3"):
    encoder.build_encoder(tiny_config(num_context=3)).apply(variables, frames[:, :4], mask)


def reference_positional_encoding(length, dim, positions, ref_length, official_cos):
  """Loop-by-loop transcription of the definition, float64."""
  out = np.zeros((length, dim))
  for t in range(length):
    p = t * (ref_length - 1) / (length - 1) if positions == "linspace" else t
    for i in range(dim):
      k2 = i - (i % 2)
      if i % 2 == 0:
        out[t, i] = np.sin(p / 10000 ** (k2 / dim))
      else:
        out[t, i] = np.cos(p / 10000 ** ((i if official_cos else k2) / dim))
  return out


@pytest.mark.parametrize(
  "positions,official_cos", [("linspace", False), ("linspace", True), ("arange", False)]
)
def test_positional_encoding_matches_definition(positions, official_cos):
  pe = encoder.positional_encoding(7, 16, positions, 32, official_cos)
  ref = reference_positional_encoding(7, 16, positions, 32, official_cos)
  np.testing.assert_allclose(pe, ref, atol=1e-6)
  # With length == reference length, linspace positions are 0..31 as in the official code.
  np.testing.assert_allclose(
    encoder.positional_encoding(32, 8, "linspace", 32),
    encoder.positional_encoding(32, 8, "arange", 32),
    atol=1e-6,
  )


def test_no_positional_encoding(variables, frames):
  """'none' is an all-zero table: the same as passing pe=0, and different from 'arange'."""
  np.testing.assert_array_equal(encoder.positional_encoding(5, 8, "none"), np.zeros((5, 8)))
  mask = np.ones((B, T), bool)
  y_none = apply_eval(tiny_config(pe_positions="none"), variables, frames, mask)
  model = encoder.build_encoder(tiny_config())
  y_zero = model.apply(variables, frames, mask, train=False, pe=jnp.zeros((1, T, 16)))
  np.testing.assert_allclose(y_none, y_zero, rtol=1e-5, atol=1e-6)
  y_arange = apply_eval(tiny_config(pe_positions="arange"), variables, frames, mask)
  assert np.abs(y_arange - y_none).max() > 1e-3


def _write_converted(path, depth=18, drop=None, meta_depth=18, reshape=None):
  """A converted-weights file as convert.py writes it (random values), optionally broken."""
  rng = np.random.default_rng(depth)
  flat = {
    k: rng.standard_normal(v.shape).astype(np.float32)
    for k, v in convert.flatten_variables(resnet.resnet_variable_shapes(depth, "logits")).items()
  }
  if drop:
    flat.pop(drop)
  if reshape:
    flat[reshape] = flat[reshape][..., :1]
  flat[convert.META_DEPTH] = np.asarray(meta_depth)
  np.savez(path, **flat)
  return flat


def test_load_backbone_weights(variables, tmp_path, caplog, monkeypatch):
  path = str(tmp_path / "r18.npz")
  flat = _write_converted(path)
  model = encoder.build_encoder(tiny_config())
  monkeypatch.setattr(encoder, "jit_init", lambda *args, **kwargs: variables)  # Skip a compile.
  with caplog.at_level(logging.INFO):
    loaded = encoder.init_variables(model, jax.random.PRNGKey(0), (B, T, H, H, 3), path)
  assert "Loaded" in caplog.text
  np.testing.assert_array_equal(
    loaded["params"]["backbone"]["layer1_1"]["conv2"]["kernel"],
    flat["params/layer1_1/conv2/kernel"],
  )
  np.testing.assert_array_equal(
    loaded["batch_stats"]["backbone"]["bn1"]["var"], flat["batch_stats/bn1/var"]
  )
  np.testing.assert_array_equal(
    loaded["params"]["output"]["kernel"], variables["params"]["output"]["kernel"]
  )  # Head untouched.
  assert "layer2_0" not in loaded["params"]["backbone"]  # Nothing beyond the cut.

  wrong_depth = str(tmp_path / "r34.npz")
  _write_converted(wrong_depth, meta_depth=34)
  with pytest.raises(convert.CheckpointError, match="ResNet-34.*expected ResNet-18"):
    resnet_trunk.load_resnet_weights(variables, wrong_depth, depth=18)
  missing = str(tmp_path / "missing.npz")
  _write_converted(missing, drop="batch_stats/layer1_0/bn2/mean")
  with pytest.raises(convert.CheckpointError, match="missing.npz.*batch_stats/layer1_0/bn2/mean"):
    encoder.load_backbone_weights(variables, missing, model)
  bad = str(tmp_path / "bad_shape.npz")
  _write_converted(bad, reshape="params/layer1_0/conv1/kernel")
  with pytest.raises(convert.CheckpointError, match="bad_shape.npz.*layer1_0/conv1/kernel.*shape"):
    encoder.load_backbone_weights(variables, bad, model)
  with pytest.raises(FileNotFoundError, match="nope.npz"):
    encoder.load_backbone_weights(variables, str(tmp_path / "nope.npz"), model)


def test_random_init_is_announced(variables, caplog, monkeypatch):
  model = encoder.build_encoder(tiny_config())
  monkeypatch.setattr(encoder, "jit_init", lambda *args, **kwargs: variables)
  with caplog.at_level(logging.WARNING):
    assert encoder.init_variables(model, jax.random.PRNGKey(0), (B, T, H, H, 3)) is variables
  assert "random initialisation" in caplog.text
  caplog.clear()
  with caplog.at_level(logging.INFO):  # 'random': on purpose, no warning.
    assert (
      encoder.init_variables(model, jax.random.PRNGKey(0), (B, T, H, H, 3), "random") is variables
    )
  assert "random weights" in caplog.text and not [
    r for r in caplog.records if r.levelno >= logging.WARNING
  ]


def test_jit_init_matches_plain_init():
  # One of each initialiser the encoder uses: truncated normal (Dense, attention), normal
  # (ResNet convs), uniform (head), constants (BN).
  model = nn.Sequential(
    [
      nn.Dense(3),
      nn.BatchNorm(use_running_average=True),
      nn.Conv(3, (1, 1), kernel_init=resnet.conv_init),
      nn.Dropout(0.1, deterministic=True),
      encoder.ContextConv3D(2),
    ]
  )
  x = jnp.ones((1, 1, 3, 3, 2))
  fast = encoder.jit_init(model, jax.random.PRNGKey(3), x)
  plain = jax.jit(model.init)(jax.random.PRNGKey(3), x)
  assert jax.tree_util.tree_structure(fast) == jax.tree_util.tree_structure(plain)
  for a, b in zip(jax.tree_util.tree_leaves(fast), jax.tree_util.tree_leaves(plain)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_config_errors():
  with pytest.raises(ValueError, match="attention_axis"):
    encoder.build_encoder(tiny_config(attention_axis="frames"))
  with pytest.raises(ValueError, match="config.model: unknown fields.*'resnet_dpeth'"):
    c = tiny_config()
    c.resnet_dpeth = 50
    encoder.build_encoder(c)
  with pytest.raises(ValueError, match="backbone_mode"):
    encoder.build_encoder(tiny_config(backbone_mode="half"))
  with pytest.raises(ValueError, match="layer3 has only 2 blocks"):
    encoder.build_encoder(tiny_config(cut="conv4c"))
  with pytest.raises(ValueError, match="context_padding='same'"):
    model = encoder.build_encoder(tiny_config(context_padding="valid"))  # 16 px -> 4x4 map.
    jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 2, 16, 16, 3))))
  with pytest.raises(ValueError, match="frames must be"):
    model = encoder.build_encoder(tiny_config())
    jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((2, H, H, 3))))
  with pytest.raises(ValueError, match=r"config.model.trunk: expected one of \['resnet'\]"):
    encoder.build_encoder(tiny_config(trunk="vit"))


def test_default_config_has_the_official_parameter_counts():
  """Counts of the official ResNet50_Transformer2 (docs/official_code.md §1.1, §1.4)."""
  model = encoder.build_encoder(encoder.default_config())
  shapes = jax.eval_shape(
    lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 2, 224, 224, 3), jnp.uint8))
  )
  params = shapes["params"]
  count = resnet.count_params
  assert count(params["backbone"]) == 5_191_744
  assert count([params["transformer_0"], params["transformer_1"]]) == 1_579_520
  assert count([params["mlp_0"], params["mlp_1"]]) == 525_312
  assert count(params["embedding"]) == 131_328 and count(params["output"]) == 32_896
  assert count(params) == 28_697_536  # Parameters the official model uses.
  out = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((1, 2, 224, 224, 3), jnp.uint8)), shapes)
  assert out.shape == (1, 2, 128)


def test_official_attention_over_the_batch_axis(variables, frames):
  """``attention_axis='batch'``: what torch's batch_first=False does to the official [N, T, D]
  input (docs/official_code.md §1.4), checked as that section says the stock module was."""
  mask = np.ones((B, T), bool)
  cfg = tiny_config(attention_axis="batch")
  y = apply_eval(cfg, variables, frames, mask)
  changed = frames.copy()
  changed[1] = 255 - changed[1]  # Another sequence of the batch...
  y1 = apply_eval(cfg, variables, changed, mask)
  assert np.all(np.abs(y1[0] - y[0]).max(-1) > 1e-4)  # ... changes every frame of video 0.
  changed = frames.copy()
  changed[0, 2:] = 255 - changed[0, 2:]  # Later frames of video 0...
  y2 = apply_eval(cfg, variables, changed, mask)
  np.testing.assert_allclose(y2[0, :2], y[0, :2], rtol=1e-5, atol=1e-6)  # ... do not.
  # One video alone: a per-frame function (of the frame and its position).
  single = apply_eval(cfg, variables, frames[:1], mask[:1])
  changed = frames[:1].copy()
  changed[0, 0] = 255 - changed[0, 0]
  np.testing.assert_allclose(
    apply_eval(cfg, variables, changed, mask[:1])[0, 1:], single[0, 1:], rtol=1e-5, atol=1e-6
  )
  # The same layers, with the sequence and batch axes swapped (no positional encoding).
  time_model = encoder.build_encoder(tiny_config(pe_positions="none"))
  batch_model = encoder.build_encoder(tiny_config(pe_positions="none", attention_axis="batch"))
  feats = time_model.apply(variables, frames, mask, part="frames")
  by_batch = batch_model.apply(variables, feats, part="temporal")
  by_time = time_model.apply(variables, jnp.swapaxes(feats, 0, 1), part="temporal")
  np.testing.assert_allclose(by_batch, jnp.swapaxes(by_time, 0, 1), rtol=1e-5, atol=1e-6)


def test_official_evaluation_input_is_not_mean_std_normalised(variables, frames):
  mask = np.ones((B, T), bool)
  official = apply_eval(tiny_config(eval_normalize=False), variables, frames, mask)
  # = the normalising model fed images whose ImageNet normalisation is x / 255.
  mean, std = np.asarray(resnet.IMAGENET_MEAN), np.asarray(resnet.IMAGENET_STD)
  pre = (frames / 255.0 * std + mean).astype(np.float32)
  np.testing.assert_allclose(
    official, apply_eval(tiny_config(), variables, pre, mask), rtol=1e-4, atol=1e-5
  )
  assert np.abs(official - apply_eval(tiny_config(), variables, frames, mask)).max() > 1e-3
  # Training input is normalised either way.
  rng = {"dropout": jax.random.PRNGKey(0)}
  train = lambda cfg: encoder.build_encoder(cfg).apply(
    variables, frames, mask, train=True, rngs=rng, mutable=["batch_stats"]
  )[0]
  np.testing.assert_array_equal(train(tiny_config(eval_normalize=False)), train(tiny_config()))


def test_module_fields_are_the_config_fields():
  """The encoder's fields are declared once: `default_config` holds their defaults and docs,
  the module lists the same names (minus the weight-file fields) and takes them all."""
  import dataclasses  # pylint: disable=g-import-not-at-top

  fields = {f.name for f in dataclasses.fields(encoder.LACEncoder)} - {"parent", "name"}
  config = set(encoder.default_config().keys()) - set(encoder._WEIGHT_FIELDS)  # pylint: disable=protected-access
  assert fields == config
