import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from difcon_jax.crystallography import spacegroups
from difcon_jax.data import build
from difcon_jax.data import corpus
from conftest import STRUCTURES
import signal
import time

from difcon_jax.io import folder_lock
import input_helpers


@pytest.fixture(scope='module')
def cif_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp('cifs')
  (root / 'sub').mkdir()
  for p in STRUCTURES.glob('*.cif'):
    shutil.copy(p, root / ('sub' if 'o' in p.stem else '.') / p.name)
  (root / 'broken.cif').write_text('data_broken\n_cell_length_a 5\n')
  return root


def _digest(folder):
  """sha256 over the dataset's record files (names and bytes); asserts that there are some."""
  h = hashlib.sha256()
  names = [n for n in sorted(os.listdir(folder)) if n.endswith('array_record') or 'array_record-' in n]
  assert names, f'no array_record files in {folder}: {sorted(os.listdir(folder))}'
  for name in names:
    h.update(name.encode() + open(os.path.join(folder, name), 'rb').read())
  return h.hexdigest()


def test_build_reads_back_and_reports(cif_dir, tmp_path):
  report = build.build(str(cif_dir), str(tmp_path / 'a'), workers=2, progress=False)
  n_good = len(list(STRUCTURES.glob('*.cif')))
  assert report['files'] == n_good + 1
  assert sum(report['written'].values()) == n_good
  assert [s['source_id'] for s in report['skipped']] == ['broken.cif']
  assert 'broken.cif' in report['skipped'][0]['reason']
  assert json.load(open(tmp_path / 'a' / 'build_report.json'))['skipped'] == report['skipped']

  sources = corpus.data_sources(str(tmp_path / 'a'))
  records = [src[i] for src in sources.values() for i in range(len(src))]
  by_id = {r['source_id'].decode() if isinstance(r['source_id'], bytes) else r['source_id']: r for r in records}
  si = by_id['si.cif']
  assert si['space_group'] == 227 and si['crystal_system'] == 6
  assert si['extinction_group'] == spacegroups.extinction_group(227)
  n = si['num_peaks']
  assert si['two_theta'].shape == (512,) and np.all(si['two_theta'][n:] == 0) and si['intensity'].max() == 1.0
  assert abs(si['two_theta'][0] - 28.44) < 0.05  # 111 at Cu Kα 1.5418
  corundum = by_id[os.path.join('sub', 'corundum.cif')]  # found in a subfolder
  assert corundum['space_group'] == 167 and corundum['crystal_system'] == 4


def test_build_is_deterministic(cif_dir, tmp_path):
  a = build.build(str(cif_dir), str(tmp_path / 'a'), workers=2, progress=False)
  b = build.build(str(cif_dir), str(tmp_path / 'b'), workers=1, progress=False)
  assert _digest(a['dataset']) == _digest(b['dataset'])
  # Running again into the same folder replaces the dataset with the same one.
  c = build.build(str(cif_dir), str(tmp_path / 'a'), workers=2, progress=False)
  assert _digest(c['dataset']) == _digest(b['dataset'])


def test_split_is_by_compound():
  assert corpus.split_of('Na Cl', 225) == corpus.split_of('NaCl', 225)
  splits = [corpus.split_of(f'X{i}', 14) for i in range(2000)]
  assert 0.07 < splits.count('test') / 2000 < 0.13


def test_too_many_peaks_keeps_the_strongest():
  path = str(STRUCTURES / 'kyanite.cif')
  rec = build.make_record(path, str(STRUCTURES), corpus.CorpusSpec(max_peaks=10))
  assert rec['num_peaks'] == 10 and 'kept the strongest 10' in rec['notes'][0]
  assert np.all(np.diff(rec['two_theta']) > 0)
  # The same peaks as the ten strongest of the whole list (both scaled to the strongest = 1), in 2θ order.
  full = build.make_record(path, str(STRUCTURES), corpus.CorpusSpec(max_peaks=2048))
  n = int(full['num_peaks'])
  assert n > 100 and 'notes' not in full
  strongest = np.sort(np.argsort(-full['intensity'][:n], kind='stable')[:10])
  np.testing.assert_array_equal(rec['two_theta'][:10], full['two_theta'][strongest])
  np.testing.assert_array_equal(rec['intensity'][:10], full['intensity'][strongest])
  np.testing.assert_array_equal(rec['hkl'][:10], full['hkl'][strongest])


def test_cli_without_cifs(tmp_path):
  import subprocess, sys
  out = subprocess.run([sys.executable, '-m', 'difcon_jax.data.build', '--cifs', str(tmp_path), '--out',
                        str(tmp_path / 'o')], capture_output=True, text=True)
  assert out.returncode == 2 and 'no .cif' in out.stderr and 'Traceback' not in out.stderr


def test_the_same_command_again_reuses_the_corpus(cif_dir, tmp_path):
  """The report records a digest of the inputs and settings; the CLI finds it and reuses the corpus in one line,
  and any change of a file's bytes, of the file set or of a setting builds anew."""
  import subprocess, sys
  cifs = tmp_path / 'cifs'
  shutil.copytree(cif_dir, cifs)
  out = tmp_path / 'out'
  report = build.build(str(cifs), str(out), workers=2, progress=False)
  digest = build.cif_digest(str(cifs))
  assert report['input_digest'] == digest and build.previous_build(str(out), digest)['written'] == report['written']
  stamp = os.path.getmtime(os.path.join(report['dataset'], 'dataset_info.json'))
  run = subprocess.run([sys.executable, '-m', 'difcon_jax.data.build', '--cifs', str(cifs), '--out', str(out)],
                       capture_output=True, text=True)
  lines = run.stdout.strip().splitlines()
  assert run.returncode == 1  # broken.cif was skipped when the corpus was built, as the build's own status says
  assert len(lines) == 1 and 'reusing the corpus' in lines[0] and digest[:12] in lines[0], run.stdout
  assert os.path.getmtime(os.path.join(report['dataset'], 'dataset_info.json')) == stamp  # not rebuilt
  # What changes the digest: a file's bytes, a new file, a setting.
  quartz = cifs / 'quartz.cif'
  quartz.write_text(quartz.read_text() + '\n')
  assert build.cif_digest(str(cifs)) != digest and build.previous_build(str(out), build.cif_digest(str(cifs))) is None
  quartz.write_text(quartz.read_text()[:-1])
  assert build.cif_digest(str(cifs)) == digest
  assert build.cif_digest(str(cifs), test_fraction=0.2) != digest
  assert build.cif_digest(str(cifs), corpus.CorpusSpec(max_peaks=256)) != digest
  shutil.copy(cifs / 'quartz.cif', cifs / 'quartz_copy.cif')
  assert build.cif_digest(str(cifs)) != digest
  assert build.synthetic_digest(10, 0, 'realistic', 40, corpus.CorpusSpec(), 0.1) != \
      build.synthetic_digest(10, 1, 'realistic', 40, corpus.CorpusSpec(), 0.1)


def test_merge_keeps_every_record_and_its_split(tmp_path):
  names = sorted(p.name for p in STRUCTURES.glob('*.cif'))
  for folder, part in (('a', names[:6]), ('b', names[6:])):
    (tmp_path / 'cifs' / folder).mkdir(parents=True)
    for n in part:
      shutil.copy(STRUCTURES / n, tmp_path / 'cifs' / folder / n)
    build.build(str(tmp_path / 'cifs' / folder), str(tmp_path / folder), workers=1, progress=False,
                test_fraction=0.5)
  report = build.merge([str(tmp_path / 'a'), str(tmp_path / 'b')], str(tmp_path / 'ab'), progress=False)
  merged = corpus.data_sources(str(tmp_path / 'ab'))
  got = {(split, src[i]['source_id'].decode()) for split, src in merged.items() for i in range(len(src))}
  want = set()
  for folder in ('a', 'b'):
    for split, src in corpus.data_sources(str(tmp_path / folder)).items():
      want |= {(split, f"{folder}/{src[i]['source_id'].decode()}") for i in range(len(src))}
  assert got == want and len(got) == len(names) and report['merged'] == {str(tmp_path / 'a'): 6,
                                                                         str(tmp_path / 'b'): len(names) - 6}
  # Corpora built with other settings are refused before anything is written.
  build.build(str(tmp_path / 'cifs' / 'a'), str(tmp_path / 'short'), spec=corpus.CorpusSpec(max_peaks=64),
              workers=1, progress=False)
  with pytest.raises(ValueError, match='different settings'):
    build.merge([str(tmp_path / 'a'), str(tmp_path / 'short')], str(tmp_path / 'bad'), progress=False)
  assert not os.path.exists(tmp_path / 'bad' / 'build_report.json')


def test_build_skips_bad_files_whatever_the_workers(tmp_path):
  cifs = tmp_path / 'cifs'
  cifs.mkdir()
  rng = np.random.default_rng(4)
  bad = {}
  for k, (cell, _) in enumerate(input_helpers.bad_cells(rng)[::3]):
    bad[f'cell{k}.cif'] = input_helpers.cif(cell)
  for k, v in enumerate(['?', '.', '1e400']):
    bad[f'coord{k}.cif'] = input_helpers.cif(x=v)
  bad['huge.cif'] = input_helpers.cif(('200', '200', '200', '90', '90', '90'))
  for name, text in bad.items():
    (cifs / name).write_text(text)
  for name in ('nacl.cif', 'si.cif'):
    shutil.copy(STRUCTURES / name, cifs / name)
  for n_workers in (1, 2):
    report = build.build(str(cifs), str(tmp_path / f'out{n_workers}'), workers=n_workers, progress=False)
    assert sorted(s['source_id'] for s in report['skipped']) == sorted(bad)
    assert all(s['reason'].startswith(str(cifs / s['source_id'])) for s in report['skipped'])
    assert sum(report['written'].values()) == 2


def test_build_bounds_the_memory_of_one_structure(tmp_path):
  """A cell inside the reflection bound but with many atoms, under a small memory cap: its row, not the end."""
  cifs = tmp_path / 'cifs'
  cifs.mkdir()
  rng = np.random.default_rng(5)
  atoms = [f'O{i} O {x:.4f} {y:.4f} {z:.4f}' for i, (x, y, z) in enumerate(rng.uniform(0, 1, (3000, 3)))]
  (cifs / 'big.cif').write_text(input_helpers.cif(('40', '41', '42', '90', '90', '90'), hm='P 1', atoms=atoms))
  shutil.copy(STRUCTURES / 'si.cif', cifs / 'si.cif')
  report = build.build(str(cifs), str(tmp_path / 'out'), workers=1, progress=False, memory_limit=40 << 20,
                       on_mismatch='keep')
  assert [s['source_id'] for s in report['skipped']] == ['big.cif']
  assert report['written']['train'] + report['written']['test'] == 1


def test_a_rebuild_killed_half_way_leaves_the_old_corpus(tmp_path, monkeypatch):
  cifs, out = input_helpers.cifs(tmp_path), tmp_path / 'out'
  first = build.build(str(cifs), str(out), workers=1, progress=False, test_fraction=0.5)
  files = lambda: {p: (out / p).read_bytes() for p in ('build_report.json',)} | {
      n: open(os.path.join(first['dataset'], n), 'rb').read() for n in sorted(os.listdir(first['dataset']))}
  before = files()
  real = corpus.write

  def killed(records, spec, folder):
    real(records, spec, folder)
    raise KeyboardInterrupt  # killed once the new records are written, before the swap
  monkeypatch.setattr(corpus, 'write', killed)
  with pytest.raises(KeyboardInterrupt):
    build.build(str(cifs), str(out), workers=1, progress=False, test_fraction=0.9)
  assert files() == before
  assert sum(corpus.splits(str(out)).values()) == sum(first['written'].values())


def test_a_swap_stopped_between_its_steps_is_finished_or_undone(tmp_path):
  """Every point where a kill can stop the swap: recover() leaves a corpus and the report that describes it."""
  cifs = input_helpers.cifs(tmp_path)
  reports = {}
  for name, fraction in (('old', 0.0), ('new', 0.99)):
    reports[name] = build.build(str(cifs), str(tmp_path / name), workers=1, progress=False, test_fraction=fraction)
  target = lambda out: out / corpus.NAME / corpus.VERSION
  for stop in range(4):  # after 0-3 of the swap's four renames
    out = tmp_path / f'out{stop}'
    shutil.copytree(tmp_path / 'old', out)
    staging = out / '.building-x'
    shutil.copytree(target(tmp_path / 'new'), staging / corpus.NAME / corpus.VERSION)
    shutil.copy(tmp_path / 'new' / 'build_report.json', staging / 'build_report.json')
    moves = [(out / 'build_report.json', out / '.previous' / 'build_report.json'),
             (target(out), out / '.previous' / 'dataset'),
             (staging / corpus.NAME / corpus.VERSION, target(out)),
             (staging / 'build_report.json', out / 'build_report.json')]
    (out / '.previous').mkdir()
    for a, b in moves[:stop]:
      os.rename(a, b)
    build.recover(str(out))
    described = json.loads((out / 'build_report.json').read_text())['written']
    assert corpus.splits(str(out)) == {k: v for k, v in described.items() if v}, stop
    assert sorted(os.listdir(out)) == ['build_report.json', corpus.NAME], stop


def test_two_builds_into_one_folder(tmp_path):
  cifs, out = input_helpers.cifs(tmp_path, ('nacl.cif', 'si.cif')), tmp_path / 'out'
  out.mkdir()
  holder = input_helpers.hold_lock(out, build.LOCK, 'a corpus build')
  try:
    start = time.time()
    with pytest.raises(folder_lock.LockedError, match=f'pid {holder.pid}'):
      build.build(str(cifs), str(out), workers=1, progress=False)
    assert not os.path.exists(out / 'build_report.json')
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  # The dead build's lock file is still there: taken over, not held forever.
  assert os.path.exists(out / build.LOCK)
  report = build.build(str(cifs), str(out), workers=1, progress=False)
  assert sum(report['written'].values()) == 2 and not os.path.exists(out / build.LOCK)
