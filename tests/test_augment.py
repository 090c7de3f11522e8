"""The augmentation kernel against its NumPy reference, and the properties a user relies on."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from difcon_jax.crystallography import pattern_grid as grid
from difcon_jax.augment import kernel
from difcon_jax.augment import params
from difcon_jax.augment import reference

GRID = grid.config()


def _peaks(rng, batch, p, real):
  tt = np.zeros((batch, p), np.float32)
  y = np.zeros((batch, p), np.float32)
  for b in range(batch):
    tt[b, :real] = np.sort(rng.uniform(3, 118, real))
    y[b, :real] = rng.uniform(0.01, 1, real)
    y[b, rng.integers(real)] = 1.0
  return tt, y


@functools.cache
def _draws_fn(dist, batch, p):
  cfg = params.config(dist)
  return jax.jit(lambda key: kernel.sample_draws(key, cfg, batch, p))


def _draws(dist, batch, p, seed=0):
  return _draws_fn(dist, batch, p)(jax.random.key(seed))


@functools.cache
def _render_fn(dist):
  """One compiled pattern renderer per distribution, shared by the tests (compiling dominates their time)."""
  cfg = params.config(dist)
  return jax.jit(jax.vmap(lambda t, yy, d: kernel.render(t, yy, d, cfg)))


@functools.cache
def _augment_fn(dist):
  return kernel.make_augment_fn(params.config(dist))


@pytest.mark.parametrize('dist', ['train', 'invariance_test', 'ideal'])
def test_whole_chain_matches_reference(dist):
  cfg = params.config(dist)
  tt, y = _peaks(np.random.default_rng(1), 3, 64, 40)
  draws = _draws(dist, 3, 64)
  out = _render_fn(dist)(tt, y, draws)
  for i in range(3):
    ref = reference.render(tt[i], y[i], {k: np.asarray(v[i]) for k, v in draws.items()}, cfg)
    np.testing.assert_allclose(np.asarray(out[i]), ref, atol=2e-6)


def test_profile_matches_reference_including_edges_and_asymmetry():
  rng = np.random.default_rng(2)
  index = np.array([-200, -100, 0, 5, 3000, 3001, 3001, 11990, 12100, 12300])  # outside, edges, shared bins
  y = rng.uniform(0.1, 1, len(index)).astype(np.float32)
  fwhm = rng.uniform(0.005, 0.05, len(index)).astype(np.float32)
  for eta, rho in ((0.0, 0.0), (1.0, 0.0), (0.3, 0.8), (0.7, -1.0)):
    out = jax.jit(lambda i, yy, f: kernel.render_profile(i, yy, f, eta, rho, GRID))(index, y, fwhm)
    ref = reference.render_profile(index, y, fwhm, eta, rho, GRID)
    np.testing.assert_allclose(np.asarray(out), ref, atol=2e-6, rtol=1e-4)


def test_far_series_is_the_closed_form():
  k, _ = kernel.window_bins(GRID)
  w = grid.bin_width(GRID)
  coef = kernel._far_coefficients(k, w)
  o = np.arange(kernel._NEAR_BINS + 1, k + 1)
  for h in (0.005, 0.02, 0.05):
    exact = 0.5 * h * (np.arctan(2 * (o + 0.5) * w / h) - np.arctan(2 * (o - 0.5) * w / h))
    series = sum(h ** (2 * n + 2) * coef[n] for n in range(4))
    np.testing.assert_allclose(series, exact, rtol=2e-6)


# The simple operations against their definitions (reference.py repeats their code line for line, so comparing
# with it would prove nothing).

def test_caglioti_fwhm_by_hand():
  """FWHM² = U tan²θ + V tanθ + W + p / cos²θ with U, V, W, p = 2e-4, -1e-4, 3e-4, 5e-5:
  2θ = 60°:  tanθ = 1/√3, cos²θ = 3/4: 2e-4/3 - 1e-4/√3 + 3e-4 + 5e-5·4/3 = 3.755983e-4 -> 0.01938036
  2θ = 90°:  tanθ = 1, cos²θ = 1/2: 2e-4 - 1e-4 + 3e-4 + 1e-4 = 5e-4 -> 0.02236068
  2θ = 120°: tanθ = √3, cos²θ = 1/4: 6e-4 - 1.732051e-4 + 3e-4 + 2e-4 = 9.267949e-4 -> 0.03044331
  and outside [0.005, 0.05]° clipped to it."""
  fwhm = kernel.caglioti_fwhm(jnp.array([60.0, 90.0, 120.0]), 2e-4, -1e-4, 3e-4, 5e-5)
  np.testing.assert_allclose(np.asarray(fwhm), [0.01938036, 0.02236068, 0.03044331], rtol=1e-5)
  np.testing.assert_allclose(np.asarray(kernel.caglioti_fwhm(jnp.array([90.0]), 1.0, 0.0, 0.0, 0.0)), [0.05])
  np.testing.assert_allclose(np.asarray(kernel.caglioti_fwhm(jnp.array([90.0]), 0.0, 0.0, 1e-6, 0.0)), [0.005])


def test_side_widths_by_hand():
  """H_low = H (1 + ρ/2), H_high = H (1 - ρ/2), each clipped to [0.005, 0.05]°."""
  low, high = kernel.side_widths(jnp.array([0.02, 0.02, 0.02, 0.045, 0.008]), jnp.array([0.0, 0.5, -1.0, 0.7, 1.0]))
  np.testing.assert_allclose(np.asarray(low), [0.02, 0.025, 0.01, 0.05, 0.012], rtol=1e-6)
  np.testing.assert_allclose(np.asarray(high), [0.02, 0.015, 0.03, 0.02925, 0.005], rtol=1e-6)


def test_crop_and_scale_peaks_by_hand():
  tt = jnp.array([5.0, 10.0, 50.0, 100.0, 110.0])
  kept = kernel.crop_peaks(tt, jnp.array([1.0, 2.0, 3.0, 4.0, 5.0]), 10.0, 100.0)
  np.testing.assert_array_equal(np.asarray(kept), [0.0, 2.0, 3.0, 4.0, 0.0])  # the bounds are kept
  scaled = kernel.scale_intensities(jnp.array([2.0, 4.0, 1.0]), jnp.array([0.5, -0.25, 0.0]))
  np.testing.assert_allclose(np.asarray(scaled), [3.0, 3.0, 1.0])


def test_crop_pattern_keeps_the_bins_between_the_limits():
  """Bin i of the 0-120° grid (12,000 bins of 0.01°) has its centre at 0.005 + 0.01 i: cropping to [20, 100]°
  keeps bins 2000 (20.005°) to 9999 (99.995°) unchanged and zeroes the others."""
  rng = np.random.default_rng(3)
  pattern = rng.uniform(0.1, 1, GRID.num_bins).astype(np.float32)
  out = np.asarray(kernel.crop_pattern(jnp.asarray(pattern), 20.0, 100.0, GRID))
  np.testing.assert_array_equal(np.flatnonzero(out), np.arange(2000, 10000))
  np.testing.assert_array_equal(out[2000:10000], pattern[2000:10000])


def test_background_matches_reference():
  rng = np.random.default_rng(3)
  pattern = rng.uniform(0, 1, GRID.num_bins).astype(np.float32)
  white = rng.uniform(-1, 1, GRID.num_bins).astype(np.float32)
  gauss = rng.normal(size=GRID.num_bins).astype(np.float32)
  for dilation in (1, 7, 20):
    out = kernel.add_background(pattern, white, dilation, 0.05, gauss, 0.02, 20)
    np.testing.assert_allclose(np.asarray(out), reference.add_background(pattern, white, dilation, 0.05, gauss, 0.02),
                               atol=1e-5)


def test_lone_peak_lands_in_its_bin_and_keeps_its_intensity():
  for eta, tol in ((0.0, 1e-5), (0.5, 0.01), (1.0, 0.01)):
    for fwhm in (0.005, 0.02, 0.05):
      out = kernel.render_profile(jnp.array([3000]), jnp.array([2.5]), jnp.array([fwhm]), eta, 0.3, GRID)
      assert int(jnp.argmax(out)) == 3000
      assert abs(float(out.sum()) - 2.5) < 2.5 * tol
      assert float(out.sum()) <= 2.5 * (1 + 1e-5)


def test_ideal_pattern_peak_positions():
  tt = np.zeros((1, 8), np.float32)
  y = np.zeros((1, 8), np.float32)
  tt[0, :3], y[0, :3] = [20.004, 45.0051, 101.2], [1.0, 0.5, 0.8]
  out = np.asarray(_augment_fn('ideal')(jax.random.key(0), tt, y))[0]
  for pos in (20.004, 45.0051, 101.2):
    b = int(pos / 0.01)
    assert np.argmax(out[b - 20:b + 21]) == 20, pos


def test_zero_shift_moves_the_pattern():
  tt = np.array([[30.0, 60.0]], np.float32)
  y = np.array([[1.0, 0.6]], np.float32)
  draws = _draws('ideal', 1, 2)
  base = _render_fn('ideal')(tt, y, draws)[0]
  shifted = _render_fn('ideal')(tt, y, {**draws, 'zero_shift': jnp.full((1,), 0.1, jnp.float32)})[0]
  assert int(jnp.argmax(shifted)) - int(jnp.argmax(base)) == 10


@pytest.mark.slow
def test_train_and_invariance_distributions_do_not_overlap():
  train, test = params.distribution('train'), params.distribution('invariance_test')
  assert set(train) == set(test)
  for name in train:
    (a0, a1), (b0, b1) = train[name], test[name]
    assert a1 <= b0 or b1 <= a0, name
    integer = isinstance(a0, int) and isinstance(b0, int)
    if integer:
      assert a1 < b0 or b1 < a0, name
  # And the draws respect their ranges.
  for name, dist in (('train', train), ('invariance_test', test)):
    d = _draws(name, 64, 4)
    for key in ('zero_shift', 'asymmetry'):
      lo, hi = dist[key]
      assert np.all((np.abs(d[key]) >= lo - 1e-7) & (np.abs(d[key]) <= hi + 1e-7)), (name, key)
    for key in ('eta', 'U', 'V', 'W', 'p', 'crop_low', 'crop_high', 'background'):
      lo, hi = dist[key]
      assert np.all((d[key] >= lo - 1e-9) & (d[key] <= hi + 1e-9)), (name, key)
    count = (np.asarray(d['impurity_intensity']) > 0).sum(1)
    assert count.min() >= dist['impurities'][0] and count.max() <= dist['impurities'][1]


def test_nuisance_set_is_unseen_except_for_the_crops():
  """invariance_nuisance: every nuisance range disjoint from train's, every data-deleting crop inside train's."""
  train, nuisance = params.distribution('train'), params.distribution('invariance_nuisance')
  assert set(nuisance) == set(train)
  assert set(params.DELETING) <= set(train)
  for name in train:
    (a0, a1), (b0, b1) = train[name], nuisance[name]
    if name in params.DELETING:
      assert a0 <= b0 <= b1 <= a1, name
    else:
      assert a1 <= b0 or b1 <= a0, name
  # Its patterns keep the low angles that invariance_test crops away (the crops are drawn in train's range).
  d = _draws('invariance_nuisance', 256, 5)
  assert float(np.min(d['crop_low'])) < 5.0 and float(np.max(d['crop_low'])) <= 24.0 + 1e-6


def test_caglioti_parameters_are_latin_hypercube():
  cfg = params.config('train')
  d = _draws('train', 64, 4)
  for name in 'UVWp':
    lo, hi = cfg.dist[name]
    strata = np.floor((np.asarray(d[name]) - lo) / (hi - lo) * 64).astype(int)
    assert sorted(strata) == list(range(64)), name


def test_randomness_is_explicit():
  tt, y = _peaks(np.random.default_rng(4), 2, 32, 20)
  f = _augment_fn('train')
  a, b, c = f(jax.random.key(7), tt, y), f(jax.random.key(7), tt, y), f(jax.random.key(8), tt, y)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert float(jnp.abs(a - c).max()) > 1e-3


def test_arctan_is_float32_accurate():
  x = np.concatenate([np.linspace(-3, 3, 60001), np.geomspace(1e-6, 1e6, 20001), -np.geomspace(1e-6, 1e6, 201),
                      [0.0, np.inf, -np.inf]]).astype(np.float32)
  np.testing.assert_allclose(np.asarray(jax.jit(kernel._atan)(x)), np.arctan(x.astype(np.float64)), atol=2e-7,
                             rtol=2e-7)


def test_per_bin_noise_statistics():
  white, gauss = (np.asarray(a) for a in kernel._per_bin_noise(jax.random.key(3), (64, 12000)))
  assert white.min() > -1 and white.max() < 1
  assert abs(white.mean()) < 0.005 and abs(white.var() - 1 / 3) < 0.005  # U(-1, 1)
  assert abs(gauss.mean()) < 0.005 and abs(gauss.std() - 1) < 0.005
  assert abs(np.mean(np.abs(gauss) > 1.96) - 0.05) < 0.003  # normal tails, not uniform ones
  corr = lambda a, b: abs(np.corrcoef(a.ravel(), b.ravel())[0, 1])
  assert corr(white[:, 1:], white[:, :-1]) < 0.005  # neighbouring bins
  assert corr(white[1:], white[:-1]) < 0.005  # neighbouring patterns
  assert corr(white, gauss) < 0.005  # the two halves of one draw
  again, _ = kernel._per_bin_noise(jax.random.key(3), (64, 12000))
  other, _ = kernel._per_bin_noise(jax.random.key(4), (64, 12000))
  np.testing.assert_array_equal(np.asarray(again), white)
  assert corr(np.asarray(other), white) < 0.005


@pytest.mark.parametrize('chunk', [1, 3, 7])
def test_chunked_rendering_is_the_vmapped_one(chunk):
  tt, y = _peaks(np.random.default_rng(5), 7, 64, 30)
  draws = _draws('train', 7, 64)
  whole = jax.jit(lambda t, yy, d: kernel.render_batch(t, yy, d, params.config('train', render_chunk=7)))
  chunked = jax.jit(lambda t, yy, d: kernel.render_batch(t, yy, d, params.config('train', render_chunk=chunk)))
  np.testing.assert_allclose(np.asarray(chunked(tt, y, draws)), np.asarray(whole(tt, y, draws)), atol=1e-6)


@pytest.mark.parametrize('dist', ['train', 'invariance_test', 'ideal', 'lab'])
def test_no_nan_for_degenerate_inputs(dist):
  p = 8
  tt = np.zeros((6, p), np.float32)
  y = np.zeros((6, p), np.float32)
  tt[1, 0], y[1, 0] = 50.0, 1.0  # one peak
  tt[2, :2], y[2, :2] = [-5.0, 130.0], [1.0, 1.0]  # peaks beyond the range
  tt[3, :2], y[3, :2] = [np.nan, 20.0], [1.0, np.inf]  # broken values
  tt[4, :] = 60.0  # positions but zero intensity: padding only
  tt[5, :2], y[5, :2] = [119.9, 0.01], [1.0, 1.0]  # at the ends of the grid
  # Each peak's hkl and the cells (lab's preferred orientation; the others do not use them), some degenerate:
  # zeros, NaN, and the last without a volume.
  hkl = np.zeros((6, p, 3), np.int16)
  hkl[:, 0] = [1, 0, 0]
  cell = np.float32([[4, 4, 4, 90, 90, 90], [0, 0, 0, 0, 0, 0], [np.nan] * 6, [1, 1, 1, 90, 90, 90],
                     [3, 4, 5, 60, 60, 60], [5, 5, 5, 120, 120, 120]])
  out = np.asarray(_augment_fn(dist)(jax.random.key(0), tt, y, hkl, cell))
  assert out.shape == (6, GRID.num_bins)
  assert np.all(np.isfinite(out))
  assert np.abs(out).max() <= 1.0 + 1e-6


def test_unknown_distribution():
  with pytest.raises(ValueError, match='unknown augmentation distribution'):
    params.distribution('nope')


def test_plot_command(tmp_path):
  import subprocess, sys
  out = tmp_path / 'fig.png'
  run = subprocess.run([sys.executable, '-m', 'difcon_jax.augment', '--plot', str(out), '--draws', '1'],
                       capture_output=True, text=True)
  assert run.returncode == 0, run.stderr
  assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


# Block sums (6 x 2,000 bins) and sums of squares of three patterns per distribution, recorded before the lab
# distribution and its per-distribution profile limits were added: train, invariance_test and ideal must render
# as they did.
_RECORDED = {
    'train': ([[0.6488, 5.5999, 2.7886, 14.7694, 4.593, -0.2324], [9.971, 7.459, 2.9957, 1.5621, 6.1733, 0.3478],
               [13.5357, 2.387, 6.4547, 5.4652, 13.3229, -0.2072]], [11.0218, 13.5191, 17.2424]),
    'invariance_test': ([[0.0, 5.4598, 7.2355, 24.681, -0.2112, 0.0], [0.0, 17.0068, 7.9417, 3.6535, 10.3972, 0.0],
                         [0.0, 3.8894, 13.3376, 11.3593, 7.543, 0.0]], [13.6709, 13.5995, 14.1036]),
    'ideal': ([[8.2866, 5.4165, 1.6999, 13.4147, 4.3441, 2.581], [17.4457, 10.7621, 4.871, 0.7096, 5.9347, 4.0588],
               [12.0198, 3.941, 6.8887, 5.2594, 11.8438, 4.808]], [14.0158, 18.1562, 17.3276]),
}


@pytest.mark.parametrize('dist', ['train', 'invariance_test', 'ideal'])
def test_table1_distributions_render_as_recorded(dist):
  rng = np.random.default_rng(11)
  tt = np.zeros((3, 48), np.float32)
  y = np.zeros((3, 48), np.float32)
  for b in range(3):
    tt[b, :30] = np.sort(rng.uniform(3, 118, 30))
    y[b, :30] = rng.uniform(0.01, 1, 30)
    y[b, 0] = 1.0
  out = np.asarray(_augment_fn(dist)(jax.random.key(2024), tt, y), np.float64)
  blocks, squares = _RECORDED[dist]
  np.testing.assert_allclose(out.reshape(3, 6, 2000).sum(-1), blocks, atol=2e-3)
  np.testing.assert_allclose((out ** 2).sum(1), squares, rtol=1e-4)
