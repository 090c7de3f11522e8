import gzip
import shutil

import numpy as np
import pytest

from difcon_jax.crystallography import structure as structure_lib
from conftest import STRUCTURES
import json
import types

from difcon_jax.crystallography import diffraction
from difcon_jax.data import build
import input_helpers


def test_expansion_counts():
  counts = {'nacl': 8, 'si': 8, 'quartz': 9, 'corundum': 30, 'rutile': 6, 'forsterite_pbnm': 28, 'kyanite': 32,
            'ga2o3': 20, 'cscl': 2, 'zno': 4}
  for name, n in counts.items():
    s, warning = structure_lib.read_structure(STRUCTURES / f'{name}.cif')
    assert len(s.fract) == n, name
    assert warning is None
    assert np.all((s.fract >= 0) & (s.fract < 1))


def test_labels_and_formula():
  s, _ = structure_lib.read_structure(STRUCTURES / 'forsterite_pbnm.cif')
  assert s.space_group == 62  # Pbnm is a setting of Pnma
  assert s.crystal_system == 'orthorhombic'
  assert s.formula == 'Mg2 O4 Si'
  s, _ = structure_lib.read_structure(STRUCTURES / 'rutile_adp.cif')
  assert s.formula == 'O1.8 Ti'


def test_gzipped_cif(tmp_path):
  gz = tmp_path / 'quartz.cif.gz'
  with open(STRUCTURES / 'quartz.cif', 'rb') as f, gzip.open(gz, 'wb') as g:
    shutil.copyfileobj(f, g)
  s, _ = structure_lib.read_structure(gz)
  assert s.space_group == 154


def test_declared_group_disagreeing_with_atoms_is_reported(tmp_path):
  # NaCl declared as P1-bar... rather: CsCl atoms declared in P4/mmm are really cubic Pm-3m.
  text = (STRUCTURES / 'cscl.cif').read_text()
  head = text.split('loop_')[0].replace("'P m -3 m'", "'P 4/m m m'").replace('_space_group_IT_number 221',
                                                                              '_space_group_IT_number 123')
  atoms = 'loop_' + text.split('loop_')[2]
  (tmp_path / 'x.cif').write_text(head + atoms)
  s, warning = structure_lib.read_structure(tmp_path / 'x.cif')
  assert s.space_group == 123
  assert 'x.cif' in warning and 'declared space group 123' in warning and '221' in warning


@pytest.mark.parametrize('content,message', [
    ('not a cif at all', 'not a readable CIF'),
    ('data_x\n_cell_length_a 5\n', 'no data block with a cell'),
    ('data_x\n_cell_length_a 5\n_cell_length_b 5\n_cell_length_c 5\n_cell_angle_alpha 90\n_cell_angle_beta 90\n'
     '_cell_angle_gamma 90\nloop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n'
     'Na1 0 0 0\n', 'no symmetry operations'),
    ('data_x\n_cell_length_a 5\n_cell_length_b 5\n_cell_length_c 5\n_cell_angle_alpha 90\n_cell_angle_beta 90\n'
     "_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'P 1'\nloop_\n_atom_site_label\n_atom_site_type_symbol\n"
     '_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nQq1 Qq 0 0 0\n', 'no element'),
    ('data_x\n_cell_length_a -5\n_cell_length_b 5\n_cell_length_c 5\n_cell_angle_alpha 90\n_cell_angle_beta 90\n'
     "_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'P 1'\nloop_\n_atom_site_label\n"
     '_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nNa1 0 0 0\n', 'invalid unit cell'),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path, content, message):
  path = tmp_path / 'bad.cif'
  path.write_text(content)
  with pytest.raises(structure_lib.StructureError) as e:
    structure_lib.read_structure(path)
  assert str(e.value).startswith(str(path)) and message in str(e.value)


def test_missing_file(tmp_path):
  with pytest.raises(structure_lib.StructureError, match='missing.cif'):
    structure_lib.read_structure(tmp_path / 'missing.cif')


def test_bad_cells_are_refused_with_the_file_and_the_reason(tmp_path):
  rng = np.random.default_rng(0)
  for k, (cell, words) in enumerate(input_helpers.bad_cells(rng)):
    path = tmp_path / f'c{k}.cif'
    path.write_text(input_helpers.cif(cell))
    with pytest.raises(structure_lib.StructureError) as e:
      structure_lib.read_structure(path)
    assert str(e.value).startswith(str(path)) and 'invalid unit cell' in str(e.value), (cell, e.value)
    assert words in str(e.value), (cell, e.value)


def test_validate_catches_what_spglib_would_crash_on():
  s, _ = structure_lib.read_structure(STRUCTURES / 'nacl.cif')
  rng = np.random.default_rng(1)
  for value in (np.nan, np.inf, -np.inf):
    for field in ('fract', 'occupancy', 'beta'):
      arr = getattr(s, field).copy()
      arr.reshape(len(arr), -1)[rng.integers(len(arr)), 0] = value
      bad = types.SimpleNamespace(**{**s.__dict__, field: arr})
      with pytest.raises(structure_lib.StructureError, match='not a finite number'):
        structure_lib.validate(bad, 'x.cif')
      with pytest.raises(structure_lib.StructureError):  # the symmetry check validates first
        structure_lib.check_space_group(bad)


def test_bad_coordinates_are_error_rows_not_segfaults(tmp_path):
  """NaN coordinates segfault spglib: they must be refused first (and a crash would still be one row)."""
  rng = np.random.default_rng(2)
  values = ['?', '.', '1e400', '-1e999', 'nan', 'inf'] + [f'{rng.uniform(-1, 1):.3f}x' for _ in range(2)]
  files = []
  for k, v in enumerate(values):
    files.append(tmp_path / f'x{k}.cif')
    files[-1].write_text(input_helpers.cif(x=v))
  files.insert(3, STRUCTURES / 'nacl.cif')
  run = input_helpers.run('-m', 'difcon_jax.peaks', *files, '--format=jsonl', '--workers=2')
  assert run.returncode == 1 and 'Traceback' not in run.stderr
  rows = [json.loads(l) for l in run.stdout.splitlines()]
  assert [r['file'] for r in rows] == list(map(str, files))
  for f, r in zip(files, rows):
    if f.name == 'nacl.cif':
      assert r['space_group'] == 225
    else:
      assert r['error'].startswith(str(f)) and 'not a finite number' in r['error'], r


def test_huge_cells_are_refused_before_allocating():
  s, _ = structure_lib.read_structure(STRUCTURES / 'nacl.cif')
  for a in (150.0, 200.0, 999.0):
    big = types.SimpleNamespace(**{**s.__dict__, 'cell': (a, a, a, 90.0, 90.0, 90.0)})
    with pytest.raises(ValueError, match='reflections'):
      diffraction.peak_list(big, 1.5418, 0, 120)


def test_several_data_blocks_are_said(tmp_path):
  for n in (2, 3, 7):
    path = tmp_path / f'b{n}.cif'
    path.write_text(''.join(input_helpers.cif(name=f'blk{i}', cell=(f'{4 + i}',) * 3 + ('90',) * 3) for i in range(n)))
    s, _ = structure_lib.read_structure(path)
    assert s.name == 'blk0' and len(s.notes) == 1 and f'{n} data blocks' in s.notes[0]
    rec = build.make_record(str(path), str(tmp_path), build.corpus.CorpusSpec())
    assert 'error' not in rec and any('data blocks' in n for n in rec['notes'])
