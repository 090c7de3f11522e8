"""The memory a training batch needs against what the devices have, estimated before any data is read."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from difcon_jax.training.config_checks import ConfigError
from difcon_jax.models import resnet1d


def host_memory() -> int:
  """Bytes of physical memory of this host."""
  return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')


def device_memory() -> tuple[int, str]:
  """(bytes one device can use, its description): the accelerator's limit (`memory_stats`), else (CPU devices,
  which share the host's memory) the host's physical memory."""
  device = jax.local_devices()[0]
  try:
    stats = device.memory_stats() or {}
  except Exception:  # pylint: disable=broad-except  (backends without memory statistics)
    stats = {}
  if stats.get('bytes_limit'):
    return int(stats['bytes_limit']), f'each {device.device_kind} device'
  return host_memory(), 'this host'


def bytes_per_example(config, views: int) -> int:
  """A lower bound of the memory (bytes) one training example takes on its device: the activations the backward
  pass keeps (the network's residuals, traced at batch sizes 1 and 2 without running anything) for each of its
  views, and the rendered views themselves."""
  model = resnet1d.from_config(config)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, config.num_bins)), train=False))

  def loss(params, stats, x):
    out, _ = model.apply({'params': params, 'batch_stats': stats}, x, train=True, mutable=['batch_stats'])
    return sum(jnp.sum(leaf.astype(jnp.float32)) for leaf in jax.tree.leaves(out))

  def residual_bytes(batch: int) -> int:
    x = jax.ShapeDtypeStruct((batch, config.num_bins), jnp.float32)
    kept = jax.eval_shape(lambda p, s, x: jax.vjp(lambda p, x: loss(p, s, x), p, x)[1], variables['params'],
                          variables.get('batch_stats', {}), x)
    return sum(int(np.prod(leaf.shape)) * leaf.dtype.itemsize for leaf in jax.tree.leaves(kept))

  per_view = residual_bytes(2) - residual_bytes(1)  # what grows with the batch (the weights' share cancels)
  return views * (per_view + 4 * config.num_bins)


def check_memory(config, views: int, memory: tuple[int, str] | None = None, batch_size: int | None = None) -> None:
  """Raises ConfigError when the batch cannot fit: the examples each device holds times `bytes_per_example`
  exceed its memory (an accelerator's limit, or the host's for CPU devices). Runs in a second or two, before any
  data is read, instead of failing at the first step.

  views: augmented views per example (train.num_views). memory: (bytes, what) to compare with (default
  `device_memory()`). batch_size: the global batch (default config.batch_size).
  """
  try:
    per_example = bytes_per_example(config, views)
  except Exception as e:  # pylint: disable=broad-except  (a network this grid cannot carry)
    # The model's own fields were checked (config_errors); what is left is the network against the grid.
    raise ConfigError(f'config.model: the network cannot be built on the grid of config.num_bins={config.num_bins} '
                      f'({type(e).__name__}: {(str(e).splitlines() or [""])[0][:200]})') from None
  available, where = memory or device_memory()
  cpu = where == 'this host'
  holders = jax.process_count() if cpu else jax.device_count()  # CPU devices of a host share its memory
  batch = batch_size or config.batch_size
  per_holder = -(-batch // holders)
  need = per_holder * per_example
  if need <= available:
    return
  fits = max(available // per_example, 0) * holders
  per_device = config.get('per_device_batch_size', 0)
  field = f'config.per_device_batch_size={per_device}' if per_device else f'config.batch_size={batch}'
  raise ConfigError(f'{field}: a global batch of {batch} needs at least {need / 2**30:.1f} GiB on {where} '
                    f'({per_holder} examples x {per_example / 2**20:.1f} MiB: the activations kept for the backward '
                    f'pass of {views} view(s)), which has {available / 2**30:.1f} GiB; at most about {fits} examples '
                    'fit')
