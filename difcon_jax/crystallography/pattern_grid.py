"""The training grid, defined once: the wavelength of the corpus peak lists and the 2θ bins patterns live on.

The paper trains at Cu Kα (1.5418 Å, ICSD's copper wavelength) on 12,000 bins over 0-120° 2θ; a pattern's value
in bin i is its intensity at the bin centre two_theta_min + (i + 0.5) * width. Configs may shrink the grid
(num_bins, two_theta_max); config.json records the grid and the wavelength a model was trained at.
"""

from __future__ import annotations

import functools

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


def from_config(training_config) -> ml_collections.ConfigDict:
  """The 2θ grid of a training config (its num_bins and two_theta_max; the grid starts at TWO_THETA_MIN)."""
  return config(training_config.num_bins, TWO_THETA_MIN, training_config.two_theta_max)


def model_grid(training_config) -> str:
  """The grid a training config's network reads (GRIDS); configs written before the option read 2θ."""
  return training_config.get('grid', 'two_theta')


def log_d_from(training_config) -> float:
  """Where a training config's log-d grid starts, degrees 2θ (LOG_D_FROM when the config does not say)."""
  return training_config.get('log_d_from', LOG_D_FROM)


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
# bins as the 2θ grid. The paper bins in 2θ because it bins Bragg peaks as points, whose binned intensities vary
# wildly on bins of unequal 2θ width (its section on binning); here every profile is first integrated exactly
# over the 2θ bins and then averaged over each log-d bin, so the log-d pattern is the same smooth profile.
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


@functools.lru_cache(maxsize=8)
def _rebin_pieces(num_bins: int, two_theta_min: float, two_theta_max: float, start: float):
  """The overlaps of the 2θ bins with the log-d bins, as (source bin, target bin, weight) arrays: the 2θ and the
  log-d edges together cut the range into pieces, each inside one bin of each grid; a piece's weight is its
  length over its target bin's, so target = sum of weight x source is the mean of the pattern over the target."""
  grid = config(num_bins, two_theta_min, two_theta_max)
  target = log_d_edges(grid, start)
  cuts = np.union1d(bin_edges(grid), target)
  cuts = cuts[(cuts >= target[0]) & (cuts <= target[-1])]
  middle, length = (cuts[:-1] + cuts[1:]) / 2, np.diff(cuts)
  source = np.clip(np.floor((middle - two_theta_min) / bin_width(grid)), 0, num_bins - 1).astype(np.int32)
  to = np.clip(np.searchsorted(target, middle) - 1, 0, num_bins - 1).astype(np.int32)
  weight = (length / np.diff(target)[to]).astype(np.float32)
  return source, to, weight


def to_model_grid(patterns, grid: ml_collections.ConfigDict, kind: str = 'two_theta', start: float = LOG_D_FROM):
  """[..., num_bins] patterns on the 2θ grid -> the same on the model's grid `kind` (JAX; 'two_theta' returns them
  unchanged). Each target bin is the mean of the pattern over it (the integral of the piecewise-constant pattern
  between its edges, divided by its width): area-preserving where the target bins are wider than the 2θ bins (high
  angles), a step interpolation where they are narrower; the result is scaled to a maximum of 1 again."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  if kind == 'two_theta':
    return patterns
  if kind != 'log_d':
    raise ValueError(f'unknown grid {kind!r}: one of {", ".join(GRIDS)}')
  source, to, weight = _rebin_pieces(grid.num_bins, grid.two_theta_min, grid.two_theta_max, start)
  # A sparse matrix product: one gather and one sorted segment sum, O(bins) (a running sum would lose float32
  # precision over 12,000 bins, and XLA computes one in O(bins²) on some backends).
  pieces = jnp.moveaxis(patterns[..., source] * weight, -1, 0)
  means = jnp.moveaxis(jax.ops.segment_sum(pieces, to, grid.num_bins, indices_are_sorted=True), 0, -1)
  top = jnp.max(jnp.abs(means), axis=-1, keepdims=True)
  return means / jnp.where(top > 0, top, 1.0)
