"""Plain NumPy reference of the augmentation maths, written for reading, not speed.

Same operations and draws as `kernel.py`; the profile is evaluated with the closed-form CDF at every bin edge
of every peak's window (no asymptotic series, no midpoint rule, no scatter tricks), one peak at a time. The lab
operations are computed another way than the kernel's where there is one: preferred orientation through the
reciprocal metric tensor (the kernel: Cartesian reciprocal vectors), the Kα2 re-binning through the cumulative
pattern (the kernel: two bin fractions), the background polynomial with numpy's chebval (the kernel: the
recurrence).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.polynomial import chebyshev as np_chebyshev
from scipy import special

from difcon_jax.crystallography import pattern_grid as grid_lib
from difcon_jax.augment import kernel as kernel_lib
from difcon_jax.augment import params as params_lib

_LN2 = math.log(2.0)


def _limits(profile):
  return profile if profile is not None else params_lib.profile_limits('train')


def shift_positions(two_theta, zero_shift, jitter):
  return two_theta + zero_shift + jitter


def displace(two_theta, displacement):
  return two_theta + displacement * np.cos(np.deg2rad(two_theta) / 2)


def march_dollase(hkl, cell, direction, r):
  """(r² cos²α + sin²α / r)^(-3/2), with cos α = h·G*·n / sqrt(h·G*·h n·G*·n) from the reciprocal metric tensor
  G* = G⁻¹ (G the direct metric tensor of the cell)."""
  a, b, c = cell[:3]
  ca, cb, cg = np.cos(np.deg2rad(cell[3:]))
  g = np.array([[a * a, a * b * cg, a * c * cb], [a * b * cg, b * b, b * c * ca], [a * c * cb, b * c * ca, c * c]])
  if not np.all(np.isfinite(g)) or abs(np.linalg.det(g)) < 1e-12:
    return np.ones(len(hkl))
  g_star = np.linalg.inv(g)
  h = np.asarray(hkl, np.float64)
  n = np.asarray(direction, np.float64)
  hh = np.einsum('pi,ij,pj->p', h, g_star, h)
  out = np.ones(len(h))
  ok = hh > 0
  cos2 = np.einsum('pi,ij,j->p', h[ok], g_star, n) ** 2 / (hh[ok] * (n @ g_star @ n))
  out[ok] = (r * r * cos2 + (1 - cos2) / r) ** -1.5
  return out


def _d_spacings(hkl, cell):
  """d (Å) of each hkl [p, 3] from the reciprocal metric tensor G* = G⁻¹; inf for hkl 0."""
  a, b, c = cell[:3]
  ca, cb, cg = np.cos(np.deg2rad(cell[3:]))
  g = np.array([[a * a, a * b * cg, a * c * cb], [a * b * cg, b * b, b * c * ca], [a * c * cb, b * c * ca, c * c]])
  h = np.asarray(hkl, np.float64)
  q2 = np.einsum('pi,ij,pj->p', h, np.linalg.inv(g), h)
  return np.where(q2 > 0, 1 / np.sqrt(np.where(q2 > 0, q2, 1.0)), np.inf)


def strain_cell(cell, isotropic, free):
  """The strained cell, the free parameters chosen by which lengths and angles are equal (kernel.strain_cell)."""
  cell = np.asarray(cell, np.float64)
  same = lambda i, j: abs(cell[i] - cell[j]) <= 1e-4 * abs(cell[j])
  delta = np.array(free, np.float64)
  delta[0] = 0.0
  for i in (1, 2):  # a length equal to an earlier one follows it (and a's change is the isotropic one alone)
    for j in range(i):
      if same(i, j):
        delta[i] = delta[j]
        break
  for i in (4, 5):  # an angle equal to an earlier one follows it
    for j in range(3, i):
      if same(i, j):
        delta[i] = delta[j]
        break
  for i in (3, 4, 5):
    if any(abs(cell[i] - x) <= 1e-4 * x for x in (90.0, 120.0)):  # a right or hexagonal angle stays
      delta[i] = 0.0
  out = cell * (1 + delta)
  out[:3] *= 1 + isotropic
  return out


def strain_positions(two_theta, intensity, hkl, cell, isotropic, free):
  cell = np.asarray(cell, np.float64)
  d0 = _d_spacings(hkl, cell)
  d1 = _d_spacings(hkl, strain_cell(cell, isotropic, free))
  valid = np.isfinite(d0) & np.isfinite(d1)
  sin = np.sin(np.deg2rad(two_theta) / 2) * np.where(valid, d0 / np.where(valid, d1, 1.0), 1.0)
  inside = sin < 1
  moved = 2 * np.rad2deg(np.arcsin(np.where(inside, sin, 0.0)))
  return np.where(valid & inside, moved, two_theta), np.where(inside, intensity, 0.0)


def crop_peaks(two_theta, intensity, low, high):
  return np.where((two_theta >= low) & (two_theta <= high), intensity, 0.0)


def scale_intensities(intensity, noise):
  return intensity * (1.0 + noise)


def add_impurities(two_theta, intensity, impurity_two_theta, impurity_intensity):
  top = intensity.max() if intensity.size else 0.0
  return np.concatenate([two_theta, impurity_two_theta]), np.concatenate([intensity, impurity_intensity * top])


def bin_positions(two_theta, grid):
  w = grid_lib.bin_width(grid)
  index = np.floor((two_theta - np.float32(grid.two_theta_min)) * np.float32(1 / w)).astype(np.int64)
  return index, grid_lib.bin_centre(grid, index)


def caglioti_fwhm(two_theta, U, V, W, p, profile=None):
  lim = _limits(profile)
  theta = np.deg2rad(two_theta) / 2
  h2 = U * np.tan(theta) ** 2 + V * np.tan(theta) + W + p / np.cos(theta) ** 2
  return np.clip(np.sqrt(np.maximum(h2, 0.0)), lim.fwhm_min, lim.fwhm_max)


def lab_fwhm(two_theta, U, V, W, size, strain, profile=None):
  """Caglioti instrument FWHM with Scherrer and microstrain broadening in quadrature (see kernel.lab_fwhm)."""
  lim = _limits(profile)
  theta = np.deg2rad(two_theta) / 2
  scherrer = np.rad2deg(params_lib.SCHERRER_K * grid_lib.WAVELENGTH / (size * 10.0) / np.cos(theta))
  strain = np.rad2deg(4 * strain * np.tan(theta))
  h2 = U * np.tan(theta) ** 2 + V * np.tan(theta) + W + scherrer ** 2 + strain ** 2
  return np.clip(np.sqrt(np.maximum(h2, 0.0)), lim.fwhm_min, lim.fwhm_max)


def side_widths(fwhm, asymmetry, profile=None):
  lim = _limits(profile)
  clip = lambda h: np.clip(h, lim.fwhm_min, lim.fwhm_max)
  return clip(fwhm * (1 + asymmetry / 2)), clip(fwhm * (1 - asymmetry / 2))


def split_pseudo_voigt_cdf(x, h_left, h_right, eta):
  """∫_0^x of the unit-area split pseudo-Voigt centred at 0 (x in degrees, may be an array)."""
  h = np.where(x < 0, h_left, h_right)
  gauss = 0.5 * h * math.sqrt(math.pi / (4 * _LN2)) * special.erf(2 * math.sqrt(_LN2) * x / h)
  lorentz = 0.5 * h * np.arctan(2 * x / h)
  area = 0.5 * (h_left + h_right) * ((1 - eta) * math.sqrt(math.pi / (4 * _LN2)) + eta * math.pi / 2)
  return ((1 - eta) * gauss + eta * lorentz) / area


def render_profile(index, intensity, fwhm, eta, asymmetry, grid, profile=None):
  n = grid.num_bins
  w = grid_lib.bin_width(grid)
  k, _ = kernel_lib.window_bins(grid, profile)
  h_left, h_right = side_widths(fwhm, asymmetry, profile)
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


def add_kalpha2(pattern, ratio, grid):
  """Each Kα2 bin takes `ratio` times the Kα1 intensity between its edges mapped back by Bragg's law: the
  cumulative Kα1 pattern, linear within a bin, read at the mapped edges."""
  n = grid.num_bins
  edges = grid.two_theta_min + np.arange(n + 1) * (grid.two_theta_max - grid.two_theta_min) / n
  mapped = 2 * np.rad2deg(np.arcsin(np.sin(np.deg2rad(edges) / 2) * params_lib.CU_KALPHA1 / params_lib.CU_KALPHA2))
  cumulative = np.concatenate([[0.0], np.cumsum(pattern)])
  return pattern + ratio * np.diff(np.interp(mapped, edges, cumulative))


def measured_background(grid, level, chebyshev, hump_amplitude, hump_centre, hump_fwhm, low_amplitude, low_decay):
  x = grid_lib.bin_centres(grid)
  t = 2 * (x - grid.two_theta_min) / (grid.two_theta_max - grid.two_theta_min) - 1
  poly = np_chebyshev.chebval(t, np.concatenate([[1.0], chebyshev]))
  hump = hump_amplitude * np.exp(-4 * _LN2 * ((x - hump_centre) / hump_fwhm) ** 2)
  return level * poly + hump + low_amplitude * np.exp(-x / low_decay)


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
  centres = grid_lib.bin_centres(grid)
  return np.where((centres >= low) & (centres <= high), pattern, 0.0)


def normalise(pattern):
  top = np.abs(pattern).max()
  return pattern / top if top > 0 else pattern


def render(two_theta, intensity, draws, cfg, hkl=None, cell=None):
  """One pattern from one padded peak list and its draws (a dict of NumPy arrays without the batch axis); hkl
  [p, 3] and cell [6] as in kernel.render."""
  g, prof, lab = cfg.grid, cfg.get('profile'), cfg.get('lab_effects', False)
  two_theta = np.asarray(two_theta, np.float64)
  intensity = np.asarray(intensity, np.float64)
  ok = np.isfinite(intensity) & np.isfinite(two_theta)
  intensity = np.where(ok, intensity, 0.0)
  two_theta = np.where(intensity > 0, two_theta, g.two_theta_min)
  d = {key: np.asarray(v, np.float64) for key, v in draws.items()}
  if lab and hkl is not None and cell is not None:
    intensity = intensity * march_dollase(hkl, np.asarray(cell, np.float64), d['preferred_direction'],
                                          float(d['march_dollase_r']))
    two_theta, intensity = strain_positions(two_theta, intensity, hkl, cell, float(d['lattice_strain']),
                                            d['lattice_strain_free'])
  # Positions in float32 like the kernel's, so that a peak on a bin edge lands in the same bin.
  f32 = lambda x: np.asarray(x, np.float32)
  tt = f32(two_theta)
  if lab:
    tt = f32(displace(tt, f32(draws['displacement'])))
  tt = shift_positions(tt, f32(draws['zero_shift']), f32(draws['jitter']))
  y = crop_peaks(tt, intensity, d['peak_crop_low'], d['peak_crop_high'])
  y = scale_intensities(y, d['intensity_noise'])
  tt, y = add_impurities(tt, y, f32(draws['impurity_two_theta']), d['impurity_intensity'])
  index, centre = bin_positions(tt, g)
  if lab:
    fwhm = lab_fwhm(centre, d['U'], d['V'], d['W'], d['crystallite_size'], d['microstrain'], prof)
  else:
    fwhm = caglioti_fwhm(centre, d['U'], d['V'], d['W'], d['p'], prof)
  pattern = render_profile(index, y, fwhm, float(d['eta']), float(d['asymmetry']), g, prof)
  if lab:
    pattern = add_kalpha2(pattern, float(d['kalpha2_ratio']), g)
  pattern = normalise(pattern)
  if lab:
    pattern = pattern + measured_background(g, d['background_level'], d['background_chebyshev'],
                                            d['hump_amplitude'], d['hump_centre'], d['hump_fwhm'],
                                            d['low_angle_amplitude'], d['low_angle_decay'])
  pattern = add_background(pattern, d['white'], int(d['dilation']), float(d['background']), d['gauss'],
                           float(d['counting_noise']))
  pattern = crop_pattern(pattern, d['crop_low'], d['crop_high'], g)
  return normalise(pattern)
