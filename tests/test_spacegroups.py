import pytest

from difcon_jax.crystallography import spacegroups as sg


@pytest.mark.parametrize('number,system', [(1, 'triclinic'), (2, 'triclinic'), (3, 'monoclinic'), (15, 'monoclinic'),
                                           (16, 'orthorhombic'), (74, 'orthorhombic'), (75, 'tetragonal'),
                                           (142, 'tetragonal'), (143, 'trigonal'), (167, 'trigonal'),
                                           (168, 'hexagonal'), (194, 'hexagonal'), (195, 'cubic'), (230, 'cubic')])
def test_crystal_system_ranges(number, system):
  assert sg.crystal_system(number) == system


def test_crystal_system_agrees_with_gemmi():
  import gemmi
  for n in range(1, 231):
    assert sg.crystal_system(n) == gemmi.find_spacegroup_by_number(n).crystal_system_str()


def test_bad_number():
  for n in (0, 231, -5):
    with pytest.raises(ValueError, match='1-230'):
      sg.crystal_system(n)


def test_stored_table_is_the_derived_one():
  assert sg.derive_extinction_table() == sg.extinction_table()


def test_every_group_has_one_extinction_group_within_its_system():
  table = sg.extinction_table()
  assert table.num_groups == sg.num_extinction_groups() == 112
  assert sorted(x for m in table.members for x in m) == list(range(1, 231))
  for members in table.members:
    assert len({sg.crystal_system(x) for x in members}) == 1


@pytest.mark.parametrize('number', [14, 62, 141, 230])  # P21/c, Pnma, I41/amd, Ia-3d
def test_groups_with_unique_absences(number):
  members = sg.extinction_table().members[sg.extinction_group(number)]
  assert members == (number,)


def test_groups_that_share_absences():
  same = lambda *ns: len({sg.extinction_group(n) for n in ns}) == 1
  assert same(16, 25, 47)  # P222, Pmm2, Pmmm: no conditions
  assert same(1, 2)
  assert same(4, 11)  # P21, P21/m: 0k0 k = 2n
  assert same(76, 78, 91, 95)  # P41, P43, P4122, P4322: 00l l = 4n
  # Fd-3m has the absences of Fd-3: F centring already implies hhl: h + l = 2n (ITA extinction symbol Fd--).
  assert same(203, 227)
  assert not same(225, 227)
  assert not same(14, 13)
  assert not same(62, 57)


def test_absences_from_operations():
  import numpy as np
  hkl = np.array([[1, 0, 0], [2, 0, 0], [0, 1, 0], [0, 2, 0], [0, 0, 1], [1, 1, 0]])
  # P21/c (unique axis b): 0k0 k = 2n; h0l l = 2n (so 00l too).
  assert sg._absent_mask(14, hkl).tolist() == [False, False, True, False, True, False]
  # Fm-3m: h, k, l all even or all odd.
  assert sg._absent_mask(225, hkl).tolist() == [True, False, True, False, True, True]


def test_symbols_are_the_short_hermann_mauguin_ones():
  assert sg.symbol(14) == 'P21/c'
  assert sg.symbol(227) == 'Fd-3m'
  # Rhombohedral groups are R..., whatever setting the table is in.
  assert [sg.symbol(n) for n in (146, 148, 166, 167)] == ['R3', 'R-3', 'R-3m', 'R-3c']
