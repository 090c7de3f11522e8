"""The training grid, defined once: the wavelength of the corpus peak lists and the 2θ bins patterns live on.

The paper trains at Cu Kα (1.5418 Å, ICSD's copper wavelength) on 12,000 bins over 0-120° 2θ; a pattern's value
in bin i is its intensity at the bin centre two_theta_min + (i + 0.5) * width. Configs may shrink the grid
(num_bins, two_theta_max); config.json records the grid and the wavelength a model was trained at.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from difcon_jax.crystallography import wavelength as wavelength_lib

WAVELENGTH = wavelength_lib.CU_KA  # Å
NUM_BINS = 12_000
TWO_THETA_MIN = 0.0  # degrees
TWO_THETA_MAX = 120.0  # degrees


def config(num_bins: int = NUM_BINS, two_theta_min: float = TWO_THETA_MIN,
           two_theta_max: float = TWO_THETA_MAX) -> ml_collections.ConfigDict:
  """The grid as the augmentation and preprocessing take it: num_bins, two_theta_min, two_theta_max."""
  return ml_collections.ConfigDict(dict(num_bins=num_bins, two_theta_min=two_theta_min, two_theta_max=two_theta_max))


def from_config(config) -> ml_collections.ConfigDict:
  """The 2θ grid of a training config (its num_bins and two_theta_max; the grid starts at TWO_THETA_MIN)."""
  return globals()['config'](config.num_bins, TWO_THETA_MIN, config.two_theta_max)


def model_grid(config) -> str:
  """The grid a training config's network reads (GRIDS); configs written before the option read 2θ."""
  return config.get('grid', 'two_theta')


def bin_width(grid: ml_collections.ConfigDict) -> float:
  """Degrees 2θ per bin."""
  return (grid.two_theta_max - grid.two_theta_min) / grid.num_bins


def bin_centre(grid: ml_collections.ConfigDict, index):
  """2θ (degrees) of the centres of bins `index` (integers, any shape; NumPy or JAX, traced or not)."""
  return grid.two_theta_min + (index + 0.5) * bin_width(grid)


def bin_centres(grid: ml_collections.ConfigDict, xp=np, dtype=None):
  """[num_bins] 2θ (degrees) of the bin centres, as an array of the array module `xp` (numpy or jax.numpy):
  float64 by NumPy's default, float32 under JAX, whose arange the centres are computed from (dtype given, in it)."""
  return bin_centre(grid, xp.arange(grid.num_bins, dtype=dtype))


def bin_edges(grid: ml_collections.ConfigDict) -> np.ndarray:
  """[num_bins + 1] 2θ (degrees) of the bin edges (float64)."""
  return grid.two_theta_min + np.arange(grid.num_bins + 1) * bin_width(grid)


# ------------------------------------------------------------------------------------------------ the model's grid
# Patterns are rendered and read on the 2θ grid above. A model may see them on another grid, resampled inside the
# network so that training, evaluation and prediction share it: 'log_d', bins uniform in ln d (d = λ / 2 sin θ),
# on which a change of cell scale is a shift, so a convolution sees the patterns of all cubic crystals of one
# extinction group as one template; it starts at `log_d_from` degrees 2θ (ln d diverges at 0°) and has as many
# bins as the 2θ grid.
GRIDS = ('two_theta', 'log_d')
LOG_D_FROM = 5.0  # degrees 2θ at the training wavelength


def log_d_edges(grid: ml_collections.ConfigDict, start: float = LOG_D_FROM) -> np.ndarray:
  """[num_bins + 1] 2θ (degrees, ascending) of the edges of num_bins bins uniform in ln d, from 2θ = start to the
  end of the 2θ grid. Uniform in ln d is uniform in ln sin θ, whatever the wavelength."""
  if not grid.two_theta_min <= start < grid.two_theta_max or start <= 0:
    raise ValueError(f'log_d_from {start}° must lie inside the 2θ grid ({grid.two_theta_min}-{grid.two_theta_max}°) '
                     'and above 0°')
  u = np.linspace(np.log(np.sin(np.radians(start / 2))), np.log(np.sin(np.radians(grid.two_theta_max / 2))),
                  grid.num_bins + 1)
  return np.degrees(2 * np.arcsin(np.exp(u)))


def _rebin_weights(grid: ml_collections.ConfigDict, edges: np.ndarray):
  """For each target edge, its position on the 2θ grid in bins (f), split into the bin it falls in (i) and the
  fraction of that bin below it (frac); the target bins' widths in 2θ bins (df)."""
  f = np.clip((edges - grid.two_theta_min) / bin_width(grid), 0, grid.num_bins)
  i = np.minimum(np.floor(f), grid.num_bins - 1)
  return i.astype(np.int32), (f - i).astype(np.float32), np.diff(f).astype(np.float32)


def to_model_grid(patterns, grid: ml_collections.ConfigDict, kind: str = 'two_theta', start: float = LOG_D_FROM):
  """[..., num_bins] patterns on the 2θ grid -> the same on the model's grid `kind` (JAX; 'two_theta' returns them
  unchanged). Each target bin is the mean of the pattern over it (the integral of the piecewise-constant pattern
  between its edges, divided by its width): area-preserving where the target bins are wider than the 2θ bins (high
  angles), a step interpolation where they are narrower; the result is scaled to a maximum of 1 again."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  if kind == 'two_theta':
    return patterns
  if kind != 'log_d':
    raise ValueError(f'unknown grid {kind!r}: one of {", ".join(GRIDS)}')
  i, frac, df = _rebin_weights(grid, log_d_edges(grid, start))
  cumulative = jnp.concatenate([jnp.zeros_like(patterns[..., :1]), jnp.cumsum(patterns, axis=-1)], axis=-1)
  at_edges = cumulative[..., i] + frac * patterns[..., i]  # the integral from the grid's start to each edge
  means = jnp.diff(at_edges, axis=-1) / df
  top = jnp.max(jnp.abs(means), axis=-1, keepdims=True)
  return means / jnp.where(top > 0, top, 1.0)
