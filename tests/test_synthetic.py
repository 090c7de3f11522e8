import pytest

from difcon_jax.crystallography import structure as structure_lib
from difcon_jax.data import corpus
from difcon_jax.data import sample
from difcon_jax.data import synthetic

pytest.importorskip('pyxtal')


@pytest.mark.parametrize('space_group', [14, 167, 225])
def test_random_crystal_has_exactly_its_space_group(space_group, tmp_path):
  paths = synthetic.write_synthetic(str(tmp_path), [space_group], per_group=1, seed=3)
  assert len(paths) == 1
  s, warning = structure_lib.read_structure(paths[0])
  assert s.space_group == space_group and warning is None


def test_parse_groups():
  assert synthetic.parse_groups('1-3,225') == [1, 2, 3, 225]
  with pytest.raises(ValueError):
    synthetic.parse_groups('0-5')


def test_bundled_sample_covers_every_crystal_system():
  paths = corpus.find_cifs(sample.cif_dir())
  assert len(paths) >= 600
  groups = {int(p.split('sg')[-1][:3]) for p in paths}
  assert len(groups) >= 220
  systems = {structure_lib.spacegroups.crystal_system(g) for g in groups}
  assert len(systems) == 7
  s, warning = structure_lib.read_structure(paths[0])
  assert warning is None and s.space_group == 1
