import collections
import functools
import gzip
import math
import multiprocessing
import os
import pathlib
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from difcon_jax.crystallography import spacegroups
from difcon_jax.crystallography import structure as structure_lib
from difcon_jax.data import build
from difcon_jax.data import corpus
from difcon_jax.data import elements
from difcon_jax.data import bundled_sample as sample
from difcon_jax.data import synthetic
import input_helpers

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
  one = [(o.index, o.crystal.to_cif()) for o in synthetic.stream(24, seed=3, workers=1, progress=False)]
  two = [(o.index, o.crystal.to_cif()) for o in synthetic.stream(24, seed=3, workers=2, progress=False)]
  assert one == two
  other = [o.crystal.to_cif() for o in synthetic.stream(4, seed=4, workers=1, progress=False)]
  assert other != [c for _, c in one[:4]]


def _sabotage(outcome, then, kill=(), hang=()):
  """A stream `finish`: in a worker process, SIGKILLs it at the indices `kill` and stalls at `hang`; otherwise (and
  always in the test's own process, where the stream finishes a lost index) then(outcome)."""
  if multiprocessing.parent_process() is not None:
    if outcome.index in kill:
      os.kill(os.getpid(), signal.SIGKILL)
    if outcome.index in hang:
      time.sleep(3600)
  return then(outcome)


_STREAM_IN_A_SUBPROCESS = """
import pickle, sys
sys.path.insert(0, sys.argv[1])  # this tests folder: the workers unpickle _sabotage from test_synthetic
from difcon_jax.data import synthetic
with open(sys.argv[2], 'rb') as f:
  settings, kwargs = pickle.load(f)
for name, value in settings.items():
  setattr(synthetic, name, value)
try:
  out = ('results', list(synthetic.stream(**kwargs)))
except synthetic.WorkersLost as e:
  out = ('raised', e)
with open(sys.argv[2], 'wb') as f:
  pickle.dump(out, f)
"""
HANG_GUARD = 300  # seconds: a stream not done by then waits for a dead worker (done, it takes under 30 s)


def _stream_elsewhere(tmp_path, settings, **kwargs):
  """('results', list(synthetic.stream(**kwargs))) or ('raised', WorkersLost), run in a subprocess with the module's
  constants `settings`; the test fails, instead of hanging, when the stream has not ended after HANG_GUARD s."""
  path = tmp_path / 'stream.pkl'
  path.write_bytes(pickle.dumps((settings, kwargs)))
  proc = subprocess.Popen([sys.executable, '-c', _STREAM_IN_A_SUBPROCESS, str(pathlib.Path(__file__).parent),
                           str(path)], start_new_session=True, stderr=subprocess.PIPE, text=True)
  try:
    _, err = proc.communicate(timeout=HANG_GUARD)
  except subprocess.TimeoutExpired:
    os.killpg(proc.pid, signal.SIGKILL)  # the subprocess and every worker it started
    proc.communicate()
    pytest.fail(f'the stream did not end within {HANG_GUARD} s: it waits for a dead or stalled worker')
  assert proc.returncode == 0, err
  return pickle.loads(path.read_bytes())


@needs_pyxtal
@pytest.mark.slow
def test_a_structure_that_kills_or_stalls_its_worker_is_reported_alone(tmp_path):
  """Index 2 kills its worker (SIGKILL, as the OOM killer does), index 5 stalls past the time limit: each becomes a
  failed record of its own index in the corpus channel, and every other record is the one of an undisturbed run."""
  finish = functools.partial(build._synthetic_record, spec=corpus.CorpusSpec(), test_fraction=0.1)
  want = list(synthetic.stream(10, seed=6, workers=1, finish=finish, progress=False))
  kind, got = _stream_elsewhere(
      tmp_path, {'SECONDS_PER_STRUCTURE': 10}, count=10, seed=6, workers=2, progress=False,
      finish=functools.partial(_sabotage, then=finish, kill={2}, hang={5}))
  assert kind == 'results' and len(got) == 10
  for i, reason in ((2, 'the worker process died (killed by SIGKILL'), (5, 'took longer than 10 s')):
    assert 'error' not in want[i][0]  # a structure was lost, not a failed draw
    rec, fails = got[i]
    assert rec['source_id'] == f'index {i}' and reason in rec['error'], rec
    assert len(fails) == 1 and fails[0][0] == synthetic.UNKNOWN_GROUP and fails[0][1].startswith(reason)
  for i in set(range(10)) - {2, 5}:
    (rec, fails), (rec_want, fails_want) = got[i], want[i]
    assert fails == fails_want and rec.keys() == rec_want.keys()
    for k in rec:
      np.testing.assert_array_equal(rec[k], rec_want[k], err_msg=f'index {i}, {k}')
  summary = synthetic.failure_summary([f for _, fails in got for f in fails])
  assert summary['0']['symbol'] == 'unknown' and summary['0']['failures'] == 2


@needs_pyxtal
@pytest.mark.slow
def test_a_stream_whose_every_worker_dies_stops_with_a_clear_error(tmp_path):
  """Every worker is killed: the stream gives up after LOST_IN_A_ROW indices (3 here, to spawn fewer workers)."""
  n = 3
  kind, got = _stream_elsewhere(tmp_path, {'LOST_IN_A_ROW': n}, count=4 * n, seed=6, workers=2, progress=False,
                                finish=functools.partial(_sabotage, then=synthetic._identity, kill=range(4 * n)))
  assert kind == 'raised', got
  assert f'structures 0-{n - 1} (seed 6) all failed' in str(got) and 'killed by SIGKILL' in str(got)


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


def test_synthetic_refuses_a_file_and_a_folder_of_another_run(tmp_path):
  (tmp_path / 'afile').write_text('x')
  assert '--out=' in input_helpers.refused(input_helpers.run('-m', 'difcon_jax.data.synthetic', f'--out={tmp_path / "afile"}', '--count=1',
                                   '--workers=1'))
  held = tmp_path / 'cifs'
  held.mkdir()
  (held / 'sg225_000000.cif.gz').write_bytes(b'another seed')
  assert 'sg225_000000.cif.gz' in input_helpers.refused(input_helpers.run('-m', 'difcon_jax.data.synthetic', f'--out={held}', '--count=1',
                                                 '--workers=1'))
  assert (held / 'sg225_000000.cif.gz').read_bytes() == b'another seed'
