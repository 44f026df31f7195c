"""lac_jax: Local-Alignment Contrastive (LAC) video embeddings in JAX/Flax."""

__version__ = "0.1.0"
