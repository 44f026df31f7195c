"""Every registered loss, dataset and trunk is reachable by name, builds from its defaults and
is listed in docs/extending.md's tables (a new component cannot be forgotten there)."""

import os
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import pytest

from lac_jax import config as config_lib
from lac_jax import data as data_lib
from lac_jax import losses
from lac_jax.models import encoder
from lac_jax.models import trunks

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _table_names(heading: str) -> set[str]:
  """The first-column names of the table after the line ``heading`` in docs/extending.md."""
  with open(os.path.join(REPO, "docs", "extending.md"), encoding="utf-8") as f:
    text = f.read()
  after = text[text.index(heading) :]
  rows = re.findall(r"^\| `(\w+)` \|", after.split("\n\n", 2)[1], re.M)
  return set(rows)


@pytest.mark.parametrize("name", sorted(losses.MODULES))
def test_every_loss_builds_and_is_documented(name):
  for preset in losses.PRESETS:
    cfg = losses.default_config(name, preset)
    assert cfg.name == name
    loss = losses.build(cfg)
    assert isinstance(loss, losses.Loss) and loss.cfg.name == name
  assert name in config_lib.METHODS
  assert name in _table_names("The losses:")


@pytest.mark.parametrize("name", sorted(data_lib.DATASETS))
def test_every_dataset_loads_by_name_and_is_documented(name):
  module = data_lib.dataset(name)
  for attr in ("NAME", "ACTIONS", "NUM_PHASES", "RESIZE_ON_LOAD", "load_split"):
    assert hasattr(module, attr), (name, attr)
  assert module.NAME == name
  config = config_lib.base_config()
  config.data.dataset = name
  config_lib.check_config(config)
  assert name in _table_names("The datasets:")
  if hasattr(module, "default_config"):  # its options: config.data.<name>, from the module
    assert config.data[name].to_dict() == module.default_config().to_dict()


@pytest.mark.parametrize("name", sorted(trunks.TRUNKS))
def test_every_trunk_builds_and_is_documented(name):
  c = encoder.default_config()
  c.trunk = name
  c.trunk_options = trunks.default_options(name)
  c.context_width, c.context_padding, c.mlp_sizes = 8, "same", (8,)
  c.embed_dim, c.num_heads, c.ffn_dim, c.output_dim = 8, 2, 8, 4
  model = encoder.build_encoder(c)
  frames = jnp.zeros((1, 2, 16, 16, 3), jnp.uint8)
  # Shapes only (abstract evaluation): the default trunk is a whole ResNet-50.
  variables = jax.eval_shape(lambda f: model.init(jax.random.PRNGKey(0), f, train=False), frames)
  out = jax.eval_shape(lambda v, f: model.apply(v, f, train=False), variables, frames)
  assert out.shape == (1, 2, 4)
  assert trunks.module(name).describe(model)
  assert name in _table_names("The trunks:")


# A toy trunk defined here (this module is its registry entry), to check that a trunk with its
# own options needs no change outside its module and its TRUNKS entry.
def default_config():
  c = ml_collections.ConfigDict()
  c.width = 6
  return c


def check_config(options):
  if options.width < 1:
    raise ValueError(f"config.model.trunk_options.width: need >= 1, got {options.width}")


class _Toy(nn.Module):
  width: int

  @nn.compact
  def __call__(self, images, train, mask=None):
    return nn.Conv(self.width, (4, 4), strides=(4, 4))(images.astype(jnp.float32) / 255.0)


def build(encoder_module, mean_std=True):
  del mean_std
  return _Toy(encoder_module.trunk_options["width"], name="backbone")


def load_weights(variables, path, encoder_module):
  raise NotImplementedError(path)


def describe(encoder_module):
  return f"toy-{encoder_module.trunk_options['width']}"


def test_a_new_trunk_needs_only_its_module_and_registry_entry(monkeypatch):
  monkeypatch.setitem(trunks.TRUNKS, "toy", __name__)
  config = config_lib.base_config()  # trunk_options hold the ResNet's fields
  config.model.trunk = "toy"  # as --config.model.trunk=toy would
  config = config_lib.prepare_config(config)
  assert config.model.trunk_options.to_dict() == {"width": 6}
  config.model.trunk_options.width = 5
  config.model.context_padding = "same"
  model = encoder.build_encoder(config.model)
  frames = jnp.zeros((1, 2, 16, 16, 3), jnp.uint8)
  variables = jax.eval_shape(lambda f: model.init(jax.random.PRNGKey(0), f, train=False), frames)
  assert variables["params"]["backbone"]["Conv_0"]["kernel"].shape == (4, 4, 3, 5)
  assert trunks.module("toy").describe(model) == "toy-5"
  config.model.trunk_options.width = 0
  with pytest.raises(ValueError, match=r"config.model.trunk_options.width: need >= 1"):
    encoder.build_encoder(config.model)
  config.model.trunk_options = {"width": 3, "depth": 18}
  with pytest.raises(ValueError, match=r"trunk_options: unknown fields \['depth'\] for trunk"):
    config_lib.prepare_config(config)
