"""1-D ResNet over a powder pattern with a representation head and the paper's classification heads.

Outputs (logits) and an aux dict (`embedding`, `projection`, `features`) so that evaluators and the
self-supervised losses reach the intermediate features.

Heads: crystal system (7), extinction group (K), and space group through one head per crystal system over that
system's space groups (the paper's 7 + 1 heads). Their maths (log p(sg), top-1 labels, the ranking) is in
`models/heads.py`.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from difcon_jax.crystallography import pattern_grid as grid_lib
from difcon_jax.crystallography import spacegroups
from difcon_jax.models import heads


def _norm(kind: str, train: bool, dtype, axis_name: str | None = None) -> Any:
  """axis_name: with BatchNorm, the device axis whose batch statistics are averaged in training (None: each
  device normalises by its own share of the batch)."""
  if kind == 'batch':
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
                        axis_name=axis_name if train else None)
  if kind == 'group':
    return nn.GroupNorm(num_groups=8, dtype=dtype)
  raise ValueError(f'unknown norm {kind!r}: batch or group')


class ResidualBlock(nn.Module):
  features: int
  strides: int = 1
  kernel_size: int = 7
  norm: str = 'batch'
  norm_axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    residual = x
    y = nn.Conv(self.features, (self.kernel_size,), (self.strides,), padding='SAME', use_bias=False,
                dtype=self.dtype)(x)
    y = nn.relu(_norm(self.norm, train, self.dtype, self.norm_axis_name)(y))
    y = nn.Conv(self.features, (self.kernel_size,), padding='SAME', use_bias=False, dtype=self.dtype)(y)
    y = _norm(self.norm, train, self.dtype, self.norm_axis_name)(y)
    if residual.shape != y.shape:
      residual = nn.Conv(self.features, (1,), (self.strides,), use_bias=False, dtype=self.dtype)(residual)
      residual = _norm(self.norm, train, self.dtype, self.norm_axis_name)(residual)
    return nn.relu(residual + y)


class PositionalAttention(nn.Module):
  """Transformer encoder blocks over the downsampled sequence, with a learned embedding of each position.

  Symmetry shows in where peaks sit relative to each other across the whole 2θ range; a convolution stack sees a
  short window and average pooling then forgets positions. Attention over the [positions, channels] sequence
  that knows each position relates peaks anywhere in the pattern.
  """
  layers: int = 2
  heads: int = 4
  mlp_ratio: int = 2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    del train
    length, dim = x.shape[-2], x.shape[-1]
    pos = self.param('position_embedding', nn.initializers.normal(0.02), (length, dim))
    x = x + pos.astype(x.dtype)
    for i in range(self.layers):
      y = nn.LayerNorm(dtype=self.dtype, name=f'attention_norm_{i}')(x)
      y = nn.MultiHeadDotProductAttention(num_heads=self.heads, dtype=self.dtype, name=f'attention_{i}')(y, y)
      x = x + y
      y = nn.LayerNorm(dtype=self.dtype, name=f'mlp_norm_{i}')(x)
      y = nn.Dense(dim * self.mlp_ratio, dtype=self.dtype, name=f'mlp_in_{i}')(y)
      y = nn.Dense(dim, dtype=self.dtype, name=f'mlp_out_{i}')(nn.gelu(y))
      x = x + y
    return nn.LayerNorm(dtype=self.dtype, name='attention_out_norm')(x)


class DifconNet(nn.Module):
  """ResNet-1D backbone -> pooling -> embedding (representation head input) -> projector and classification heads.

  pooling: 'mean' (global average over positions), 'flatten' (every position's channels, after a 1x1
  convolution to `flatten_channels`, into the embedding layer: position-aware, many parameters) or 'attention'
  (`PositionalAttention` blocks, then the mean over positions).
  """
  num_extinction_groups: int
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  width: int = 32
  stem_stride: int = 4
  stage_strides: int = 2
  kernel_size: int = 7
  embedding_dim: int = 256
  projector_dims: Sequence[int] = (512, 512)
  norm: str = 'batch'
  # Set by the trainer to its device axis when config.model.cross_device_norm: BatchNorm statistics over the
  # global batch (one small all-reduce per norm layer and step) instead of each device's share.
  norm_axis_name: str | None = None
  pooling: str = 'mean'
  attention_layers: int = 2
  attention_heads: int = 4
  flatten_channels: int = 8
  # What the classification heads read: 'embedding' (the projector's input, after a ReLU) or 'projection' (the
  # projector's output, the representation the contrastive loss shapes).
  heads_input: str = 'embedding'
  # The grid the network reads (grid.GRIDS): patterns arrive on the 2θ grid (num_bins, two_theta_min,
  # two_theta_max) and 'log_d' resamples them to bins uniform in ln d from log_d_from degrees 2θ.
  input_grid: str = 'two_theta'
  two_theta_grid: tuple[int, float, float] = (grid_lib.NUM_BINS, grid_lib.TWO_THETA_MIN, grid_lib.TWO_THETA_MAX)
  log_d_from: float = grid_lib.LOG_D_FROM
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    """x: [batch, bins] patterns on the 2θ grid. Returns (logits dict, aux dict)."""
    x = grid_lib.to_model_grid(x.astype(jnp.float32), grid_lib.config(*self.two_theta_grid), self.input_grid,
                               self.log_d_from)
    x = x[..., None].astype(self.dtype)  # [batch, bins, 1]
    x = nn.Conv(self.width, (15,), (self.stem_stride,), padding='SAME', use_bias=False, dtype=self.dtype)(x)
    x = nn.relu(_norm(self.norm, train, self.dtype, self.norm_axis_name)(x))
    x = nn.max_pool(x, (3,), (2,), padding='SAME')
    for i, blocks in enumerate(self.stage_sizes):
      for j in range(blocks):
        x = ResidualBlock(self.width * 2**i, self.stage_strides if (j == 0 and i > 0) else 1, self.kernel_size,
                          self.norm, self.norm_axis_name, self.dtype)(x, train)
    if self.pooling == 'mean':
      features = jnp.mean(x, axis=1)  # [batch, channels]
    elif self.pooling == 'flatten':
      x = nn.Conv(self.flatten_channels, (1,), use_bias=False, dtype=self.dtype, name='flatten_reduce')(x)
      features = nn.relu(_norm(self.norm, train, self.dtype, self.norm_axis_name)(x)).reshape(x.shape[0], -1)
    elif self.pooling == 'attention':
      x = PositionalAttention(self.attention_layers, self.attention_heads, dtype=self.dtype)(x, train)
      features = jnp.mean(x, axis=1)
    else:
      raise ValueError(f'unknown pooling {self.pooling!r}: mean, flatten or attention')
    features = features.astype(jnp.float32)
    embedding = nn.Dense(self.embedding_dim, name='embedding')(features)
    h = embedding
    for k, dim in enumerate(self.projector_dims):
      h = nn.Dense(dim, use_bias=False, name=f'projector_{k}')(h)
      if k < len(self.projector_dims) - 1:
        h = nn.relu(nn.BatchNorm(use_running_average=not train, axis_name=self.norm_axis_name if train else None,
                                 name=f'projector_norm_{k}')(h))
    if self.heads_input == 'embedding':
      z = nn.relu(embedding)
    elif self.heads_input == 'projection':
      z = h
    else:
      raise ValueError(f'unknown heads_input {self.heads_input!r}: embedding or projection')
    logits = {
        'crystal_system': nn.Dense(7, name='crystal_system_head')(z),
        'extinction_group': nn.Dense(self.num_extinction_groups, name='extinction_group_head')(z),
        'space_group': tuple(nn.Dense(n, name=f'space_group_head_{c}')(z) for c, n in enumerate(heads.HEAD_SIZES)),
    }
    return logits, {'features': features, 'embedding': embedding, 'projection': h}


def from_config(config, norm_axis_name: str | None = None) -> DifconNet:
  """The network of a training config (its `model` fields; fields added later fall back to their defaults).
  norm_axis_name: the device axis of the training step, used when config.model.cross_device_norm."""
  m = config.model
  return DifconNet(
      num_extinction_groups=spacegroups.num_extinction_groups(), stage_sizes=tuple(m.stage_sizes),
      width=m.width, stem_stride=m.stem_stride, kernel_size=m.kernel_size, embedding_dim=m.embedding_dim,
      projector_dims=tuple(m.projector_dims), norm=m.norm,
      norm_axis_name=norm_axis_name if m.get('cross_device_norm', False) else None,
      # Fields added after the first models were trained: their config.json lacks them.
      pooling=m.get('pooling', 'mean'), attention_layers=m.get('attention_layers', 2),
      attention_heads=m.get('attention_heads', 4), flatten_channels=m.get('flatten_channels', 8),
      heads_input=m.get('heads_input', 'embedding'), input_grid=grid_lib.model_grid(config),
      two_theta_grid=(config.num_bins, grid_lib.TWO_THETA_MIN, config.two_theta_max),
      log_d_from=grid_lib.log_d_from(config), dtype=jnp.bfloat16 if m.bf16 else jnp.float32)
