"""Tests for lac_jax.models.resnet: torchvision structure and numbers (torch as the reference)."""

import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lac_jax.models import convert
from lac_jax.models import resnet

# One worker runs this module (pytest-xdist): its module fixtures then run once.
pytestmark = pytest.mark.xdist_group("resnet")


def import_torch():
  """torch + torchvision, the independent reference (test extra: requirements-test.txt).

  Not skipped when missing: the reference comparison is a core test. torchvision installed with
  --no-deps next to a CPU torch needs the stub module before its import.
  """
  sys.modules.setdefault(
    "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
  )
  import torch  # pylint: disable=g-import-not-at-top
  import torchvision  # pylint: disable=g-import-not-at-top

  return torch, torchvision


def torchvision_names_and_shapes(depth: int, num_classes: int = 1000) -> dict:
  """torchvision ResNet state_dict names -> shapes, written out from torchvision's recipe."""
  kind, blocks = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
  }[depth]
  out = {"conv1.weight": (64, 3, 7, 7)}

  def bn(prefix, c):
    for n in ("weight", "bias", "running_mean", "running_var"):
      out[f"{prefix}.{n}"] = (c,)
    out[f"{prefix}.num_batches_tracked"] = ()

  bn("bn1", 64)
  cin = 64
  for s, (width, n_blocks) in enumerate(zip((64, 128, 256, 512), blocks), 1):
    for i in range(n_blocks):
      p = f"layer{s}.{i}"
      if kind == "basic":
        convs = [(width, cin, 3), (width, width, 3)]
        cout = width
      else:
        convs = [(width, cin, 1), (width, width, 3), (4 * width, width, 1)]
        cout = 4 * width
      for j, (o, ci, k) in enumerate(convs, 1):
        out[f"{p}.conv{j}.weight"] = (o, ci, k, k)
        bn(f"{p}.bn{j}", o)
      if i == 0 and (s > 1 or cin != cout):
        out[f"{p}.downsample.0.weight"] = (cout, cin, 1, 1)
        bn(f"{p}.downsample.1", cout)
      cin = cout
  out["fc.weight"] = (num_classes, cin)
  out["fc.bias"] = (num_classes,)
  return out


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_torchvision_names_map_exactly_onto_flax_tree(depth):
  rng = np.random.default_rng(depth)
  state = {
    k: (rng.standard_normal(s).astype(np.float32) if s else np.array(5, np.int64))
    for k, s in torchvision_names_and_shapes(depth).items()
  }
  flat = convert.torchvision_to_flax(state)
  flat.pop(convert.META_DEPTH)
  flat.pop(convert.META_NUM_CLASSES)
  expected = convert.flatten_variables(resnet.resnet_variable_shapes(depth, "logits"))
  assert set(flat) == set(expected)
  for k, v in flat.items():
    assert v.shape == tuple(expected[k].shape), k
  # Every torch tensor (bar the BN counters) lands in exactly one Flax array, values intact.
  n_torch = sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked"))
  assert sum(v.size for v in flat.values()) == n_torch
  np.testing.assert_array_equal(
    flat["params/conv1/kernel"], state["conv1.weight"].transpose(2, 3, 1, 0)
  )
  np.testing.assert_array_equal(flat["params/fc/kernel"], state["fc.weight"].T)
  np.testing.assert_array_equal(flat["batch_stats/bn1/var"], state["bn1.running_var"])


def test_real_torchvision_keys_match_recipe_and_param_counts(torch_resnet50):
  _, torchvision = import_torch()
  for depth, model in ((18, torchvision.models.resnet18()), (50, torch_resnet50)):
    sd = model.state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == torchvision_names_and_shapes(depth)
    full = resnet.resnet_variable_shapes(depth, "logits")
    assert resnet.count_params(full["params"]) == sum(p.numel() for p in model.parameters())
  # LAC's trunk: conv1, bn1, layer1, layer2, layer3[0:3].
  trunk = [model.conv1, model.bn1, model.layer1, model.layer2, model.layer3[:3]]
  n_trunk = sum(p.numel() for m in trunk for p in m.parameters())
  assert n_trunk == 5_191_744
  shapes = resnet.resnet_variable_shapes(50, "conv4c")
  assert resnet.count_params(shapes["params"]) == n_trunk
  assert "layer3_2" in shapes["params"] and "layer3_3" not in shapes["params"]


@pytest.fixture(scope="module")
def torch_resnet50():
  """torchvision ResNet-50, random weights and randomised BN statistics, eval mode."""
  torch, torchvision = import_torch()
  torch.manual_seed(0)
  model = torchvision.models.resnet50()
  with torch.no_grad():
    for m in model.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        m.weight.uniform_(0.5, 1.5)
        m.bias.normal_(0.0, 0.2)
        m.running_mean.normal_(0.0, 0.2)
        m.running_var.uniform_(0.5, 2.0)
    model.fc.bias.normal_(0.0, 0.1)
  return model.eval()


def _rel_err(a, b):
  return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


def test_converted_resnet50_matches_torchvision(torch_resnet50):
  torch, _ = import_torch()
  model = torch_resnet50
  sd = {k: v.numpy() for k, v in model.state_dict().items()}
  variables = convert.unflatten_variables(
    {k: v for k, v in convert.torchvision_to_flax(sd).items() if not k.startswith("meta/")}
  )

  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8)
  mean = np.array(resnet.IMAGENET_MEAN, np.float32)
  std = np.array(resnet.IMAGENET_STD, np.float32)
  x_t = torch.from_numpy(((images / np.float32(255) - mean) / std).astype(np.float32))
  x_t = x_t.permute(0, 3, 1, 2).contiguous()
  with torch.no_grad():
    logits_t = model(x_t).numpy().astype(np.float64)
    f = model.maxpool(model.relu(model.bn1(model.conv1(x_t))))
    f = model.layer3[:3](model.layer2(model.layer1(f)))
    conv4c_t = f.permute(0, 2, 3, 1).numpy().astype(np.float64)

  # uint8 in [0, 255] and float in [0, 1] are the same images to the model.
  conv4c = jax.jit(lambda v, x: resnet.ResNet(depth=50, cut="conv4c").apply(v, x))(
    variables, images
  )
  logits = jax.jit(lambda v, x: resnet.ResNet(depth=50, cut="logits").apply(v, x))(
    variables, jnp.asarray(images, jnp.float32) / 255.0
  )
  assert conv4c.shape == (2, 4, 4, 1024) and logits.shape == (2, 1000)
  assert _rel_err(conv4c, conv4c_t) < 1e-5
  assert _rel_err(logits, logits_t) < 1e-5
  np.testing.assert_array_equal(np.argmax(logits, -1), np.argmax(logits_t, -1))


def test_cut_names_and_errors():
  assert resnet.parse_cut(50, "conv4c") == (3, 3)
  assert resnet.parse_cut(50, "layer3") == (3, 6)
  assert resnet.parse_cut(18, "conv2b") == (1, 2)
  assert resnet.cut_channels(50, "conv4c") == 1024 and resnet.cut_channels(18, "layer4") == 512
  with pytest.raises(ValueError, match="layer3 has only 2 blocks"):
    resnet.parse_cut(18, "conv4c")
  with pytest.raises(ValueError, match="Unknown ResNet cut"):
    resnet.parse_cut(50, "conv9z")
  with pytest.raises(ValueError, match="depth must be one of"):
    resnet.parse_cut(101, "layer3")


def test_bn_train_mode_uses_masked_batch_statistics():
  model = resnet.ResNet(depth=18, cut="conv2a")
  x = jax.random.uniform(jax.random.PRNGKey(0), (4, 16, 16, 3))
  variables = jax.jit(model.init)(jax.random.PRNGKey(1), x)
  apply_train = jax.jit(
    lambda v, x, m: model.apply(v, x, train=True, mask=m, mutable=["batch_stats"])[0]
  )
  y = apply_train(variables, x, jnp.array([True, True, False, False]))
  y_valid = apply_train(variables, x.at[2:].set(x[:2]), jnp.ones(4, bool))
  # Masked-out images do not enter the statistics: the valid outputs equal those of a batch
  # holding the valid images twice (same mean and variance).
  np.testing.assert_allclose(y[:2], y_valid[:2], rtol=1e-5, atol=1e-5)
  y_eval = jax.jit(model.apply)(variables, x)
  assert not np.allclose(y[:2], y_eval[:2], atol=1e-3)  # Batch statistics, not running ones.
