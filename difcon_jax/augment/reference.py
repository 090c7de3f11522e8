"""Plain NumPy reference of the augmentation maths, written for reading, not speed.

Same operations and draws as `kernel.py`; the profile is evaluated with the closed-form CDF at every bin edge
of every peak's window (no asymptotic series, no scatter tricks), one peak at a time.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from difcon_jax.augment import kernel as kernel_lib
from difcon_jax.augment import params as params_lib

_LN2 = math.log(2.0)


def shift_positions(two_theta, zero_shift, jitter):
  return two_theta + zero_shift + jitter


def crop_peaks(two_theta, intensity, low, high):
  return np.where((two_theta >= low) & (two_theta <= high), intensity, 0.0)


def scale_intensities(intensity, noise):
  return intensity * (1.0 + noise)


def add_impurities(two_theta, intensity, impurity_two_theta, impurity_intensity):
  top = intensity.max() if intensity.size else 0.0
  return np.concatenate([two_theta, impurity_two_theta]), np.concatenate([intensity, impurity_intensity * top])


def bin_positions(two_theta, grid):
  w = (grid.two_theta_max - grid.two_theta_min) / grid.num_bins
  index = np.floor((two_theta - np.float32(grid.two_theta_min)) * np.float32(1 / w)).astype(np.int64)
  return index, grid.two_theta_min + (index + 0.5) * w


def caglioti_fwhm(two_theta, U, V, W, p):
  theta = np.deg2rad(two_theta) / 2
  h2 = U * np.tan(theta) ** 2 + V * np.tan(theta) + W + p / np.cos(theta) ** 2
  return np.clip(np.sqrt(np.maximum(h2, 0.0)), params_lib.FWHM_MIN, params_lib.FWHM_MAX)


def side_widths(fwhm, asymmetry):
  clip = lambda h: np.clip(h, params_lib.FWHM_MIN, params_lib.FWHM_MAX)
  return clip(fwhm * (1 + asymmetry / 2)), clip(fwhm * (1 - asymmetry / 2))


def split_pseudo_voigt_cdf(x, h_left, h_right, eta):
  """∫_0^x of the unit-area split pseudo-Voigt centred at 0 (x in degrees, may be an array)."""
  h = np.where(x < 0, h_left, h_right)
  gauss = 0.5 * h * math.sqrt(math.pi / (4 * _LN2)) * special.erf(2 * math.sqrt(_LN2) * x / h)
  lorentz = 0.5 * h * np.arctan(2 * x / h)
  area = 0.5 * (h_left + h_right) * ((1 - eta) * math.sqrt(math.pi / (4 * _LN2)) + eta * math.pi / 2)
  return ((1 - eta) * gauss + eta * lorentz) / area


def render_profile(index, intensity, fwhm, eta, asymmetry, grid):
  n = grid.num_bins
  w = (grid.two_theta_max - grid.two_theta_min) / n
  k, _ = kernel_lib.window_bins(grid)
  h_left, h_right = side_widths(fwhm, asymmetry)
  pattern = np.zeros(n)
  for b, y, hl, hr in zip(index, intensity, h_left, h_right):
    if y == 0:
      continue
    bins = np.arange(b - k, b + k + 1)
    edges = (np.arange(-k, k + 2) - 0.5) * w  # relative to the peak (at its bin centre)
    mass = np.diff(split_pseudo_voigt_cdf(edges, hl, hr, eta))
    ok = (bins >= 0) & (bins < n)
    pattern[bins[ok]] += y * mass[ok]
  return pattern


def add_background(pattern, white, dilation, amplitude, gauss, counting):
  top = pattern.max()
  n = len(white)
  # Mean of white[j : j + dilation] (shorter at the end), through a running sum.
  running = np.concatenate([[0.0], np.cumsum(white, dtype=np.float64)])
  j = np.arange(n)
  end = np.minimum(j + dilation, n)
  smooth = (running[end] - running[j]) / (end - j)
  return pattern + amplitude * top * smooth + counting * np.sqrt(np.maximum(pattern, 0.0) * top) * gauss


def crop_pattern(pattern, low, high, grid):
  w = (grid.two_theta_max - grid.two_theta_min) / grid.num_bins
  centres = grid.two_theta_min + (np.arange(grid.num_bins) + 0.5) * w
  return np.where((centres >= low) & (centres <= high), pattern, 0.0)


def normalise(pattern):
  top = np.abs(pattern).max()
  return pattern / top if top > 0 else pattern


def render(two_theta, intensity, draws, cfg):
  """One pattern from one padded peak list and its draws (a dict of NumPy arrays without the batch axis)."""
  g = cfg.grid
  two_theta = np.asarray(two_theta, np.float64)
  intensity = np.asarray(intensity, np.float64)
  ok = np.isfinite(intensity) & np.isfinite(two_theta)
  intensity = np.where(ok, intensity, 0.0)
  two_theta = np.where(intensity > 0, two_theta, g.two_theta_min)
  d = {key: np.asarray(v, np.float64) for key, v in draws.items()}
  # Positions in float32 like the kernel's, so that a peak on a bin edge lands in the same bin.
  f32 = lambda x: np.asarray(x, np.float32)
  tt = shift_positions(f32(two_theta), f32(draws['zero_shift']), f32(draws['jitter']))
  y = crop_peaks(tt, intensity, d['peak_crop_low'], d['peak_crop_high'])
  y = scale_intensities(y, d['intensity_noise'])
  tt, y = add_impurities(tt, y, f32(draws['impurity_two_theta']), d['impurity_intensity'])
  index, centre = bin_positions(tt, g)
  fwhm = caglioti_fwhm(centre, d['U'], d['V'], d['W'], d['p'])
  pattern = normalise(render_profile(index, y, fwhm, float(d['eta']), float(d['asymmetry']), g))
  pattern = add_background(pattern, d['white'], int(d['dilation']), float(d['background']), d['gauss'],
                           float(d['counting_noise']))
  pattern = crop_pattern(pattern, d['crop_low'], d['crop_high'], g)
  return normalise(pattern)
