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
