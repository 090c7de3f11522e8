import gzip
import shutil

import numpy as np
import pytest

from difcon_jax.crystallography import structure as structure_lib
from conftest import STRUCTURES


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
