"""Small model configs shared by the tests (fast to compile on 2 CPU cores)."""

from lac_jax.models import encoder


def tiny_encoder_config(**overrides):
  """ResNet-18 cut at layer1 ([N, 8, 8, 64] at 32 px) with a narrow head."""
  c = encoder.default_config()
  c.resnet_depth = 18
  c.cut = "layer1"
  c.context_width = 16
  c.context_padding = "same"
  c.mlp_sizes = (16,)
  c.embed_dim = 16
  c.num_heads = 4
  c.ffn_dim = 32
  c.output_dim = 8
  c.pe_positions = "arange"
  for k, v in overrides.items():
    c[k] = v
  return c
