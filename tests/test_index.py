"""The indexing baseline: figures of merit by hand, the cells of literature structures from their simulated
patterns, Kα2 lines, the command and the scoring of its sets."""

import csv
import functools
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from difcon_jax.crystallography import pattern_grid as grid_lib
from difcon_jax.augment import kernel
from difcon_jax.augment import params
from difcon_jax.augment import reference
from difcon_jax.crystallography import diffraction
from difcon_jax.crystallography import spacegroups
from difcon_jax.crystallography import structure
from difcon_jax.crystallography import wavelength as wavelength_lib
from difcon_jax import autoindex as indexing
from difcon_jax.autoindex import scoring as evaluation
from difcon_jax.autoindex import merit
from difcon_jax.autoindex import lines as peaks
from difcon_jax.autoindex import search

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STRUCTURES = os.path.join(ROOT, 'tests', 'data', 'structures')
GRID = grid_lib.config()
LAMBDA = grid_lib.WAVELENGTH
# One structure of each metric searched: cubic, tetragonal, R-centred trigonal on hexagonal axes, orthorhombic,
# monoclinic.
LITERATURE = ('nacl', 'rutile', 'corundum', 'forsterite_pbnm', 'baddeleyite')
MAX_PEAKS = 256


# ------------------------------------------------------------------------------------------- figures of merit

def test_de_wolff_and_smith_snyder_by_hand():
  # A made-up cubic case, a = 4 Å: lines N = 1, 2, 3, 4 observed with errors 1e-4, -1e-4, 2e-4, 0 in Q.
  q_calc = np.array([1, 2, 3, 4, 4, 5]) / 16.0  # 4/16 twice (two forms, one line), then a line beyond Q_N
  q_obs = np.array([[0.0626, 0.1249, 0.1877, 0.25]])
  err = q_obs - q_calc[None, :4]
  n_calc = merit.count_distinct(q_calc[None], q_obs[:, -1])
  assert n_calc.tolist() == [4]
  # ε̄ = (1 + 1 + 2 + 0) e-4 / 4 = 1e-4; M4 = Q4 / (2 ε̄ N_calc) = 0.25 / (2e-4 · 4) = 312.5
  np.testing.assert_allclose(merit.de_wolff(q_obs, err, np.ones((1, 4), bool), n_calc), [312.5])
  # An unindexed line leaves ε̄ over the other three: (1 + 1 + 0) e-4 / 3.
  indexed = np.array([[True, True, False, True]])
  np.testing.assert_allclose(merit.de_wolff(q_obs, err, indexed, n_calc), [0.25 / (2 * 2e-4 / 3 * 4)])
  # F_N = (1 / |Δ2θ|̄) N / N_poss: errors 0.01, 0.03 degrees over 2 lines, 5 possible lines: 50 · 2 / 5 = 20.
  f, mean = merit.smith_snyder(np.array([[0.01, -0.03]]), np.ones((1, 2), bool), np.array([5]))
  np.testing.assert_allclose(f, [20.0])
  np.testing.assert_allclose(mean, [0.02])


def test_refined_cubic_cell_scores_its_lines_by_hand():
  # Exact lines of a primitive cubic cell a = 4 Å, N = h² + k² + l² = 1, 2, 3, 4, 5, 6, 8 (no 7): N_calc = 7 up to
  # the last, ε̄ at the precision floor (0.001° at the last line).
  n = np.array([1, 2, 3, 4, 5, 6, 8])
  tt = merit.two_theta_of_q(n / 16.0, 1.5406)
  s = search.Settings()
  scored = search.refine('cubic', np.array([[1 / 16.0]]), tt, 1.5406, s)
  assert scored['n_possible'].tolist() == [7] and scored['unindexed'].tolist() == [0]
  expected = (8 / 16.0) / (2 * merit.dq_dtwo_theta(tt[-1], 1.5406) * s.precision * 7)
  np.testing.assert_allclose(scored['m'], [expected], rtol=1e-6)
  np.testing.assert_allclose(scored['params'], [[1 / 16.0]], rtol=1e-9)
  assert sorted(map(tuple, scored['hkl'][0])) == sorted([(1, 0, 0), (1, 1, 0), (1, 1, 1), (2, 0, 0), (2, 1, 0),
                                                           (2, 1, 1), (2, 2, 0)])


# ------------------------------------------------------------------------------- cells of literature structures

@functools.cache
def _structure(name):
  s, _ = structure.read_structure(os.path.join(STRUCTURES, f'{name}.cif'))
  return s


def _peak_arrays(name):
  """The structure's peak list at the training wavelength, padded to [1, MAX_PEAKS] (strongest = 1)."""
  p = diffraction.peak_list(_structure(name), LAMBDA, 0.5, 119.9)
  tt, y = diffraction.merge_coincident(p)
  order = np.argsort(-y)[:MAX_PEAKS]
  t2, y2 = np.zeros((1, MAX_PEAKS), np.float32), np.zeros((1, MAX_PEAKS), np.float32)
  t2[0, :len(order)], y2[0, :len(order)] = tt[order], y[order] / y.max()
  return t2, y2


@functools.cache
def _draws_fn(dist):
  cfg = params.config(dist)
  return cfg, jax.jit(lambda key: kernel.sample_draws(key, cfg, 1, MAX_PEAKS))


def _render(name, dist, **override):
  """One pattern on the model grid (the augmentation's NumPy twin) with draws of key 0, some overridden."""
  cfg, draws_fn = _draws_fn(dist)
  draws = {k: np.asarray(v) for k, v in draws_fn(jax.random.key(0)).items()}
  draws = kernel.override_draws(draws, **override)
  tt, y = _peak_arrays(name)
  return reference.render(tt[0], y[0], {k: v[0] for k, v in draws.items()}, cfg)


def _table1_worst(dist='train'):
  """Table 1 (train) at the ends of its ranges for what moves and blurs peaks: the largest zero shift, ±the largest
  jitter on every peak, the widest and most Lorentzian, most asymmetric profile, the most intensity noise,
  background and counting noise; the impurities as drawn. Nothing is cropped: every line stays measurable."""
  cfg, draws_fn = _draws_fn(dist)
  jitter = np.sign(np.asarray(draws_fn(jax.random.key(0))['jitter'])) * cfg.dist.jitter[1]
  d = cfg.dist
  return dict(zero_shift=d.zero_shift[1], jitter=jitter, U=d.U[1], V=d.V[1], W=d.W[1], p=d.p[1], eta=d.eta[1],
              asymmetry=d.asymmetry[1], intensity_noise=d.intensity_noise[1], background=d.background[1],
              counting_noise=d.counting_noise[1], peak_crop_low=0.0, peak_crop_high=180.0, crop_low=0.0,
              crop_high=180.0)


def _lines(name, mode):
  if mode == 'peak_list':
    tt, y = _peak_arrays(name)
    return peaks.from_peak_list(tt[0], y[0])[0]
  if mode == 'ideal':
    x = _render(name, 'ideal')
  else:
    x = _render(name, 'train', **_table1_worst())
  return peaks.pick(x, grid_lib.bin_centres(GRID))[0]


def _same_lattice(system, found, true):
  """Both cells brought to the search's setting (search.canonical); returns (edge differences Å, angle
  differences degrees)."""
  a = search.cells(system, search.canonical(system, np.array([search.params_of_cell(system, found)])))[0][0]
  b = search.cells(system, search.canonical(system, np.array([search.params_of_cell(system, true)])))[0][0]
  return np.abs(a[:3] - b[:3]), np.abs(a[3:] - b[3:])


@pytest.mark.parametrize('mode', ['peak_list', 'ideal', 'table1'])
@pytest.mark.parametrize('name', LITERATURE)
def test_recovers_the_cells_of_literature_structures(name, mode):
  s = _structure(name)
  result = search.index(_lines(name, mode), LAMBDA)
  best = result.best
  assert best is not None, name
  assert best.crystal_system == s.crystal_system, (best.cell, best.m)
  system = search.METRIC_OF[s.crystal_system]
  edges, angles = _same_lattice(system, best.cell, s.cell)
  assert edges.max() <= 0.01, (name, best.cell, s.cell)
  assert angles.max() <= 0.05, (name, best.cell, s.cell)
  assert best.m >= search.Settings().m20_min and best.unindexed <= search.Settings().max_unindexed


def test_a_dominant_zone_is_solved_first():
  # β-Ga2O3 (C2/m, b = 3.04 Å): among its first six lines one has k != 0, the others are h0l with l up to 4, out
  # of reach of four base lines of low index; the h0l zone is solved from zone lines and b* completed from one more.
  s = _structure('ga2o3')
  best = search.index(_lines('ga2o3', 'peak_list'), LAMBDA).best
  assert best is not None and best.crystal_system == 'monoclinic', best
  edges, angles = _same_lattice('monoclinic', best.cell, s.cell)
  assert edges.max() <= 0.01 and angles.max() <= 0.05, (best.cell, s.cell)


def test_hexagonal_metric_is_trigonal_only_when_r_centred():
  # ZnO (P6_3mc) and α-quartz (P3_221, a P trigonal group) are both called hexagonal; corundum (R-3c) trigonal.
  for name, label in (('zno', 'hexagonal'), ('quartz', 'hexagonal'), ('corundum', 'trigonal')):
    best = search.index(_lines(name, 'peak_list'), LAMBDA).best
    assert best.system == 'hexagonal' and best.crystal_system == label, name
  assert search.rhombohedral(np.array([[1, 0, 1], [0, 1, 2], [1, 1, 0], [0, 0, 3]]))
  assert not search.rhombohedral(np.array([[1, 0, 1], [0, 1, 2], [1, 0, 0], [0, 0, 3]]))  # 100 breaks R


def test_check_system_says_whether_a_system_indexes_the_lines():
  lines = _lines('nacl', 'peak_list')
  assert search.check_system(lines, 'cubic', LAMBDA).m >= 10
  assert search.check_system(lines, 'triclinic', LAMBDA) is None  # not searched
  rutile = _lines('rutile', 'peak_list')
  found = search.check_system(rutile, 'cubic', LAMBDA)
  assert found is None or not found.accepted(search.Settings())


def test_check_columns_for_a_pattern_on_the_grid():
  x = _render('nacl', 'ideal')
  yes = indexing.check_columns(x, GRID, 'cubic')
  assert yes['cell_check'] == 'yes' and float(yes['cell_check_m']) >= 10
  assert abs(float(yes['cell_check_cell'].split()[0]) - 5.6402) <= 0.01
  assert indexing.check_columns(_render('rutile', 'ideal'), GRID, 'cubic')['cell_check'] == 'no'
  assert indexing.check_columns(x, GRID, 'triclinic')['cell_check'] == 'not searched'


def test_predict_check_cells_adds_the_columns():
  from difcon_jax.inference import model as inference
  from difcon_jax import predict
  rows, _, _ = predict.predict_files([os.path.join(ROOT, 'examples', 'quartz_mo.xy')], inference.Model(None),
                                     wavelength_lib.ANODES['Mo'], progress=False, check_cells=True)
  row = rows[0]
  assert row['cell_check'] in ('yes', 'no', 'not searched')
  if row['crystal_system_1'] in ('trigonal', 'hexagonal'):  # quartz: a hexagonal cell indexes it
    assert row['cell_check'] == 'yes'
    a, _, c = (float(v) for v in row['cell_check_cell'].split()[:3])
    assert abs(a - 4.9134) <= 0.01 and abs(c - 5.4052) <= 0.01


# ----------------------------------------------------------------------------------------------- observed lines

def test_picked_peaks_sit_at_the_bragg_positions():
  x = _render('nacl', 'ideal')
  found, height = peaks.pick(x, grid_lib.bin_centres(GRID))
  tt, y = _peak_arrays('nacl')
  strong = tt[0][y[0] > 0.05]
  assert len(found) >= len(strong)
  # Every strong line is found within 0.005°, as the bins of 0.01° put them (kernel.bin_positions).
  assert np.max(np.min(np.abs(found[:, None] - strong[None, :]), 0)) <= 0.005 + 1e-6
  assert height.max() == pytest.approx(1.0)


def test_positions_are_refined_between_bins():
  centres = grid_lib.bin_centres(GRID)
  true = np.array([30.0037, 47.1062])
  x = sum(np.exp(-4 * np.log(2) * (centres - t) ** 2 / 0.05**2) for t in true)
  found, _ = peaks.pick(x, centres)
  np.testing.assert_allclose(found, true, atol=1e-3)  # the bins are 0.01° apart


def test_kalpha2_partners_are_removed_and_kalpha1_lines_moved():
  k1, k2 = wavelength_lib.KALPHA['Cu']
  d = np.array([3.0, 1.2])  # 29.8° (an unresolved line) and 80.0° (resolved: Kα1 and Kα2 apart by 0.24°)
  low = wavelength_lib.d_to_two_theta(d[0], LAMBDA)
  t1, t2 = wavelength_lib.d_to_two_theta(d[1], k1), wavelength_lib.d_to_two_theta(d[1], k2)
  tt, h = peaks.strip_kalpha2(np.array([low, t1, t2]), np.array([1.0, 0.8, 0.4]), LAMBDA, peaks.doublet(LAMBDA))
  np.testing.assert_allclose(tt, [low, wavelength_lib.d_to_two_theta(d[1], LAMBDA)], atol=1e-9)
  np.testing.assert_allclose(h, [1.0, 0.8])
  # A Kα1 beam (1.5406 Å) is no anode's weighted Kα: nothing is stripped.
  assert peaks.doublet(wavelength_lib.CU_KA1) is None
  assert peaks.doublet(wavelength_lib.ANODES['Mo']) == wavelength_lib.KALPHA['Mo']


def test_peak_list_lines_merge_what_one_measurement_cannot_resolve():
  tt, y = peaks.from_peak_list(np.array([30.0, 30.015, 0.0, 45.0, 60.0]), np.array([1.0, 0.5, 0.0, 0.75, 0.01]))
  # 30° and 30.015° are one line at their intensity-weighted position; 60° is below 1% of the strongest (1.5);
  # the pad (intensity 0) is dropped.
  np.testing.assert_allclose(tt, [30.005, 45.0])
  np.testing.assert_allclose(y, [1.0, 0.5])


# ----------------------------------------------------------------------------------------- command and scoring

def test_index_command(tmp_path):
  bad = tmp_path / 'broken.xy'
  bad.write_text('not a pattern\n')
  out = tmp_path / 'cells.csv'
  run = subprocess.run([sys.executable, '-m', 'difcon_jax.index', '--anode=Mo', f'--output={out}',
                        os.path.join(ROOT, 'examples', 'quartz_mo.xy'), str(bad)], capture_output=True, text=True,
                       cwd=ROOT)
  assert run.returncode == 1, run.stderr  # one file failed
  assert 'broken.xy' in run.stderr
  rows = {os.path.basename(r['file']): r for r in csv.DictReader(open(out))}
  quartz, broken = rows['quartz_mo.xy'], rows['broken.xy']
  assert broken['status'] == 'error' and 'broken.xy' in broken['error']
  assert quartz['crystal_system'] == 'hexagonal'  # P3_221: a P trigonal group, hexagonal by its metric
  assert abs(float(quartz['cell_1_a']) - 4.9134) <= 0.01 and abs(float(quartz['cell_1_c']) - 5.4052) <= 0.01


def test_measured_set_lines_come_through_the_loader(tmp_path):
  """A measured .npz read as evaluate reads it (io.measured, Cu Kα): the lines of its usable patterns at their
  Bragg positions, each with its name and true crystal system; an unusable pattern only among the rows."""
  tt = np.arange(5, 90, 0.01)
  ys, lines = [], []
  for name in ('nacl', 'rutile'):
    s, _ = structure.read_structure(os.path.join(STRUCTURES, f'{name}.cif'))
    p = diffraction.peak_list(s, LAMBDA, 5, 90)
    ys.append(100 * sum(i * np.exp(-4 * np.log(2) * (tt - t) ** 2 / 0.08**2) for t, i in zip(p.two_theta, p.intensity))
              + 1.0)
    lines.append(np.asarray(p.two_theta)[np.asarray(p.intensity) > 0.05 * np.max(p.intensity)])
  path = tmp_path / 'set.npz'
  np.savez(path, two_theta=tt, intensity=np.stack([ys[0], np.full_like(tt, np.nan), ys[1]]),
           space_group=np.array([225, 14, 136]), source_id=np.array(['a', 'b', 'c']))
  items, bad = evaluation.measured_items(str(path))
  assert [i.name for i in items] == [f'{path}[a]', f'{path}[c]']
  assert [spacegroups.CRYSTAL_SYSTEMS[i.crystal_system] for i in items] == ['cubic', 'tetragonal']
  assert [r['file'] for r in bad] == [f'{path}[b]'] and 'NaN' in bad[0]['error']
  for item, strong in zip(items, lines):  # every strong line found within 0.02°
    assert np.max(np.min(np.abs(item.two_theta[:, None] - strong[None, :]), 0)) <= 0.02, item.name


def test_index_command_refuses_bad_flags(tmp_path):
  run = subprocess.run([sys.executable, '-m', 'difcon_jax.index', '--anode=Xx', '--max_unindexed=-1',
                        str(tmp_path / 'x.xy')], capture_output=True, text=True, cwd=ROOT)
  assert run.returncode == 2
  assert '--anode=Xx' in run.stderr and '--max_unindexed=-1' in run.stderr


def test_scoring_counts_no_solution_wrong_and_merges_trigonal_on_request():
  cs = spacegroups.CRYSTAL_SYSTEMS.index
  out = {'predicted': np.array([cs('cubic'), evaluation.NO_SOLUTION, cs('hexagonal'), cs('monoclinic')]),
         'truth': np.array([cs('cubic'), cs('cubic'), cs('trigonal'), cs('monoclinic')]),
         'seconds': np.array([0.1, 0.2, 0.3, 0.4]), 'volume_ratio': np.array([1.0, np.nan, 1.0, 2.0]),
         'system_seconds': {'cubic': [0.1], 'monoclinic': [0.3]}}
  m = evaluation.summary(out)
  assert m['crystal_system_top1'] == 0.5 and m['no_solution'] == 0.25
  assert m['crystal_system_top1_trigonal_hexagonal_merged'] == 0.75
  assert m['true_cell_volume_among_correct'] == 0.5  # the monoclinic answer has a supercell
  assert m['crystal_system_confusion'][cs('cubic')][evaluation.NO_SOLUTION] == 1
  assert m['seconds_by_system_searched']['monoclinic']['mean'] == pytest.approx(0.3)
