"""Prediction on measured patterns: preprocessing, consistency, bad files, the command."""

import csv
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from difcon_jax.crystallography import pattern_grid as grid
from difcon_jax.inference import model as inference
from difcon_jax.crystallography import diffraction
from difcon_jax.crystallography import spacegroups
from difcon_jax.crystallography import structure
from difcon_jax.io import measured
from difcon_jax.io import patterns
from difcon_jax.models import heads
from difcon_jax.io import cli
from difcon_jax.io import outputs

from conftest import STRUCTURES
import input_helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, 'examples', 'quartz_mo.xy')
GRID = grid.config()


def _simulated(wavelength, lo, hi, path):
  s, _ = structure.read_structure(os.path.join(ROOT, 'tests', 'data', 'structures', 'quartz.cif'))
  p = diffraction.peak_list(s, wavelength, lo, hi)
  tt = np.arange(lo, hi, 0.005)
  y = sum(i * np.exp(-4 * np.log(2) * (tt - t) ** 2 / 0.03**2) for t, i in zip(p.two_theta, p.intensity))
  np.savetxt(path, np.stack([tt, y + 1e-3 * y.max()], 1), header=f'wavelength {wavelength}')
  return patterns.read_pattern(str(path))


def test_mo_pattern_lands_on_the_cu_pattern(tmp_path):
  mo = measured.to_grid(_simulated(0.7107, 3, 50, tmp_path / 'mo.xy'), GRID, None)
  cu = measured.to_grid(_simulated(1.5418, 6, 119, tmp_path / 'cu.xy'), GRID, None)
  assert not mo.warnings
  from scipy.signal import find_peaks

  def top_peaks(v):
    found, props = find_peaks(v, prominence=0.02)
    return found[np.argsort(props['prominences'])[-6:]]

  top_cu = top_peaks(cu.values)
  all_mo = find_peaks(mo.values, prominence=0.005)[0]
  assert len(top_cu) == 6
  for b in top_cu:  # each strong Cu peak has a Mo-converted peak within 0.02°
    assert np.min(np.abs(all_mo - b)) <= 2, (b * 0.01, sorted(all_mo * 0.01))
  # Same shape where both exist (apart from the peak widths, which scale with the conversion).
  both = (mo.values > 0) & (cu.values > 0)
  assert np.corrcoef(mo.values[both], cu.values[both])[0, 1] > 0.6


def test_truncation_is_reported(tmp_path):
  # Ag Kα 0.5609 Å up to 60°: d down to 0.56 Å, which Cu Kα cannot reach.
  g = measured.to_grid(_simulated(0.5609, 3, 60, tmp_path / 'ag.xy'), GRID, None)
  assert any('truncated' in w for w in g.warnings)


def test_outside_the_grid(tmp_path):
  np.savetxt(tmp_path / 'far.xy', np.stack([np.linspace(150, 170, 50), 1.0 + np.arange(50) % 7], 1))
  with pytest.raises(patterns.PatternError, match='outside the model grid'):
    measured.to_grid(patterns.read_pattern(str(tmp_path / 'far.xy')), GRID, 1.5418)


def test_measured_load_gives_the_grid_or_an_error_record(tmp_path):
  """The one loader of predict, evaluate, index and HAND: a file becomes its pattern on the grid (what to_grid makes
  of it, at the wavelength it states unless one is given), or a record naming the file and the problem; a file
  read but off the grid keeps what was read, for the report's plot."""
  path = str(tmp_path / 'mo.xy')
  _simulated(0.7107, 3, 50, tmp_path / 'mo.xy')
  good = measured.load(path, GRID, None)
  direct = measured.to_grid(patterns.read_pattern(path), GRID, None)
  assert good.ok and good.error == '' and good.name == path and good.wavelength == 0.7107
  np.testing.assert_array_equal(good.values, direct.values)
  assert list(good.warnings) == direct.warnings and good.pattern.path == path
  assert measured.load(path, GRID, 0.5609).wavelength == 0.5609  # a given wavelength before the file's
  (tmp_path / 'bad.xy').write_text('10 5\n11 6\n12 seven\n')
  np.savetxt(tmp_path / 'far.xy', np.stack([np.linspace(150, 170, 50), 1.0 + np.arange(50) % 7], 1))
  for name, reason, read in (('bad.xy', 'not numbers', False), ('far.xy', 'outside the model grid', True),
                             ('none.xy', 'no such file', False)):
    m = measured.load(str(tmp_path / name), GRID, None)
    assert not m.ok and m.values is None and m.warnings == () and m.name == str(tmp_path / name)
    assert m.error.startswith(f'{tmp_path / name}: ') and reason in m.error and '\n' not in m.error
    assert (m.pattern is not None) == read, name


def test_measured_items_of_a_labelled_set(tmp_path):
  """An item of a labelled set loads at the wavelength labels.csv gives (before the file's) with its space group;
  an item that cannot be used is its error record; an .npz is read as Cu Kα, without a doubt to warn about."""
  _simulated(0.7107, 3, 50, tmp_path / 'mo.xy')  # the header says 0.7107 Å
  (tmp_path / 'labels.csv').write_text('file,space_group,wavelength\nmo.xy,154,0.5609\nmo.xy,154,\nmo.xy,0,\n')
  items = measured.read_set(str(tmp_path), str(tmp_path / 'labels.csv'))
  given, own, bad = [measured.load_item(item, GRID) for item in items]
  assert given.ok and given.wavelength == 0.5609 and given.space_group == 154
  np.testing.assert_array_equal(given.values, measured.load(str(tmp_path / 'mo.xy'), GRID, 0.5609).values)
  assert own.ok and own.wavelength == 0.7107
  assert not bad.ok and bad.values is None and bad.error.startswith(str(tmp_path / 'mo.xy'))
  assert "space group '0'" in bad.error
  cu = _simulated(1.5418, 6, 119, tmp_path / 'cu.xy')
  np.savez(tmp_path / 'set.npz', two_theta=cu.two_theta, intensity=cu.intensity[None], space_group=np.array([154]))
  [m] = [measured.load_item(item, GRID) for item in measured.read_set(str(tmp_path / 'set.npz'), None)]
  assert m.ok and m.wavelength == 1.5418 and m.warnings == () and m.name == f'{tmp_path / "set.npz"}[0]'


@pytest.fixture
def trained(tiny_workdir):
  return tiny_workdir


def test_predict_command(trained, tmp_path):
  bad = tmp_path / 'bad.xy'
  bad.write_text('10 5\n11 6\n12 seven\n')
  out = tmp_path / 'p.csv'
  # The spelling of the documentation: --input PATH..., --top-k N.
  run = subprocess.run([sys.executable, '-m', 'difcon_jax.predict', f'--checkpoint={trained}', '--anode=Mo',
                        '--output', str(out), '--top-k', '3', f'--embeddings={tmp_path / "e.npy"}', '--input',
                        EXAMPLE, str(bad)], capture_output=True, text=True, cwd=ROOT)
  assert run.returncode == 1  # one file failed
  assert 'Traceback' not in run.stderr
  # The error is said once: in the file's table (two files: tables), not again on stderr.
  assert (run.stdout + run.stderr).count('not numbers') == 1 and 'bad.xy' in run.stdout
  rows = list(csv.DictReader(open(out)))
  assert [r['file'] for r in rows] == sorted([EXAMPLE, str(bad)])
  good = next(r for r in rows if r['status'] == 'ok')
  bad_row = next(r for r in rows if r['status'] == 'error')
  assert 'not numbers' in bad_row['error']
  cs = spacegroups.CRYSTAL_SYSTEMS.index(good['crystal_system_1'])
  assert spacegroups.crystal_system_index(int(good['space_group_1'])) == cs
  assert good['space_group_1_symbol'] == spacegroups.symbol(int(good['space_group_1']))
  probs = [float(good[f'crystal_system_{i}_p']) for i in (1, 2, 3)]
  assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
  assert np.load(tmp_path / 'e.npy').shape[0] == 1


def test_ranked_space_groups_follow_the_predicted_system(trained):
  model = inference.Model(trained)
  rng = np.random.default_rng(0)
  logits, _ = model(rng.uniform(0, 1, (6, model.config.num_bins)).astype(np.float32))
  top = jax.device_get(heads.rank(logits, 5))
  cs = np.asarray(top['crystal_system'][0][:, 0])
  sg = top['space_group'][0]
  for i in range(6):
    n_in_system = len(spacegroups.space_groups_of_system(int(cs[i])))
    for r in range(min(5, n_in_system)):
      assert spacegroups.crystal_system_index(int(sg[i, r])) == cs[i]


@pytest.mark.slow
def test_prediction_on_eight_devices_matches_one(trained, tmp_path):
  code = ('import sys, numpy as np; from difcon_jax.inference import model; m = model.Model(sys.argv[1]); '
          'x = np.random.default_rng(0).uniform(0, 1, (16, m.config.num_bins)).astype(np.float32); '
          'import jax; np.save(sys.argv[2], np.asarray(m(x)[0]["crystal_system"])); print(jax.device_count())')
  outs = {}
  for n in (1, 8):
    env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={n}', JAX_PLATFORMS='cpu')
    run = subprocess.run([sys.executable, '-c', code, trained, str(tmp_path / f'{n}.npy')], env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip().endswith(str(n)), run.stderr[-1500:]
    outs[n] = np.load(tmp_path / f'{n}.npy')
  np.testing.assert_allclose(outs[8], outs[1], rtol=1e-4, atol=1e-5)


def test_prediction_flags_and_outputs_are_checked_first(tmp_path):
  rng = np.random.default_rng(13)
  for top_k in (0, 231, int(rng.integers(232, 10_000))):
    out = input_helpers.refused(input_helpers.run('-m', 'difcon_jax.predict', '--checkpoint=nowhere', f'--top_k={top_k}', '--batch_size=0',
                           '--wavelength=-1', f'--output={tmp_path}', tmp_path / 'x.xy'))
    for flag in ('top_k', 'batch_size', 'wavelength', 'output'):
      assert f'--{flag}=' in out
  out = input_helpers.refused(input_helpers.run('-m', 'difcon_jax.evaluate', '--checkpoint=nowhere', '--batch_size=0',
                         '--set=experimental', '--figure_structures=-2'))
  for flag in ('checkpoint', 'batch_size', 'data', 'figure_structures'):
    assert f'--{flag}=' in out


def test_predict_never_overwrites_its_input(tmp_path):
  rng = np.random.default_rng(0)
  data = tmp_path / 'q.xy'
  data.write_text(input_helpers.pattern_text(rng)[2])
  before = data.read_bytes()
  for extra in ([f'--output={data}'], [f'--output={tmp_path / "p.csv"}', f'--embeddings={data}'],
                [f'--output={tmp_path / "x"}', f'--embeddings={tmp_path / "x"}']):
    run = input_helpers.run('-m', 'difcon_jax.predict', f'--input={data}', *extra)
    lines = input_helpers.error_lines(run)
    assert len(lines) == 1 and ('input' in lines[0] or 'same file' in lines[0]), run.stderr[-1000:]
    assert data.read_bytes() == before and not (tmp_path / 'x').exists()


def test_anode_and_wavelength_together_are_refused():
  c = cli.Checks()
  assert c.wavelength(0.7107, 'Cu') is None and len(c.errors) == 1 and 'not both' in c.errors[0]
  c = cli.Checks()
  assert c.wavelength(1.5406, 'Mo', wavelength_given=False) == pytest.approx(0.7107) and not c.errors
  run = input_helpers.run('-m', 'difcon_jax.peaks', STRUCTURES / 'nacl.cif', '--anode=Cu', '--wavelength=0.7107')
  assert len(input_helpers.error_lines(run)) == 1 and 'not both' in run.stderr


def test_a_file_name_that_is_not_utf8_keeps_every_row(tmp_path):
  good = tmp_path / 'good.xy'
  good.write_text(input_helpers.pattern_lines())
  bad = os.path.join(os.fsencode(tmp_path), b'bad\xff.xy')
  with open(bad, 'w') as f:
    f.write(input_helpers.pattern_lines())
  from difcon_jax.crystallography import pattern_grid as grid_lib
  names = [str(good), os.fsdecode(bad)]
  records = [measured.load(n, grid_lib.config(2000), None) for n in names]
  assert all(r.ok for r in records)
  rows = [{'file': r.name, 'status': 'ok', 'warning': '; '.join(r.warnings)} for r in records]
  outputs.write_rows(tmp_path / 'p.csv', rows)
  text = (tmp_path / 'p.csv').read_text(encoding='utf-8')
  assert 'good.xy' in text and 'bad\\xff.xy' in text


def test_a_flag_against_the_files_wavelength_is_said_naming_both(tmp_path):
  from difcon_jax.crystallography import pattern_grid as grid_lib
  path = tmp_path / 'mo.xy'
  path.write_text('# Wavelength: 0.7107\n' + input_helpers.pattern_lines(tt=np.linspace(5, 40, 400)))
  m = measured.load(str(path), grid_lib.config(2000), 1.5418)
  assert m.ok and m.file_wavelength == pytest.approx(0.7107) and m.wavelength == pytest.approx(1.5418)
  assert '0.7107' in m.wavelength_conflict and '1.5418' in m.wavelength_conflict
  assert m.wavelength_conflict in m.warnings
  assert measured.load(str(path), grid_lib.config(2000), 0.7093).wavelength_conflict == ''  # Kα1 of the same anode
  assert measured.load(str(path), grid_lib.config(2000), None).wavelength_conflict == ''
