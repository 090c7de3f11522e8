"""The model's grid: 2θ as the paper bins it, or bins uniform in ln d resampled inside the network."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from difcon_jax.crystallography import pattern_grid as grid_lib
from difcon_jax import train
from difcon_jax.training import config_checks
import train_helpers

GRID = grid_lib.config(6000, 0.0, 120.0)
FCC = [(1, 1, 1), (2, 0, 0), (2, 2, 0), (3, 1, 1), (2, 2, 2), (4, 0, 0), (3, 3, 1), (4, 2, 0), (4, 2, 2)]


def _cubic_pattern(a: float, fwhm: float = 0.06) -> np.ndarray:
  """A face-centred cubic pattern of cell a (Å) at Cu Kα on GRID: Gaussian peaks of one width in 2θ."""
  x = grid_lib.bin_centres(GRID)
  pattern = np.zeros_like(x)
  for h, k, l in FCC:
    s = grid_lib.WAVELENGTH * np.sqrt(h * h + k * k + l * l) / (2 * a)
    if s < np.sin(np.radians(GRID.two_theta_max / 2)):
      pattern += np.exp(-4 * np.log(2) * ((x - 2 * np.degrees(np.arcsin(s))) / fwhm) ** 2)
  return pattern


def test_a_change_of_cell_scale_is_a_shift_on_the_log_d_grid():
  """The reason for the option: on bins uniform in ln d, the pattern of a cell scaled by r is the pattern of the
  cell shifted by ln(r) / (bin width in ln d) bins. On the 2θ grid it is not a shift (peaks spread apart)."""
  a, r = 4.05, 1.06
  edges = grid_lib.log_d_edges(GRID)
  per_bin = (np.log(np.sin(np.radians(edges[-1] / 2))) - np.log(np.sin(np.radians(edges[0] / 2)))) / GRID.num_bins
  shift = np.log(r) / per_bin  # bins toward lower angles
  small, large = (np.asarray(grid_lib.to_model_grid(jnp.asarray(_cubic_pattern(c)), GRID, 'log_d'))
                  for c in (a, a * r))

  def best_shift(p, q, span):
    lags = np.arange(-span, span + 1)
    scores = [np.dot(np.roll(p, -lag), q) / np.sqrt(np.dot(p, p) * np.dot(q, q)) for lag in lags]
    return lags[int(np.argmax(scores))], max(scores)

  lag, score = best_shift(small, large, int(2 * shift))
  assert abs(lag - shift) <= 1 and score > 0.95, (lag, shift, score)
  # On the 2θ grid no single shift lines the two patterns up.
  _, score_2theta = best_shift(_cubic_pattern(a), _cubic_pattern(a * r), 800)
  assert score_2theta < 0.5


def test_log_d_bins_hold_the_mean_of_the_pattern_over_them():
  """Each log-d bin holds the mean of the piecewise-constant 2θ pattern between its edges, checked against a
  brute-force reference: every 2θ bin cut into 512 sub-bins, each sub-bin counted in the log-d bin its centre is in."""
  grid = grid_lib.config(1500, 0.0, 100.0)
  pattern = np.random.default_rng(0).random(grid.num_bins)
  got = np.asarray(grid_lib.to_model_grid(jnp.asarray(pattern, jnp.float32), grid, 'log_d', start=8.0))
  sub = 512
  fine_x = grid.two_theta_min + (np.arange(grid.num_bins * sub) + 0.5) * grid_lib.bin_width(grid) / sub
  which = np.searchsorted(grid_lib.log_d_edges(grid, 8.0), fine_x) - 1
  inside = (which >= 0) & (which < grid.num_bins)
  sums = np.bincount(which[inside], weights=np.repeat(pattern, sub)[inside], minlength=grid.num_bins)
  want = sums / np.bincount(which[inside], minlength=grid.num_bins)
  want /= want.max()
  assert got.shape == (grid.num_bins,)
  np.testing.assert_allclose(got, want, atol=0.02)  # sub-bin counting is exact to 1/512 of a 2θ bin per edge
  np.testing.assert_allclose(np.asarray(grid_lib.to_model_grid(jnp.ones(grid.num_bins), grid, 'log_d')), 1.0,
                             rtol=1e-5)  # a flat pattern stays flat


def test_the_log_d_grid_spans_the_asked_range():
  edges = grid_lib.log_d_edges(GRID, 5.0)
  assert edges[0] == pytest.approx(5.0) and edges[-1] == pytest.approx(120.0) and np.all(np.diff(edges) > 0)
  d = grid_lib.WAVELENGTH / (2 * np.sin(np.radians(edges / 2)))
  np.testing.assert_allclose(np.diff(np.log(d)), np.log(d[1] / d[0]), rtol=1e-6)
  with pytest.raises(ValueError, match='log_d_from'):
    grid_lib.log_d_edges(GRID, 0.0)
  with pytest.raises(ValueError, match='unknown grid'):
    grid_lib.to_model_grid(jnp.ones(GRID.num_bins), GRID, 'q')
  x = jnp.arange(GRID.num_bins, dtype=jnp.float32)
  assert grid_lib.to_model_grid(x, GRID, 'two_theta') is x


def test_the_network_reads_the_grid_of_its_config(tiny_corpus):
  """config.grid reaches the network: the same weights give other outputs on the log-d grid, and the log-d
  network's outputs are those of the 2θ network given the resampled pattern."""
  config = train_helpers.tiny_config(tiny_corpus)
  on_2theta = train.create_model(config)
  config.grid = 'log_d'
  on_log_d = train.create_model(config)
  assert on_log_d.input_grid == 'log_d' and on_2theta.input_grid == 'two_theta'
  x = jnp.asarray(np.stack([_cubic_pattern(4.05)[::3], _cubic_pattern(5.64)[::3]]), jnp.float32)
  variables = on_2theta.init(jax.random.key(0), x)
  a = on_2theta.apply(variables, x)[1]['embedding']
  b = on_log_d.apply(variables, x)[1]['embedding']
  c = on_2theta.apply(variables, grid_lib.to_model_grid(x, grid_lib.from_config(config), 'log_d'))[1]['embedding']
  assert not np.allclose(a, b, atol=1e-3)
  np.testing.assert_allclose(b, c, rtol=1e-5, atol=1e-5)


def test_bad_grid_fields_are_refused(tiny_corpus):
  config = train_helpers.tiny_config(tiny_corpus)
  config.grid = 'q'
  assert any(e.startswith('config.grid=') for e in config_checks.config_errors(config))
  config.grid = 'log_d'
  config.log_d_from = 0.0
  assert any(e.startswith('config.log_d_from=') for e in config_checks.config_errors(config))
  config.log_d_from = 5.0
  assert not config_checks.config_errors(config)


def test_a_run_on_one_grid_is_not_resumed_on_another(tiny_workdir, tmp_path):
  """Same shapes, another meaning: resuming a 2θ run with grid=log_d is refused, and nothing is changed."""
  work = str(tmp_path / 'run')
  shutil.copytree(tiny_workdir, work)
  before = open(os.path.join(work, 'config.json')).read()
  config = train_helpers.tiny_config(json.load(open(os.path.join(work, 'config.json')))['corpus'], steps=4)
  config.grid = 'log_d'
  with pytest.raises(config_checks.ConfigError, match='another grid'):
    train.train_and_evaluate(config, work)
  assert open(os.path.join(work, 'config.json')).read() == before
  assert sorted(os.listdir(os.path.join(work, 'checkpoints'))) == ['2']
