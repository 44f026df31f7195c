"""Per-frame trunks of the encoder, each chosen by ``config.model.trunk`` (a name -> a module).

A trunk module, listed in `TRUNKS`, defines

* ``check_config(config)``: raises ValueError naming the bad ``config.model.<field>`` (its own
  options live in the model config, documented in `encoder.default_config`);
* ``build(encoder, mean_std) -> nn.Module``: the trunk for an `LACEncoder` (it reads its options
  from the encoder's fields), ``[N, H, W, 3]`` images -> a ``[N, h, w, C]`` feature map, named
  ``'backbone'`` by the caller; ``mean_std=False`` only scales the input to [0, 1];
* ``load_weights(variables, path, encoder) -> variables``: pretrained weights into
  ``params/backbone`` and ``batch_stats/backbone``;
* ``describe(encoder) -> str``: a short name for logs (e.g. ``'ResNet-50'``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

TRUNKS = {"resnet": "lac_jax.models.resnet_trunk"}


def module(name: str) -> ModuleType:
  """The module of trunk ``name``; ValueError naming ``config.model.trunk`` otherwise."""
  if name not in TRUNKS:
    raise ValueError(f"config.model.trunk: expected one of {sorted(TRUNKS)}, got {name!r}")
  return importlib.import_module(TRUNKS[name])
