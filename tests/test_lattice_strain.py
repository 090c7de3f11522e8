"""Lattice strain (augment/kernel.strain_positions): positions against Bragg's law worked by hand, the symmetry the
strain keeps, its draws, and the lab chain using it."""

import math

import jax
import numpy as np
import pytest

from difcon_jax.augment import kernel
from difcon_jax.augment import params
from difcon_jax.augment import reference

WAVELENGTH = 1.5418


def bragg(d):
  return 2 * math.degrees(math.asin(WAVELENGTH / (2 * d)))


def d_cubic(a, h, k, l):
  return a / math.sqrt(h * h + k * k + l * l)


def d_monoclinic(a, b, c, beta, h, k, l):
  """1/d² = (h²/a² + l²/c² - 2hl cos β / (ac)) / sin²β + k²/b² (International Tables A, unique axis b)."""
  be = math.radians(beta)
  inv = (h * h / a**2 + l * l / c**2 - 2 * h * l * math.cos(be) / (a * c)) / math.sin(be) ** 2 + k * k / b**2
  return 1 / math.sqrt(inv)


def strain(two_theta, hkl, cell, iso, free, intensity=None):
  y = np.ones(len(two_theta), np.float32) if intensity is None else np.float32(intensity)
  tt, y = kernel.strain_positions(np.float32(two_theta), y, np.int16(hkl), np.float32(cell), np.float32(iso),
                                  np.float32(free))
  return np.asarray(tt, np.float64), np.asarray(y)


FREE = [0.005, 0.004, -0.006, 0.003, 0.008, -0.002]


def test_cubic_cell_only_scales():
  hkl = [[1, 1, 1], [2, 0, 0], [3, 1, 1]]
  before = [bragg(d_cubic(4.0, *h)) for h in hkl]
  tt, _ = strain(before, hkl, [4, 4, 4, 90, 90, 90], 0.01, FREE)  # the free changes do not apply
  np.testing.assert_allclose(tt, [bragg(d_cubic(4.04, *h)) for h in hkl], atol=2e-4)
  assert np.all(tt < before)  # a larger cell: every line to lower angle


def test_monoclinic_cell_changes_b_c_and_beta_by_hand():
  a, b, c, beta = 5.0, 6.0, 7.0, 100.0
  hkl = [[1, 0, 1], [0, 1, 0], [1, 1, -2], [2, 0, 0], [0, 0, 3]]
  before = [bragg(d_monoclinic(a, b, c, beta, *h)) for h in hkl]
  tt, _ = strain(before, hkl, [a, b, c, 90, beta, 90], -0.01, FREE)
  # a: isotropic only; b, c: isotropic and their own; β: its own; α = γ = 90° stay.
  a1, b1, c1, beta1 = a * 0.99, b * 0.99 * 1.004, c * 0.99 * 0.994, beta * 1.008
  np.testing.assert_allclose(tt, [bragg(d_monoclinic(a1, b1, c1, beta1, *h)) for h in hkl], atol=2e-4)
  cell = np.asarray(kernel.strain_cell(np.float32([a, b, c, 90, beta, 90]), np.float32(-0.01), np.float32(FREE)))
  np.testing.assert_allclose(cell, [a1, b1, c1, 90, beta1, 90], rtol=1e-6)


@pytest.mark.parametrize('cell, expected', [
    ([4, 4, 6, 90, 90, 90], [4.04, 4.04, 6.06 * 0.994, 90, 90, 90]),  # tetragonal: a = b, c/a free
    ([3, 3, 5, 90, 90, 120], [3.03, 3.03, 5.05 * 0.994, 90, 90, 120]),  # hexagonal: a = b, γ = 120° stays
    ([5, 5, 5, 80, 80, 80], [5.05, 5.05, 5.05, 80.24, 80.24, 80.24]),  # rhombohedral axes: one angle
    ([4, 5, 6, 90, 90, 90], [4.04, 5.05 * 1.004, 6.06 * 0.994, 90, 90, 90]),  # orthorhombic
    ([4, 5, 6, 80, 95, 100], [4.04, 5.05 * 1.004, 6.06 * 0.994, 80.24, 95 * 1.008, 100 * 0.998]),  # triclinic
])
def test_strain_keeps_the_lattice_symmetry(cell, expected):
  out = np.asarray(kernel.strain_cell(np.float32(cell), np.float32(0.01), np.float32(FREE)))
  np.testing.assert_allclose(out, expected, rtol=1e-6)
  np.testing.assert_allclose(reference.strain_cell(cell, 0.01, FREE), expected, rtol=1e-9)


def test_padding_stays_and_a_line_pushed_past_180_degrees_leaves():
  d = d_cubic(4.0, 4, 2, 2) * 1.0  # 2θ about 145° at Cu Kα
  tt, y = strain([bragg(d), 0.0], [[4, 2, 2], [0, 0, 0]], [4, 4, 4, 90, 90, 90], 0.0, FREE)
  assert tt[1] == 0.0 and y[1] == 1.0  # padding (hkl 0) untouched
  tt, y = strain([bragg(d)], [[4, 2, 2]], [4, 4, 4, 90, 90, 90], -0.2, FREE)  # d 20% shorter: sin θ > 1
  assert y[0] == 0.0


@pytest.mark.slow
def test_lab_draws_and_the_other_distributions():
  cfg = params.config('lab')
  draws = jax.jit(lambda k: kernel.sample_draws(k, cfg, 4096, 4))(jax.random.key(3))
  iso, free = np.asarray(draws['lattice_strain']), np.asarray(draws['lattice_strain_free'])
  assert iso.shape == (4096,) and free.shape == (4096, 6)
  assert np.abs(iso).max() <= 0.02 and np.abs(free).max() <= 0.01
  assert (iso < -0.015).any() and (iso > 0.015).any() and (free < -0.008).any() and (free > 0.008).any()
  # A config quantity like the others: overridden, off, or refused out of its domain.
  off = params.config('lab', overrides=dict(lattice_strain=(0.0, 0.0), lattice_strain_free=(0.0, 0.0)))
  off_draws = jax.jit(lambda k: kernel.sample_draws(k, off, 16, 4))(jax.random.key(3))
  assert not np.any(np.asarray(off_draws['lattice_strain'])) and not np.any(off_draws['lattice_strain_free'])
  assert 'lattice_strain' in params.override_problems('train', dict(lattice_strain=(0.0, 0.01)))
  assert 'lattice_strain' in params.override_problems('lab', dict(lattice_strain=(0.0, 0.9)))
  assert 'lattice_strain' not in kernel.sample_draws(jax.random.key(0), params.config('train'), 2, 4)


@pytest.mark.slow
def test_rendered_line_moves_where_the_strained_cell_puts_it():
  """A lone cubic 200 line in an otherwise quiet lab pattern: its peak bin is where Bragg's law puts 200 of the
  strained cell, not of the corpus cell."""
  cfg = params.config('lab')
  tt0 = bragg(d_cubic(4.0, 2, 0, 0))
  two_theta = np.zeros((1, 4), np.float32)
  intensity = np.zeros((1, 4), np.float32)
  hkl = np.zeros((1, 4, 3), np.int16)
  two_theta[0, 0], intensity[0, 0], hkl[0, 0] = tt0, 1.0, [2, 0, 0]
  cell = np.float32([[4, 4, 4, 90, 90, 90]])
  draws = jax.tree.map(np.array, kernel.sample_draws(jax.random.key(0), cfg, 1, 4))
  draws = kernel.override_draws(draws, **{**kernel.LAB_EFFECTS_OFF, 'lattice_strain': 0.015})
  pattern = np.asarray(jax.vmap(lambda t, y, d, h, c: kernel.render(t, y, d, cfg, h, c))(
      two_theta, intensity, draws, hkl, cell))[0]
  expected = bragg(d_cubic(4.06, 2, 0, 0))
  centre = (np.argmax(pattern) + 0.5) * 0.01
  assert abs(centre - expected) <= 0.01 and abs(tt0 - expected) > 0.3
