"""Parameter distributions of the augmentation (paper Table 1) as config code.

Three named distributions: `train`, `invariance_test` (every random quantity drawn from a range that does not
overlap the train range: the paper's invariance test set) and `ideal` (no augmentation, a fixed narrow profile).
Symmetric quantities (zero shift, asymmetry, ...) are given as ranges of their magnitude; the sign is drawn apart.
"""

from __future__ import annotations

import ml_collections


def grid_config(num_bins: int = 12000, two_theta_min: float = 0.0, two_theta_max: float = 120.0):
  return ml_collections.ConfigDict(dict(num_bins=num_bins, two_theta_min=two_theta_min,
                                        two_theta_max=two_theta_max))


def distribution(name: str) -> ml_collections.ConfigDict:
  """Ranges [lo, hi] of every random quantity; uniform unless said otherwise."""
  if name == 'train':
    d = dict(
        zero_shift=(0.0, 0.02),  # |δ2θ|, degrees
        jitter=(0.0, 0.005),  # a: per-peak δ ~ U(-a, a), degrees
        peak_crop_low=(0.0, 0.2), peak_crop_high=(100.0, 120.0),  # peaks outside are removed, degrees
        intensity_noise=(0.0, 0.005),  # δ: y <- y (1 + U(-δ, δ))
        impurities=(0, 6), impurity_intensity=(0.01, 0.05),  # count (integers), intensity / strongest peak
        # Caglioti FWHM² = U tan²θ + V tanθ + W + p / cos²θ (degrees²), Latin-hypercube sampled.
        U=(0.0, 2e-4), V=(-1e-4, 0.0), W=(2.5e-5, 6e-4), p=(0.0, 5e-5),
        eta=(0.0, 0.7), asymmetry=(0.0, 0.5),
        background=(0.0, 0.05), dilation=(1, 10), counting_noise=(0.0, 0.02),
        crop_low=(0.0, 24.0), crop_high=(100.0, 120.0),
    )
  elif name == 'invariance_test':
    d = dict(
        zero_shift=(0.02, 0.04), jitter=(0.005, 0.01),
        peak_crop_low=(0.2, 0.4), peak_crop_high=(90.0, 100.0),
        intensity_noise=(0.005, 0.02),
        impurities=(7, 10), impurity_intensity=(0.05, 0.08),
        U=(2e-4, 4e-4), V=(-2e-4, -1e-4), W=(6e-4, 1.2e-3), p=(5e-5, 1e-4),
        eta=(0.7, 1.0), asymmetry=(0.5, 1.0),
        background=(0.05, 0.08), dilation=(11, 20), counting_noise=(0.02, 0.04),
        crop_low=(24.0, 30.0), crop_high=(90.0, 100.0),
    )
  elif name == 'ideal':
    d = dict(
        zero_shift=(0.0, 0.0), jitter=(0.0, 0.0), peak_crop_low=(0.0, 0.0), peak_crop_high=(180.0, 180.0),
        intensity_noise=(0.0, 0.0), impurities=(0, 0), impurity_intensity=(0.0, 0.0),
        U=(0.0, 0.0), V=(0.0, 0.0), W=(4e-4, 4e-4), p=(0.0, 0.0),  # FWHM 0.02°
        eta=(0.5, 0.5), asymmetry=(0.0, 0.0),
        background=(0.0, 0.0), dilation=(1, 1), counting_noise=(0.0, 0.0),
        crop_low=(0.0, 0.0), crop_high=(180.0, 180.0),
    )
  else:
    raise ValueError(f'unknown augmentation distribution {name!r}: train, invariance_test or ideal')
  return ml_collections.ConfigDict({k: tuple(v) for k, v in d.items()})


# Profile limits (Table 1): FWHM clipped to [0.005, 0.05] degrees, each side of the split profile alike.
FWHM_MIN = 0.005
FWHM_MAX = 0.05
# Window half-width in FWHM_MAX: the Lorentzian mass beyond 32 FWHM of the centre is 1 - (2/π)·atan(64) < 1%.
LORENTZ_WINDOW_FWHM = 32.0
# The Gaussian part is negligible beyond 3 FWHM (7σ).
GAUSS_WINDOW_FWHM = 3.0


def config(distribution_name: str = 'train', num_bins: int = 12000, two_theta_max: float = 120.0,
           max_impurities: int = 10, render_chunk: int | None = None) -> ml_collections.ConfigDict:
  """render_chunk: patterns rendered together by one vmapped call (None: 8 on a CPU, the whole batch on
  accelerators; see kernel.render_chunk)."""
  c = ml_collections.ConfigDict(dict(grid=grid_config(num_bins, 0.0, two_theta_max),
                                     dist=distribution(distribution_name), max_impurities=max_impurities))
  c.render_chunk = ml_collections.config_dict.placeholder(int)
  c.render_chunk = render_chunk
  return c
