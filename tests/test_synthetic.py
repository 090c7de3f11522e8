import collections
import gzip
import math

import numpy as np
import pytest

from difcon_jax.crystallography import spacegroups
from difcon_jax.crystallography import structure as structure_lib
from difcon_jax.data import build
from difcon_jax.data import corpus
from difcon_jax.data import elements
from difcon_jax.data import sample
from difcon_jax.data import synthetic

needs_pyxtal = pytest.mark.skipif(not synthetic.pyxtal_available(), reason='pyxtal (the Wyckoff tables) missing')


@needs_pyxtal
def test_written_cifs_have_exactly_their_labelled_space_group(tmp_path):
  """The label rate: every CIF read back (gemmi + spglib) has the space group of its data and its file name."""
  paths, failures = synthetic.write_synthetic(str(tmp_path), 60, seed=5, prior='mixed:0.5', workers=1,
                                              progress=False)
  assert len(paths) == 60
  groups = set()
  for p in paths:
    s, warning = structure_lib.read_structure(p)
    assert warning is None, warning
    assert s.space_group == int(p.split('/')[-1][2:5])
    groups.add(s.space_group)
  assert len(groups) >= 25
  assert all(reason for _, reason in failures)


@needs_pyxtal
@pytest.mark.parametrize('sg', [1, 2, 14, 62, 166, 194, 225, 227, 230])
def test_structures_keep_their_group_and_the_allowed_distances(sg):
  rng = np.random.default_rng(sg)
  for _ in range(3):
    c = synthetic.random_structure(sg, rng)
    s = c.structure
    assert structure_lib.check_space_group(s) is None
    # Every pair of atoms is at least the distance its two species allow (brute force over 125 cells).
    site_of_atom = np.repeat(np.arange(len(c.site_elements)),
                             [int(w[:-1]) for w in c.site_wyckoff])  # '4e' -> 4 atoms of that site
    req = elements.required_distances(list(c.site_elements), list(c.site_roles))  # [sites, sites]
    lattice = synthetic._orthogonal(np.array([s.cell]))[0]
    shifts = np.array([(i, j, k) for i in range(-2, 3) for j in range(-2, 3) for k in range(-2, 3)])
    diff = s.fract[:, None, None, :] - s.fract[None, :, None, :] + shifts  # [n, n, 125, 3]
    d = np.linalg.norm(diff @ lattice, axis=-1)
    d[d < 1e-9] = np.inf
    ratio = d.min(-1) / req[site_of_atom[:, None], site_of_atom[None, :]]
    assert ratio.min() >= synthetic.CONTACT_SLACK[0] - 1e-6
    assert len(s.fract) == len(site_of_atom)


@needs_pyxtal
def test_same_structures_whatever_the_number_of_workers(tmp_path):
  one = [(o.index, o.crystal.to_cif()) for o in synthetic.stream(24, seed=3, workers=1, chunk=5, progress=False)]
  two = [(o.index, o.crystal.to_cif()) for o in synthetic.stream(24, seed=3, workers=2, chunk=7, progress=False)]
  assert one == two
  other = [o.crystal.to_cif() for o in synthetic.stream(4, seed=4, workers=1, progress=False)]
  assert other != [c for _, c in one[:4]]


def test_realistic_prior_follows_the_table():
  w = synthetic.prior_weights('realistic')
  assert w[0] == 0 and math.isclose(w.sum(), 1.0)
  top = np.argsort(-w)[:10]
  assert {225, 2, 14, 12, 15} <= set(top.tolist())  # Fm-3m, P-1, P21/c, C2/m, C2/c
  assert w[top].sum() > 0.3  # a uniform draw gives 10/230
  u = synthetic.prior_weights('uniform')
  np.testing.assert_allclose(u[1:], 1 / 230)
  np.testing.assert_allclose(synthetic.prior_weights('mixed:0.25'), 0.25 * w + 0.75 * u)
  for bad in ('mixed:2', 'mixed:x', 'zipf'):
    with pytest.raises(ValueError):
      synthetic.prior_weights(bad)


@needs_pyxtal
def test_drawn_groups_match_the_prior_within_sampling_error():
  """The space groups the generator draws (before any retry) follow the table: chi-square over the top groups."""
  w = synthetic.prior_weights('realistic')
  n = 3000
  rng_groups = [int(np.random.default_rng([7, i]).choice(231, p=w)) for i in range(n)]
  counts = collections.Counter(rng_groups)
  for sg in np.argsort(-w)[:5]:
    expected = n * w[sg]
    assert abs(counts[int(sg)] - expected) < 4 * math.sqrt(expected), (sg, counts[int(sg)], expected)
  # And the groups of generated structures: the top ten of the table hold their share.
  made = [o.crystal.structure.space_group for o in synthetic.stream(200, seed=7, workers=1, progress=False)]
  share = np.mean(np.isin(made, np.argsort(-w)[:10]))
  assert abs(share - w[np.argsort(-w)[:10]].sum()) < 4 * math.sqrt(0.25 / 200)


@needs_pyxtal
def test_a_failed_draw_is_skipped_and_reported(monkeypatch, tmp_path):
  """A space group that cannot be made is reported with its reason, and another group takes its place."""
  real = synthetic.random_structure

  def broken(sg, rng, *args, **kwargs):
    if sg == 225:
      raise synthetic.DrawError('broken on purpose')
    return real(sg, rng, *args, **kwargs)

  monkeypatch.setattr(synthetic, 'random_structure', broken)
  w = np.zeros(231)
  w[[225, 14]] = 0.5
  outs = [synthetic.make(i, 0, w) for i in range(12)]
  assert all(o.crystal is not None and o.crystal.structure.space_group == 14 for o in outs)
  failures = [f for o in outs for f in o.failures]
  assert failures and all(f == (225, 'broken on purpose') for f in failures)
  summary = synthetic.failure_summary(failures)
  assert summary['225']['failures'] == len(failures) and summary['225']['symbol'] == 'Fm-3m'

  monkeypatch.setattr(synthetic, 'prior_weights', lambda prior: w)
  report = build.build_synthetic(12, str(tmp_path / 'c'), seed=0, workers=1, progress=False)
  assert report['synthetic']['failed_draws']['225']['failures'] == len(failures)
  assert sum(report['written'].values()) == 12


@needs_pyxtal
def test_synthetic_corpus_build_is_deterministic(tmp_path):
  a = build.build_synthetic(30, str(tmp_path / 'a'), seed=2, workers=1, progress=False)
  b = build.build_synthetic(30, str(tmp_path / 'b'), seed=2, workers=2, progress=False)
  assert a['written'] == b['written'] and sum(a['written'].values()) == 30
  ra, rb = corpus.load_arrays(str(tmp_path / 'a'), 'train'), corpus.load_arrays(str(tmp_path / 'b'), 'train')
  for k in ('two_theta', 'intensity', 'hkl', 'space_group', 'cell'):
    np.testing.assert_array_equal(ra[k], rb[k])
  assert list(ra['source_id']) == list(rb['source_id'])


def test_bundled_sample_is_realistic_and_covers_every_crystal_system():
  paths = corpus.find_cifs(sample.cif_dir())
  assert len(paths) >= 1000
  groups = collections.Counter(int(p.split('/')[-1][2:5]) for p in paths)
  systems = {spacegroups.crystal_system(g) for g in groups}
  assert len(systems) == 7
  assert len(groups) >= 100
  with gzip.open(paths[0], 'rt') as f:
    assert f.read().startswith('data_sg')
  s, warning = structure_lib.read_structure(paths[0])
  assert warning is None and s.space_group == int(paths[0].split('/')[-1][2:5])


@needs_pyxtal
def test_a_corpus_beyond_the_writers_memory_buffer_needs_no_tensorflow(monkeypatch, tmp_path):
  """TFDS spills a split larger than its buffer to disk through TensorFlow, which is not installed: the corpus
  writer must keep it in memory. Shrinking the buffer to 1 kB makes 20 records overflow it."""
  from tensorflow_datasets.core import shuffle as tfds_shuffle
  monkeypatch.setattr(tfds_shuffle, 'MAX_MEM_BUFFER_SIZE', 1000)
  report = build.build_synthetic(20, str(tmp_path / 'c'), seed=1, workers=1, progress=False)
  assert sum(report['written'].values()) == 20
  assert len(corpus.load_arrays(str(tmp_path / 'c'), 'train')['two_theta']) == report['written']['train']
