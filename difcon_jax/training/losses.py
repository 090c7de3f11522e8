"""Losses: weighted cross-entropies of the heads, Barlow Twins and SimCLR's NT-Xent."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from difcon_jax.models import heads


def cross_entropy(log_probs: jax.Array, labels: jax.Array, class_weights: jax.Array | None = None) -> jax.Array:
  """Mean negative log-likelihood of integer labels under [batch, classes] log-probabilities, each example weighted
  by its class's weight when `class_weights` [classes] is given."""
  nll = -jnp.take_along_axis(log_probs, labels[:, None], -1)[:, 0]
  if class_weights is not None:
    nll = nll * jnp.asarray(class_weights, log_probs.dtype)[labels]
  return jnp.mean(nll)


def class_weights(counts: np.ndarray, power: float) -> np.ndarray:
  """Per-class loss weights [classes] proportional to share^-power (0: all 1; 1: every class weighs as much in
  total; 0.5 between), scaled so that the mean weight over the training examples is 1 (the loss keeps its scale).
  A class without examples gets 0."""
  counts = np.asarray(counts, np.float64)
  share = counts / counts.sum()
  w = np.where(counts > 0, np.power(np.where(counts > 0, share, 1.0), -power), 0.0)
  return (w / (share * w).sum()).astype(np.float32)


def classification_losses(logits: dict, labels: dict, crystal_system_weights: jax.Array | None = None) -> dict:
  """CE of crystal system (class-weighted by `crystal_system_weights` [7] when given), extinction group, and
  space group within the true crystal system's head."""
  sg_lp = heads.space_group_conditional_log_probs(logits, labels['crystal_system'])
  return {
      'crystal_system': cross_entropy(jax.nn.log_softmax(logits['crystal_system']), labels['crystal_system'],
                                      crystal_system_weights),
      'extinction_group': cross_entropy(jax.nn.log_softmax(logits['extinction_group']),
                                        labels['extinction_group']),
      'space_group': cross_entropy(sg_lp, labels['space_group']),
  }


def _standardise(z: jax.Array, eps: float = 1e-5) -> jax.Array:
  """BatchNorm without affine parameters over the (global) batch."""
  return (z - z.mean(0)) / jnp.sqrt(z.var(0) + eps)


def barlow_twins(z1: jax.Array, z2: jax.Array, lambd: float = 5e-3) -> jax.Array:
  """sum_i (1 - c_ii)² + λ sum_{i≠j} c_ij², c = standardised(z1)ᵀ standardised(z2) / batch.

  z1, z2: [batch, dim] projections of two views. Under jit with a sharded batch the means and the product are
  over the global batch, as the original method asks.
  """
  n = z1.shape[0]
  c = _standardise(z1).T @ _standardise(z2) / n
  on_diag = jnp.sum((1 - jnp.diagonal(c)) ** 2)
  off_diag = jnp.sum(c**2) - jnp.sum(jnp.diagonal(c) ** 2)
  return on_diag + lambd * off_diag


def nt_xent(z1: jax.Array, z2: jax.Array, temperature: float = 0.1) -> jax.Array:
  """SimCLR's loss: each view's positive is the other view of its example, the other 2N-2 are negatives."""
  z = jnp.concatenate([z1, z2], 0)
  z = z / jnp.linalg.norm(z, axis=-1, keepdims=True).clip(1e-12)
  sim = z @ z.T / temperature
  n = z1.shape[0]
  sim = jnp.where(jnp.eye(2 * n, dtype=bool), -jnp.inf, sim)
  positives = jnp.concatenate([jnp.arange(n) + n, jnp.arange(n)])
  return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(sim, -1), positives[:, None], -1))
