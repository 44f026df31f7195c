"""Every registered loss, dataset and trunk is reachable by name, builds from its defaults and
is listed in docs/extending.md's tables (a new component cannot be forgotten there)."""

import os
import re

import jax
import jax.numpy as jnp
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
  after = text[text.index(heading):]
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


@pytest.mark.parametrize("name", sorted(trunks.TRUNKS))
def test_every_trunk_builds_and_is_documented(name):
  c = encoder.default_config()
  c.trunk = name
  c.resnet_depth, c.cut = 18, "conv2a"
  c.context_width, c.context_padding, c.mlp_sizes = 8, "same", (8,)
  c.embed_dim, c.num_heads, c.ffn_dim, c.output_dim = 8, 2, 8, 4
  model = encoder.build_encoder(c)
  frames = jnp.zeros((1, 2, 16, 16, 3), jnp.uint8)
  variables = model.init(jax.random.PRNGKey(0), frames, train=False)
  assert model.apply(variables, frames, train=False).shape == (1, 2, 4)
  assert trunks.module(name).describe(model)
  assert name in _table_names("The trunks:")
