"""The `lab` distribution: each instrument, sample and background effect measured on rendered patterns against its
definition (hand values, known limits), the NumPy twin against the kernel, and the ranges that params.py
documents."""

import functools
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from difcon_jax.crystallography import pattern_grid as grid
from difcon_jax.augment import kernel
from difcon_jax.augment import params
from difcon_jax.augment import reference

CFG = params.config('lab')
GRID = CFG.grid
X = (np.arange(GRID.num_bins) + 0.5) * grid.bin_width(GRID)  # bin centres, degrees


@functools.cache
def _draws_fn(batch, p):
  return jax.jit(lambda key: kernel.sample_draws(key, CFG, batch, p))


def _draws(batch, p, seed=0):
  return jax.tree.map(np.array, _draws_fn(batch, p)(jax.random.key(seed)))


def _quiet(batch, p, **values):
  """Lab draws with every effect off (a lone Gaussian of FWHM 0.02° per peak) but `values`."""
  return kernel.override_draws(_draws(batch, p), **{**kernel.LAB_EFFECTS_OFF, **values})


@functools.cache
def _render_fn(with_hkl):
  if with_hkl:
    return jax.jit(jax.vmap(lambda t, y, d, h, c: kernel.render(t, y, d, CFG, h, c)))
  return jax.jit(jax.vmap(lambda t, y, d: kernel.render(t, y, d, CFG)))


def _render(tt, y, draws, hkl=None, cell=None):
  if hkl is None:
    return np.asarray(_render_fn(False)(tt, y, draws), np.float64)
  return np.asarray(_render_fn(True)(tt, y, draws, hkl, cell), np.float64)


def _lines(positions, batch=1, p=8):
  tt = np.zeros((batch, p), np.float32)
  y = np.zeros((batch, p), np.float32)
  tt[:, :len(positions)] = positions
  y[:, :len(positions)] = 1.0
  return tt, y


def _fwhm(pattern, centre, half_window=1.0):
  """FWHM (degrees) of the peak near `centre`: the half-maximum crossings, linearly interpolated."""
  sel = np.flatnonzero(np.abs(X - centre) < half_window)
  i = sel[np.argmax(pattern[sel])]
  half = pattern[i] / 2
  l = i
  while pattern[l] > half:
    l -= 1
  r = i
  while pattern[r] > half:
    r += 1
  left = X[l] + (half - pattern[l]) / (pattern[l + 1] - pattern[l]) * (X[l + 1] - X[l])
  right = X[r - 1] + (pattern[r - 1] - half) / (pattern[r - 1] - pattern[r]) * (X[r] - X[r - 1])
  return right - left


def _moments(pattern, lo, hi):
  """Area and centroid of the pattern over bins whose centre lies in [lo, hi)."""
  sel = (X >= lo) & (X < hi)
  area = pattern[sel].sum()
  return area, (X[sel] * pattern[sel]).sum() / area


def _random_cells(rng, batch):
  """Valid triclinic cells: a, b, c in 3-15 Å, angles 75-105° (always a positive volume)."""
  return np.concatenate([rng.uniform(3, 15, (batch, 3)), rng.uniform(75, 105, (batch, 3))], 1).astype(np.float32)


# --------------------------------------------------------------------------------- the twin against the kernel

@pytest.mark.parametrize('with_hkl', [True, False])
def test_lab_chain_matches_reference(with_hkl):
  rng = np.random.default_rng(1)
  batch, p, real = 3, 64, 40
  tt = np.zeros((batch, p), np.float32)
  y = np.zeros((batch, p), np.float32)
  for b in range(batch):
    tt[b, :real] = np.sort(rng.uniform(3, 118, real))
    y[b, :real] = rng.uniform(0.01, 1, real)
  hkl = rng.integers(-4, 5, (batch, p, 3)).astype(np.int16)
  hkl[:, real:] = 0
  cell = _random_cells(rng, batch)
  draws = _draws(batch, p, seed=2)
  # Make sure every effect is on in this batch, whatever the seed drew.
  draws['kalpha2_ratio'][:] = 0.5
  draws['march_dollase_r'][:] = [0.75, 1.3, 0.9]
  draws['hump_amplitude'][:] = 0.05
  out = _render(tt, y, draws, hkl, cell) if with_hkl else _render(tt, y, draws)
  for i in range(batch):
    d = {k: v[i] for k, v in draws.items()}
    ref = reference.render(tt[i], y[i], d, CFG, hkl[i], cell[i]) if with_hkl else reference.render(tt[i], y[i], d, CFG)
    np.testing.assert_allclose(out[i], ref, atol=3e-6)


def test_wide_profiles_match_the_closed_form_cdf():
  """The lab windows' mid zone (midpoint rule with its curvature term) and far series from the core out, against
  the closed-form CDF at every bin edge."""
  rng = np.random.default_rng(2)
  index = np.array([-400, -250, 0, 40, 3000, 3001, 3001, 6000, 11990, 12200, 12400])
  y = rng.uniform(0.1, 1, len(index)).astype(np.float32)
  fwhm = np.array([0.3, 0.2, 0.3, 0.005, 0.02, 0.1, 0.25, 0.3, 0.15, 0.3, 0.05], np.float32)
  for eta, rho in ((0.0, 0.0), (1.0, 0.0), (0.3, 0.8), (0.7, -1.0)):
    out = jax.jit(lambda i, yy, f: kernel.render_profile(i, yy, f, eta, rho, GRID, CFG.profile))(index, y, fwhm)
    ref = reference.render_profile(index, y, fwhm, eta, rho, GRID, CFG.profile)
    np.testing.assert_allclose(np.asarray(out), ref, atol=2e-6, rtol=1e-4)


def test_every_zone_of_a_lab_window_is_the_closed_form_to_1e8():
  """The masses of one unit-area peak, zone by zone (near: CDF; mid: midpoint rule and curvature; far: series),
  against the closed-form CDF in float64: the mid and far zones within 1e-8 of the area (the near zone's float32
  CDF differences within 1e-7)."""
  w = grid.bin_width(GRID)
  for h in (0.005, 0.02, 0.05, 0.1, 0.2, 0.3):
    for eta in (0.0, 0.5, 1.0):
      for offset, masses in kernel.profile_masses(jnp.float32([h]), jnp.float32([h]), eta, GRID, CFG.profile):
        o = offset + np.arange(masses.shape[1])
        exact = np.diff(reference.split_pseudo_voigt_cdf((np.append(o, o[-1] + 1) - 0.5) * w, h, h, eta))
        atol = 1e-7 if offset == -kernel._NEAR_BINS else 1e-8
        np.testing.assert_allclose(np.asarray(masses[0], np.float64), exact, rtol=0, atol=atol,
                                   err_msg=f'{h} {eta} {offset}')


def test_far_series_from_the_lab_core_is_the_closed_form():
  k, core = kernel.window_bins(GRID, CFG.profile)
  w = grid.bin_width(GRID)
  coef = kernel._far_coefficients(k, w, core)
  o = np.arange(core + 1, k + 1)
  for h in (0.02, 0.1, 0.3):
    exact = 0.5 * h * (np.arctan(2 * (o + 0.5) * w / h) - np.arctan(2 * (o - 0.5) * w / h))
    series = sum(h ** (2 * n + 2) * coef[n] for n in range(4))
    np.testing.assert_allclose(series, exact, rtol=5e-6)


def test_lab_operations_match_reference():
  rng = np.random.default_rng(3)
  tt = np.linspace(1, 119, 60)
  np.testing.assert_allclose(np.asarray(kernel.lab_fwhm(jnp.float32(tt), 5e-3, -1e-3, 2e-3, 80.0, 3e-4, CFG.profile)),
                             reference.lab_fwhm(tt, 5e-3, -1e-3, 2e-3, 80.0, 3e-4, CFG.profile), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(kernel.displace(jnp.float32(tt), 0.07)), reference.displace(tt, 0.07),
                             rtol=1e-6)
  hkl = rng.integers(-5, 6, (50, 3))
  hkl[0] = 0
  for cell in _random_cells(rng, 4):
    for direction in kernel.PREFERRED_DIRECTIONS[[0, 4, 9, 12]]:
      for r in (0.7, 1.4):
        np.testing.assert_allclose(
            np.asarray(kernel.march_dollase(jnp.asarray(hkl, jnp.int16), jnp.asarray(cell), jnp.float32(direction), r)),
            reference.march_dollase(hkl, cell.astype(np.float64), direction, r), rtol=2e-5)
  pattern = np.asarray(_render(*_lines([20.003, 64.51, 117.2]), _quiet(1, 8, W=1e-3)))[0]
  np.testing.assert_allclose(np.asarray(kernel.add_kalpha2(jnp.float32(pattern), 0.5, GRID)),
                             reference.add_kalpha2(pattern, 0.5, GRID), atol=1e-6)
  cheb = rng.uniform(-0.25, 0.25, params.CHEBYSHEV_TERMS)
  args = (0.07, cheb, 0.05, 22.0, 9.0, 0.3, 4.0)
  np.testing.assert_allclose(np.asarray(kernel.measured_background(GRID, *args)),
                             reference.measured_background(GRID, *args), atol=1e-6)


# ------------------------------------------------------------------------------- peak widths against Caglioti

def test_isolated_peak_fwhm_follows_caglioti_scherrer_and_strain():
  """U = 4e-3, V = -1e-3, W = 2e-3 deg², 60 nm crystallites, microstrain 4e-4: FWHM² = U tan²θ + V tanθ + W
  + (0.9·1.5418 Å / (600 Å cos θ))² + (4·4e-4 tan θ)², the last two in degrees. At 2θ = 90°: 0.005 + 0.18740²
  + 0.091673² = 0.048522 deg², FWHM 0.22027°."""
  expected = {20.0: 0.142526, 50.0: 0.160022, 90.0: 0.220274, 110.0: 0.281499}
  for eta in (0.0, 0.5):
    draws = _quiet(1, 8, U=4e-3, V=-1e-3, W=2e-3, crystallite_size=60.0, microstrain=4e-4, eta=eta)
    pattern = _render(*_lines(list(expected)), draws)[0]
    for centre, fwhm in expected.items():
      # Positions snap to bin centres (+0.005°); the widths change by far less over 0.005°.
      assert _fwhm(pattern, centre) == pytest.approx(fwhm, rel=0.005), (eta, centre)


def test_peak_widths_grow_with_angle_like_an_instrument():
  """Instrument widths only (no sample broadening): the lab ranges' FWHM, measured on rendered patterns at the
  extremes of the U, V, W ranges, lies in the documented bands: 0.028-0.067° at 30°, 0.06-0.17° at 120° (at 119°
  here, inside the grid)."""
  lo = dict(U=2e-3, V=-2e-3, W=1.2e-3)  # narrowest at 30°
  hi = dict(U=8e-3, V=-2e-4, W=4e-3)  # widest everywhere
  narrow, wide = (_render(*_lines([30.0, 119.0]), _quiet(1, 8, **c))[0] for c in (lo, hi))
  assert 0.028 <= _fwhm(narrow, 30.0) <= 0.031 and 0.064 <= _fwhm(wide, 30.0) <= 0.069
  assert 0.058 <= _fwhm(narrow, 119.0) <= 0.064 and 0.16 <= _fwhm(wide, 119.0) <= 0.17
  for pattern in (narrow, wide):
    assert _fwhm(pattern, 119.0) > 1.8 * _fwhm(pattern, 30.0)


def test_fwhm_is_clipped_to_the_lab_limit():
  draws = _quiet(1, 8, crystallite_size=20.0, microstrain=2e-3)
  pattern = _render(*_lines([110.0]), draws)[0]
  assert _fwhm(pattern, 110.0, half_window=2.0) == pytest.approx(0.3, rel=0.01)
  assert CFG.profile.fwhm_max == 0.3 and params.config('train').profile.fwhm_max == params.FWHM_MAX


# ------------------------------------------------------------------------------------------- the Kα doublet

def test_kalpha2_offset_and_ratio_at_several_angles():
  """Kα2 from the same d: 2θ2 = 2 asin((1.54439 / 1.54056) sin θ1); its line carries `ratio` times the Kα1
  intensity. Offsets by hand: 0.07634° at 30°, 0.16455° at 60°, 0.28524° at 90°, 0.44856° at 115°."""
  offsets = {30.0: 0.076342, 60.0: 0.164548, 90.0: 0.285242, 115.0: 0.448562}
  draws = _quiet(1, 8, kalpha2_ratio=0.5, W=4e-4)  # Gaussian lines of FWHM 0.02°: resolved at every angle
  pattern = _render(*_lines(list(offsets)), draws)[0]
  for t, offset in offsets.items():
    c1 = math.floor(t / 0.01) * 0.01 + 0.005  # the Kα1 line's bin centre
    split = c1 + offset / 2
    area1, centroid1 = _moments(pattern, c1 - 0.1, split)
    area2, centroid2 = _moments(pattern, split, c1 + offset + 0.1)
    assert centroid1 == pytest.approx(c1, abs=1e-4)
    # The offset at the Kα1 bin centre differs from the hand value at t by < 4e-5°.
    assert centroid2 - centroid1 == pytest.approx(offset, abs=1e-4), t
    assert area2 / area1 == pytest.approx(0.5, rel=3e-4), t


def test_kalpha2_off_leaves_one_line():
  pattern = _render(*_lines([90.0]), _quiet(1, 8, W=4e-4))[0]
  assert pattern[(X > 90.15) & (X < 90.6)].sum() < 1e-6


# ----------------------------------------------------------------------------------------------- peak shifts

def test_displacement_shift_follows_cos_theta():
  """2θ + z + D cos θ: z = 0.04°, D = 0.4° shifts 20° by 0.43392°, 60° by 0.38641° and 100° by 0.29711°; a
  constant zero shift would move them alike."""
  shifts = {20.0: 0.433923, 60.0: 0.386410, 100.0: 0.297115}
  pattern = _render(*_lines(list(shifts)), _quiet(1, 8, zero_shift=0.04, displacement=0.4))[0]
  for t, shift in shifts.items():
    _, centroid = _moments(pattern, t + shift - 0.1, t + shift + 0.1)
    assert centroid == pytest.approx(t + shift, abs=0.0051), t  # binning: positions snap to bin centres


# ---------------------------------------------------------------------------------------- preferred orientation

def test_march_dollase_hand_values():
  """r = 0.8 along [001]* of a cubic cell: (001) r⁻³ = 1.953125; (100) r^1.5 = 0.715542; (111) cos²α = 1/3:
  (r²/3 + 2/(3r))^-1.5 = 0.933872. Hexagonal (100) against (010): a*, b* at 60°: (r²/4 + 3/(4r))^-1.5 = 0.869748.
  (110) against (100): 1.417428. Monoclinic β = 100°: a* and c* at 80°: 0.731631. Padding (000): 1."""
  md = lambda hkl, cell, direction: np.asarray(kernel.march_dollase(jnp.asarray(hkl, jnp.int16), jnp.float32(cell),
                                                                    jnp.float32(direction), 0.8))
  cubic = md([[0, 0, 1], [1, 0, 0], [1, 1, 1], [0, 0, 0], [0, 0, -2]], [4, 4, 4, 90, 90, 90], [0, 0, 1])
  np.testing.assert_allclose(cubic, [1.953125, 0.715542, 0.933872, 1.0, 1.953125], rtol=1e-5)
  hexagonal = [3, 3, 5, 90, 90, 120]
  np.testing.assert_allclose(md([[1, 0, 0]], hexagonal, [0, 1, 0]), [0.869748], rtol=1e-5)
  # (110) against (100): a* + b* makes 30° with a* (the direct a + b makes 60° with a): (0.75 r² + 0.25/r)^-1.5.
  np.testing.assert_allclose(md([[1, 1, 0]], hexagonal, [1, 0, 0]), [1.417428], rtol=1e-5)
  np.testing.assert_allclose(md([[1, 0, 0]], [5, 6, 7, 90, 100, 90], [0, 0, 1]), [0.731631], rtol=1e-5)


def test_march_dollase_averages_to_one_over_directions():
  """∫_0^1 P(cos α) d(cos α) = 1 for every r: the factor redistributes intensity, it does not add any."""
  mu, weight = np.polynomial.legendre.leggauss(64)
  mu, weight = (mu + 1) / 2, weight / 2  # on [0, 1]
  vectors = jnp.float32(np.stack([np.sqrt(1 - mu ** 2), np.zeros_like(mu), mu], 1))
  for r in (0.5, 0.7, 1.0, 1.4):
    p = np.asarray(kernel.march_dollase(vectors, jnp.float32([1, 1, 1, 90, 90, 90]), jnp.float32([0, 0, 1]), r))
    assert (weight * p).sum() == pytest.approx(1.0, abs=1e-4), r


def test_preferred_orientation_changes_rendered_intensities():
  """Cubic (001) at 30° and (100) at 60°, equally strong: with r = 0.8 along [001] their area ratio grows by
  r⁻³ / r^1.5 = 2.72958; without hkl, or with r = 1, nothing changes."""
  tt, y = _lines([30.0, 60.0])
  hkl = np.zeros((1, 8, 3), np.int16)
  hkl[0, 0], hkl[0, 1] = [0, 0, 1], [1, 0, 0]
  cell = np.float32([[4, 4, 4, 90, 90, 90]])
  plain = _quiet(1, 8, W=4e-4)
  oriented = _quiet(1, 8, W=4e-4, march_dollase_r=0.8)
  oriented['preferred_direction'][:] = [0, 0, 1]
  ratio = lambda pat: _moments(pat, 29.8, 30.2)[0] / _moments(pat, 59.8, 60.2)[0]
  base = ratio(_render(tt, y, plain, hkl, cell)[0])
  assert base == pytest.approx(1.0, rel=1e-4)
  assert ratio(_render(tt, y, oriented, hkl, cell)[0]) / base == pytest.approx(2.729575, rel=1e-4)
  np.testing.assert_array_equal(_render(tt, y, oriented)[0], _render(tt, y, plain)[0])


# ---------------------------------------------------------------------------------------- background and noise

def test_measured_background_hand_values():
  """level 0.1, c = (0.2, -0.1, 0.05, 0): 0.1 (1 + 0.2 - 0.1 + 0.05) = 0.115 at 120°, 0.1 (1 - 0.2 - 0.1 - 0.05)
  = 0.065 at 0° and 0.1 (1 + 0.1) = 0.11 at 60° (T2(0) = -1); a hump of 0.05 at 25° is half as high 5° away;
  a low-angle rise of 0.3 falls to 0.3/e over τ = 4°."""
  bg = lambda *a: np.asarray(kernel.measured_background(GRID, *a), np.float64)
  poly = bg(0.1, jnp.float32([0.2, -0.1, 0.05, 0.0]), 0.0, 25.0, 10.0, 0.0, 4.0)
  # Bin centres sit 0.005° inside the ends and beside 60°: the slope there is below 0.001 per degree.
  assert poly[-1] == pytest.approx(0.115, abs=1e-4) and poly[0] == pytest.approx(0.065, abs=1e-4)
  assert (poly[5999] + poly[6000]) / 2 == pytest.approx(0.11, abs=1e-6)
  hump = bg(0.0, jnp.zeros(4), 0.05, 25.005, 10.0, 0.0, 4.0)
  assert hump[2500] == pytest.approx(0.05, rel=1e-5) and hump[2000] / hump[2500] == pytest.approx(0.5, rel=1e-4)
  assert hump[3000] / hump[2500] == pytest.approx(0.5, rel=1e-4) and np.argmax(hump) == 2500
  rise = bg(0.0, jnp.zeros(4), 0.0, 25.0, 10.0, 0.3, 4.0)
  assert rise[0] == pytest.approx(0.3 * math.exp(-0.005 / 4), rel=1e-5)
  assert rise[400] / rise[0] == pytest.approx(math.exp(-1), rel=1e-5)
  for signs in np.array(np.meshgrid(*[[-1, 1]] * 4)).T.reshape(-1, 4):  # the extreme polynomials stay >= 0
    assert bg(0.1, jnp.float32(0.25 * signs), 0.0, 25.0, 10.0, 0.0, 4.0).min() >= -1e-7


def test_rendered_background_is_the_measured_background():
  """Noise off: away from its only peak, a rendered lab pattern is the background divided by the pattern's top."""
  cheb = np.float32([0.2, -0.1, 0.05, 0.0])
  draws = _quiet(1, 8, background_level=0.1, hump_amplitude=0.05, hump_centre=25.0, hump_fwhm=10.0,
                 low_angle_amplitude=0.3, low_angle_decay=4.0)
  draws['background_chebyshev'][:] = cheb
  pattern = _render(*_lines([100.0]), draws)[0]
  bg = np.asarray(kernel.measured_background(GRID, 0.1, cheb, 0.05, 25.0, 10.0, 0.3, 4.0), np.float64)
  top = 1.0 + bg[10000]  # the peak's bin, where the background sits under it
  far = np.abs(X - 100.0) > 1.0
  np.testing.assert_allclose(pattern[far], bg[far] / top, atol=1e-6)


def test_counting_noise_scales_with_the_signal():
  """Counting noise σ = c sqrt(y · top): on plateaus of 0.04 and 0.64 (top 1) with c = 0.02, σ = 0.004 and
  0.016, four times as much where the signal is sixteen times as strong."""
  n = GRID.num_bins
  pattern = np.full(n, 0.04, np.float32)
  pattern[6000:] = 0.64
  pattern[0] = 1.0
  gauss = np.asarray(jax.random.normal(jax.random.key(5), (n,)))
  noisy = np.asarray(kernel.add_background(jnp.float32(pattern), jnp.zeros(n), 1, 0.0, jnp.float32(gauss), 0.02, 10))
  low, high = (noisy - pattern)[1:6000].std(), (noisy - pattern)[6000:].std()
  assert low == pytest.approx(0.004, rel=0.05) and high == pytest.approx(0.016, rel=0.05)


# ----------------------------------------------------------------------------------------- draws and ranges

@pytest.mark.slow
def test_lab_draws_respect_their_ranges_and_rates():
  d = CFG.dist
  draws = _draws(4096, 4, seed=7)
  inside = lambda a, lo, hi: np.all((a >= lo - 1e-7 * abs(lo)) & (a <= hi + 1e-7 * abs(hi)))
  for name in ('microstrain', 'hump_centre', 'hump_fwhm', 'background_level', 'low_angle_amplitude',
               'low_angle_decay', 'crystallite_size', 'U', 'V', 'W', 'eta', 'counting_noise'):
    assert inside(draws[name], *d[name]), name
  assert inside(np.abs(draws['displacement']), *d.displacement)
  assert inside(draws['background_chebyshev'], *d.background_chebyshev)
  # Effects switched on with their documented probabilities (4096 draws: 4σ bounds).
  for name, on in (('kalpha2', draws['kalpha2_ratio'] > 0), ('preferred_orientation', draws['march_dollase_r'] != 1),
                   ('hump', draws['hump_amplitude'] > 0)):
    assert abs(on.mean() - d[name]) < 4 * math.sqrt(d[name] * (1 - d[name]) / 4096), name
  ratio = draws['kalpha2_ratio'][draws['kalpha2_ratio'] > 0]
  assert inside(ratio, *d.kalpha2_ratio)
  r = draws['march_dollase_r'][draws['march_dollase_r'] != 1]
  assert inside(np.abs(np.log(r)), *d.march_dollase_log_r) and (r < 1).any() and (r > 1).any()
  assert (draws['displacement'] < 0).any() and (draws['displacement'] > 0).any()
  # Every low-index direction occurs; crystallite sizes are log-uniform (half below the geometric mean).
  directions = {tuple(v) for v in draws['preferred_direction'].astype(int)}
  assert directions == {tuple(v) for v in kernel.PREFERRED_DIRECTIONS}
  lo, hi = d.crystallite_size
  assert abs(np.mean(draws['crystallite_size'] < math.sqrt(lo * hi)) - 0.5) < 0.03
  # The lab draws come from their own stream: the same key gives train's per-bin noise.
  train = jax.jit(lambda k: kernel.sample_draws(k, params.config('train'), 4096, 4))(jax.random.key(7))
  np.testing.assert_array_equal(np.asarray(train['gauss']), draws['gauss'])


def test_lab_and_invariance_test_ranges_do_not_overlap():
  """Training on lab leaves the invariance test set unseen wherever the two share a random quantity; lab keeps
  every Table 1 quantity."""
  lab, test = params.distribution('lab'), params.distribution('invariance_test')
  assert set(params.distribution('train')) <= set(lab)
  for name in set(lab) & set(test):
    (a0, a1), (b0, b1) = lab[name], test[name]
    assert a1 <= b0 or b1 <= a0, name
    if isinstance(a0, int) and isinstance(b0, int):
      assert a1 < b0 or b1 < a0, name


def test_window_limits_are_per_distribution():
  assert kernel.window_bins(GRID) == kernel.window_bins(GRID, params.config('train').profile) == (160, 16)
  assert kernel.window_bins(GRID, CFG.profile) == (300, 75)
  # A lone lab peak keeps its intensity but for the Lorentzian tail beyond the ±3° window: η / (π K), K the
  # window in FWHM (10 at 0.3°, 30 at 0.1°).
  for fwhm, k in ((0.3, 10), (0.1, 30)):
    for eta in (0.0, 1.0):
      out = kernel.render_profile(jnp.array([6000]), jnp.array([1.0]), jnp.float32([fwhm]), eta, 0.0, GRID, CFG.profile)
      lost = eta * (1 - 2 / math.pi * math.atan(2 * k))
      assert float(out.sum()) == pytest.approx(1 - lost, abs=2e-4), (fwhm, eta)


# ------------------------------------------------------------------------------------ callers and robustness

@pytest.mark.slow
def test_augment_fn_takes_hkl_and_cell_or_not():
  rng = np.random.default_rng(8)
  tt, y = _lines([25.0, 40.0, 70.0], batch=4, p=8)
  hkl = np.zeros((4, 8, 3), np.int16)
  hkl[:, :3] = [[0, 0, 1], [1, 1, 0], [2, 1, 1]]
  cell = _random_cells(rng, 4)
  unstrained = params.config('lab', overrides=dict(lattice_strain=(0.0, 0.0), lattice_strain_free=(0.0, 0.0)))
  f = kernel.make_augment_fn(unstrained)
  without = np.asarray(f(jax.random.key(1), tt, y))
  with_hkl = np.asarray(f(jax.random.key(1), tt, y, hkl, cell))
  draws = jax.jit(lambda k: kernel.sample_draws(k, unstrained, 4, 8))(jax.random.key(1))
  oriented = np.asarray(draws['march_dollase_r']) != 1
  assert np.all(np.isfinite(with_hkl)) and np.all(np.isfinite(without))
  # Without lattice strain, patterns whose draw has no preferred orientation are the same with or without hkl;
  # the others differ. With strain (lab's default) every pattern's peaks move.
  strained = np.asarray(kernel.make_augment_fn(CFG)(jax.random.key(1), tt, y, hkl, cell))
  assert all(np.abs(strained[i] - without[i]).max() > 1e-3 for i in range(4))
  np.testing.assert_allclose(with_hkl[~oriented], without[~oriented], atol=1e-6)
  assert all(np.abs(with_hkl[i] - without[i]).max() > 1e-3 for i in np.flatnonzero(oriented))


@pytest.mark.slow
def test_chunked_lab_rendering_with_hkl_is_the_vmapped_one():
  rng = np.random.default_rng(9)
  tt = np.sort(rng.uniform(5, 115, (7, 32)), 1).astype(np.float32)
  y = rng.uniform(0.01, 1, (7, 32)).astype(np.float32)
  hkl = rng.integers(-3, 4, (7, 32, 3)).astype(np.int16)
  cell = _random_cells(rng, 7)
  draws = jax.jit(lambda k: kernel.sample_draws(k, CFG, 7, 32))(jax.random.key(3))

  def run(chunk):
    cfg = params.config('lab', render_chunk=chunk)
    return np.asarray(jax.jit(lambda t, yy, d, h, c: kernel.render_batch(t, yy, d, cfg, hkl=h, cell=c))(
        tt, y, draws, hkl, cell))

  np.testing.assert_allclose(run(3), run(7), atol=1e-6)


@pytest.mark.slow
def test_plot_command_shows_lab(tmp_path):
  out = tmp_path / 'lab.png'
  run = subprocess.run([sys.executable, '-m', 'difcon_jax.augment', '--plot', str(out), '--distribution', 'lab',
                        '--draws', '1'], capture_output=True, text=True)
  assert run.returncode == 0, run.stderr
  assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


_MESH_CHECK = r'''
import jax, numpy as np
from difcon_jax.augment import kernel
from difcon_jax.augment import params
assert jax.device_count() == 2
rng = np.random.default_rng(10)
tt = np.sort(rng.uniform(5, 115, (4, 16)), 1).astype(np.float32)
y = rng.uniform(0.01, 1, (4, 16)).astype(np.float32)
hkl = rng.integers(-3, 4, (4, 16, 3)).astype(np.int16)
cell = np.float32([[4, 5, 6, 90, 95, 90]] * 4)
cfg = params.config('lab')
mesh = jax.sharding.Mesh(np.array(jax.devices()), ('data',))  # as train.py builds it
key = jax.random.key(4)
one = kernel.make_augment_fn(cfg)(key, tt, y, hkl, cell)
shard = lambda a: jax.device_put(a, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data')))
two = kernel.make_augment_fn(cfg, mesh)(key, *map(shard, (tt, y, hkl, cell)))
print('max difference', float(np.abs(np.asarray(one) - np.asarray(two)).max()))
'''


@pytest.mark.slow
def test_lab_rendering_with_hkl_is_the_same_on_two_devices():
  """Under a mesh each device renders its share of the batch, hkl and cells included."""
  env = {**os.environ, 'XLA_FLAGS': '--xla_force_host_platform_device_count=2'}
  run = subprocess.run([sys.executable, '-c', _MESH_CHECK], capture_output=True, text=True, env=env)
  assert run.returncode == 0, run.stderr
  assert float(run.stdout.split()[-1]) < 1e-6
