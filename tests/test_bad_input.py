"""Bad input never crashes a batch, never hangs, never passes silently (issue 10).

One section per kind of failure: structures checked before the native libraries, a pool that survives its
workers, reader errors, silent wrong answers, flags, outputs, the training workdir, unbounded work, broken pipes.
Inputs are generated in the tests (seeded), beside a few fixed cases.
"""

import json
import os
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest

from difcon_jax.io import cli
from difcon_jax.crystallography import pattern_grid as grid_lib
from difcon_jax.training import config_checks
from difcon_jax.training import resume_checks
from difcon_jax.io import workdir as workdir_lib
from difcon_jax.crystallography import diffraction
from difcon_jax.crystallography import structure as structure_lib
from difcon_jax.data import build
from difcon_jax.data import workers
from difcon_jax.io import labelled
from difcon_jax.io import patterns
from conftest import STRUCTURES

import pool_helpers
from difcon_jax.io import outputs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CELL_TAGS = structure_lib.CELL_TAGS


def cif(cell=('4.0', '4.0', '4.0', '90', '90', '90'), x='0.0', hm='P m -3 m', name='t', atoms=None):
  """A CsCl-like CIF; cell entries of None are left out."""
  lines = [f'data_{name}'] + [f'{t} {v}' for t, v in zip(CELL_TAGS, cell) if v is not None]
  lines += [f"_symmetry_space_group_name_H-M '{hm}'", 'loop_', '_atom_site_label', '_atom_site_type_symbol',
            '_atom_site_fract_x', '_atom_site_fract_y', '_atom_site_fract_z']
  lines += atoms or [f'Cs1 Cs {x} 0 0', 'Cl1 Cl 0.5 0.5 0.5']
  return '\n'.join(lines) + '\n'


def _run(*args, **kw):
  return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=ROOT, **kw)


# ------------------------------------------------------------------------ structures, before gemmi and spglib

def _bad_cells(rng):
  """(cell, words expected in the error) generated around a good cubic cell."""
  good = ['4.0', '4.0', '4.0', '90', '90', '90']
  cases = []
  for i, tag in enumerate(CELL_TAGS):  # each parameter missing, or not a number
    cases.append((good[:i] + [None] + good[i + 1:], f'{tag} is missing'))
    cases.append((good[:i] + [rng.choice(['?', '.', 'abc', '1e400'])] + good[i + 1:], 'not a number'))
  for _ in range(4):  # zero, negative or huge lengths; angles at 0 or 180 and beyond
    i = int(rng.integers(3))
    cases.append((good[:i] + [f'{rng.choice([0.0, -rng.uniform(0.1, 9), rng.uniform(1001, 1e6)]):g}'] + good[i + 1:],
                  'lengths'))
    j = 3 + int(rng.integers(3))
    cases.append((good[:j] + [f'{rng.choice([0.0, 180.0, rng.uniform(180, 400), -rng.uniform(0, 90)]):g}']
                  + good[j + 1:], 'angles'))
  for _ in range(3):  # flat: alpha + beta + gamma = 360°, or a tiny cell
    a, b = rng.uniform(100, 130, 2)
    cases.append((good[:3] + [f'{a:.6f}', f'{b:.6f}', f'{360 - a - b:.6f}'], 'volume'))
    cases.append(([f'{rng.uniform(0.01, 0.5):.4f}'] * 3 + good[3:], 'volume'))
  return cases


def test_bad_cells_are_refused_with_the_file_and_the_reason(tmp_path):
  rng = np.random.default_rng(0)
  for k, (cell, words) in enumerate(_bad_cells(rng)):
    path = tmp_path / f'c{k}.cif'
    path.write_text(cif(cell))
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
    files[-1].write_text(cif(x=v))
  files.insert(3, STRUCTURES / 'nacl.cif')
  run = _run('-m', 'difcon_jax.peaks', *files, '--format=jsonl', '--workers=2')
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
    path.write_text(''.join(cif(name=f'blk{i}', cell=(f'{4 + i}',) * 3 + ('90',) * 3) for i in range(n)))
    s, _ = structure_lib.read_structure(path)
    assert s.name == 'blk0' and len(s.notes) == 1 and f'{n} data blocks' in s.notes[0]
    rec = build.make_record(str(path), str(tmp_path), build.corpus.CorpusSpec())
    assert 'error' not in rec and any('data blocks' in n for n in rec['notes'])


# ------------------------------------------------------------------------------------------- the pool

def test_pool_turns_each_dead_worker_into_that_items_row():
  items = [('ok', 0), ('segfault', 0), ('ok', 2), ('exit', 3), ('memory', 3 << 30), ('raise', 5), ('ok', 6),
           ('sleep', 60), ('ok', 8)]
  for n_workers in (1, 3):
    out = list(workers.imap(pool_helpers.work, items, n_workers, on_failure=lambda item, why: ('failed', why),
                            memory_limit=512 << 20, timeout=4))
    assert out[0] == 0 and out[2] == 20 and out[6] == 60 and out[8] == 80
    assert out[1] == ('failed', 'the worker process died (killed by SIGSEGV)')
    assert out[3] == ('failed', 'the worker process died (exited with status 3)')
    assert out[4][0] == 'failed' and 'MemoryError' in out[4][1]
    assert out[5] == ('failed', 'the worker raised TypeError: bad 5')
    assert out[7][0] == 'failed' and 'longer than 4 s' in out[7][1]


def test_pool_keeps_order_and_refuses_no_workers():
  rng = np.random.default_rng(3)
  values = [int(v) for v in rng.integers(0, 1000, 40)]
  assert list(workers.imap(pool_helpers.work, [('ok', v) for v in values], 2)) == [v * 10 for v in values]
  with pytest.raises(ValueError):
    list(workers.imap(pool_helpers.work, [('ok', 1)], 0))


def test_build_skips_bad_files_whatever_the_workers(tmp_path):
  cifs = tmp_path / 'cifs'
  cifs.mkdir()
  rng = np.random.default_rng(4)
  bad = {}
  for k, (cell, _) in enumerate(_bad_cells(rng)[::3]):
    bad[f'cell{k}.cif'] = cif(cell)
  for k, v in enumerate(['?', '.', '1e400']):
    bad[f'coord{k}.cif'] = cif(x=v)
  bad['huge.cif'] = cif(('200', '200', '200', '90', '90', '90'))
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
  (cifs / 'big.cif').write_text(cif(('40', '41', '42', '90', '90', '90'), hm='P 1', atoms=atoms))
  shutil.copy(STRUCTURES / 'si.cif', cifs / 'si.cif')
  report = build.build(str(cifs), str(tmp_path / 'out'), workers=1, progress=False, memory_limit=40 << 20,
                       on_mismatch='keep')
  assert [s['source_id'] for s in report['skipped']] == ['big.cif']
  assert report['written']['train'] + report['written']['test'] == 1


# --------------------------------------------------------------------------------------------- readers

def _xy(rng, n=300):
  tt = np.sort(rng.uniform(5, 100, n))
  return tt, rng.uniform(1, 1000, n)


def test_every_reader_failure_is_a_pattern_error(tmp_path):
  """Fixed broken files of each format, and random garbage and cut-off files: PatternError, nothing else."""
  rng = np.random.default_rng(6)
  tt, y = _xy(rng)
  counts = ' '.join(f'{v:.1f}' for v in y)
  xrdml = ('<xrdMeasurements><kAlpha1>{k1}</kAlpha1><positions axis="2Theta"><startPosition>{s}</startPosition>'
           '<endPosition>80</endPosition></positions><intensities>{c}</intensities></xrdMeasurements>')
  fixed = {
      'empty_counts.xrdml': xrdml.format(k1='1.54', s='10', c=''),
      'no_axis.xrdml': '<a><intensities>1 2 3</intensities></a>',
      'bad_start.xrdml': xrdml.format(k1='1.54', s='ten', c=counts),
      'word_in_counts.xrdml': xrdml.format(k1='1.54', s='10', c=counts + ' abc'),
      'bad_list.xrdml': '<a><positions axis="2Theta"><listPositions>1 x 3</listPositions></positions>'
                        '<intensities>1 2 3</intensities></a>',
      'word_in_std.gsa': 'title\nBANK 1 20 2 CONS 1000 35 0 0 STD\n' + '       1' * 9 + '    abc\n',
      'no_data.gsa': 'title\nBANK 1 200 20 CONS 1000 35 0 0 STD\n',
      'short_bank.gsa': 'title\nBANK 1 200 STD\n1 2 3\n',
      'one_column.fxye': 'title\nBANK 1 300 300 CONS 1000 35 0 0 FXYE\n' + '\n'.join(f'{t * 100:.1f}' for t in tt),
      'one_column.xy': '\n'.join(f'{t:.3f}' for t in tt),
      'words.xy': '10 5\n11 6\n12 seven\n',
      'binary.xy': bytes(rng.integers(0, 256, 2000, dtype=np.uint8)),
      'folder.xy': None,
  }
  for name, text in fixed.items():
    path = tmp_path / name
    if text is None:
      path.mkdir()
    elif isinstance(text, bytes):
      path.write_bytes(text)
    else:
      path.write_text(text)
    with pytest.raises(patterns.PatternError) as e:
      patterns.read_pattern(str(path))
    assert str(e.value).startswith(str(path)), e.value
  good = {'.xy': '\n'.join(f'{a:.3f} {b:.1f}' for a, b in zip(tt, y)), '.xrdml': xrdml.format(k1='1.54', s='10', c=counts),
          '.fxye': 'title\nBANK 1 300 300 CONS 1000 35 0 0 FXYE\n' + '\n'.join(f'{a * 100:.1f} {b:.1f} 1' for a, b in
                                                                            zip(tt, y))}
  for k in range(40):  # cut-off and scrambled versions of good files: a Pattern or a PatternError
    suffix = list(good)[k % 3]
    text = good[suffix]
    if k % 2:
      text = text[:int(rng.integers(0, len(text)))]
    else:
      chars = list(text)
      for i in rng.integers(0, len(chars), 20):
        chars[i] = chr(int(rng.integers(32, 127)))
      text = ''.join(chars)
    path = tmp_path / f'fuzz{k}{suffix}'
    path.write_text(text)
    try:
      patterns.read_pattern(str(path))
    except patterns.PatternError as e:
      assert str(e).startswith(str(path))


def test_xrdml_without_a_wavelength_value_is_read_with_a_warning(tmp_path):
  y = np.random.default_rng(7).uniform(1, 100, 50)
  for k1 in ('', ' ', 'abc'):
    path = tmp_path / 'k.xrdml'
    path.write_text(f'<x><kAlpha1>{k1}</kAlpha1><positions axis="2Theta"><startPosition>10</startPosition>'
                    f'<endPosition>60</endPosition></positions><intensities>{" ".join(map(str, y))}</intensities></x>')
    p = patterns.read_pattern(str(path))
    assert p.wavelength is None and any('kAlpha1' in w for w in p.warnings)


def test_labelled_npz_problems(tmp_path):
  rng = np.random.default_rng(8)
  tt = np.linspace(5, 90, 200)
  y = rng.uniform(1, 100, (5, 200))
  whole = {'missing_sg.npz': dict(two_theta=tt, intensity=y),
           'missing_tt.npz': dict(intensity=y, space_group=np.arange(1, 6)),
           'short_tt.npz': dict(two_theta=tt[:-3], intensity=y, space_group=np.arange(1, 6)),
           'few_labels.npz': dict(two_theta=tt, intensity=y, space_group=np.arange(1, 4))}
  for name, arrays in whole.items():
    np.savez(tmp_path / name, **arrays)
    with pytest.raises(patterns.PatternError, match=name):
      labelled.read_npz(str(tmp_path / name), 1.5418)
  (tmp_path / 'not.npz').write_text('hello')
  with pytest.raises(patterns.PatternError, match='not a readable'):
    labelled.read_npz(str(tmp_path / 'not.npz'), 1.5418)
  labels = np.array(['225', '0', '231', 'abc', '14'])
  y[3, rng.integers(200)] = np.nan  # one NaN point: dropped with a warning
  y[4, :50] = np.nan  # a quarter NaN: refused
  np.savez(tmp_path / 'set.npz', two_theta=tt, intensity=y, space_group=labels)
  items = labelled.read_npz(str(tmp_path / 'set.npz'), 1.5418)
  assert [i.space_group for i in items] == [225, None, None, None, None]
  assert all('is not an integer 1-230' in i.error for i in items[1:4])
  assert 'NaN' in items[4].error and items[4].error.startswith(f'{tmp_path / "set.npz"}[4]')


@pytest.mark.parametrize('value', ['0', '231', '-3', '1.5', 'abc', '', 'nan', '1e9'])
def test_space_group_labels_outside_1_to_230_are_refused(value):
  with pytest.raises(patterns.PatternError, match='not an integer 1-230'):
    labelled.parse_space_group(value, 'x')


def test_folder_labels(tmp_path):
  rng = np.random.default_rng(9)
  tt, y = _xy(rng)
  np.savetxt(tmp_path / 'a.xy', np.stack([tt, y], 1))
  (tmp_path / 'labels.csv').write_text('file,space_group,wavelength\na.xy,14,\nmissing.xy,14,\na.xy,0,\na.xy,14,-1\n')
  items = labelled.read_folder(str(tmp_path), str(tmp_path / 'labels.csv'))
  assert [bool(i.error) for i in items] == [False, True, True, True]
  assert 'no such file' in items[1].error and '1-230' in items[2].error and 'wavelength' in items[3].error
  (tmp_path / 'bad.csv').write_text('name,sg\na.xy,14\n')
  with pytest.raises(patterns.PatternError, match='no column'):
    labelled.read_folder(str(tmp_path), str(tmp_path / 'bad.csv'))


# ------------------------------------------------------------------------------------ silent wrong answers

def test_decimal_commas_are_read_as_decimals(tmp_path):
  rng = np.random.default_rng(10)
  for k in range(6):
    tt, y = _xy(rng)
    rows = [(f'{a:.3f}'.replace('.', ','), f'{b:.2f}'.replace('.', ',')) for a, b in zip(tt, y)]
    sep, suffix = [(' ', '.xy'), ('\t', '.txt'), (';', '.csv')][k % 3]
    header = '2theta;intensity\n' if sep == ';' else '# angle counts\n'
    path = tmp_path / f'c{k}{suffix}'
    path.write_text(header + '\n'.join(sep.join(r) for r in rows) + '\n')
    p = patterns.read_pattern(str(path))
    np.testing.assert_allclose(p.two_theta, np.round(tt, 3), atol=1e-9)
    np.testing.assert_allclose(p.intensity, np.round(y, 2), atol=1e-9)
    assert any('decimal commas' in w for w in p.warnings)
  path = tmp_path / 'plain.csv'  # comma separators with decimal points are still read as before
  tt, y = _xy(rng)
  path.write_text('\n'.join(f'{a:.3f},{b:.2f}' for a, b in zip(tt, y)))
  p = patterns.read_pattern(str(path))
  np.testing.assert_allclose(p.two_theta, np.round(tt, 3)) and not p.warnings


def test_patterns_that_would_be_predicted_wrongly_are_refused(tmp_path):
  rng = np.random.default_rng(11)
  for k in range(4):
    tt, y = _xy(rng)
    lo, hi = rng.uniform(0.05, 0.5), rng.uniform(1.0, 3.1)  # radians
    with pytest.raises(patterns.PatternError, match='radians'):
      patterns.from_arrays('r', np.linspace(lo, hi, 300), y)
    with pytest.raises(patterns.PatternError, match='constant'):
      patterns.from_arrays('c', tt, np.full(300, rng.uniform(0, 1e4)))
    with pytest.raises(patterns.PatternError, match='intensities'):
      patterns.from_arrays('m', tt, y[:-int(rng.integers(1, 50))])
    bad = y.copy()
    bad[rng.integers(300)] = rng.choice([np.nan, np.inf])
    p = patterns.from_arrays('n', tt, bad)
    assert len(p.two_theta) == 299 and 'NaN' in p.warnings[0]
    bad[rng.choice(300, 20, replace=False)] = np.nan
    with pytest.raises(patterns.PatternError, match='NaN'):
      patterns.from_arrays('n', tt, bad)
  path = tmp_path / 'nanrow.xy'  # a NaN row in a text file is not taken for a header line
  tt, y = _xy(rng)
  lines = [f'{a:.3f} {b:.2f}' for a, b in zip(tt, y)]
  lines[100] = 'NaN NaN'
  path.write_text('\n'.join(lines))
  assert 'NaN' in patterns.read_pattern(str(path)).warnings[0]


# ------------------------------------------------------------------------------------------------ flags

def test_checks_say_what_is_allowed():
  rng = np.random.default_rng(12)
  for value in [0, -1, float('nan'), float('inf'), None, 'abc', *rng.uniform(-100, 0, 3)]:
    c = cli.Checks()
    assert c.wavelength(value, None) is None and c.errors[0].startswith('--wavelength=')
    assert 'above 0' in c.errors[0]
  for anode in ('Zz', 'copper', ''):
    c = cli.Checks()
    assert c.wavelength(1.5, anode) is None and 'one of Cu' in c.errors[0]
  c = cli.Checks()
  for v in (0, -1, 2.5):
    c.number('workers', v, 1, integer=True)
  assert len(c.errors) == 3 and all('an integer at least 1' in e for e in c.errors)
  c = cli.Checks()
  assert c.number('top_k', 5, 1, 230, integer=True) and c.wavelength(None, 'mo') == 0.7107 and not c.errors


def _cli_errors(run):
  assert run.returncode == 2, run.stdout[-500:] + run.stderr[-1500:]
  assert 'Traceback' not in run.stderr
  return run.stderr


def test_command_lines_are_refused_before_any_work(tmp_path):
  afile = tmp_path / 'afile'
  afile.write_text('x')
  out = _cli_errors(_run('-m', 'difcon_jax.peaks', STRUCTURES / 'nacl.cif', '--wavelength=nan', '--default_b=-100',
                         '--workers=0', '--two_theta_min=50', '--two_theta_max=40', '--min_intensity=-1'))
  for flag in ('wavelength', 'default_b', 'workers', 'two_theta_max', 'min_intensity'):
    assert f'--{flag}=' in out
  assert _run('-m', 'difcon_jax.peaks', STRUCTURES / 'nacl.cif', '--anode=Zz').stderr.count('one of Cu') == 1
  out = _cli_errors(_run('-m', 'difcon_jax.data.build', f'--cifs={STRUCTURES}', f'--out={afile}', '--workers=-1',
                         '--max_peaks=0', '--test_fraction=2', '--wavelength=0', '--two_theta_max=180'))
  for flag in ('out', 'workers', 'max_peaks', 'test_fraction', 'wavelength', 'two_theta_max'):
    assert f'--{flag}=' in out
  out = _cli_errors(_run('-m', 'difcon_jax.data.build', f'--cifs={STRUCTURES}', f'--out={afile}/sub'))
  assert '--out=' in out


def test_prediction_flags_and_outputs_are_checked_first(tmp_path):
  rng = np.random.default_rng(13)
  for top_k in (0, 231, int(rng.integers(232, 10_000))):
    out = _cli_errors(_run('-m', 'difcon_jax.predict', '--checkpoint=nowhere', f'--top_k={top_k}', '--batch_size=0',
                           '--wavelength=-1', f'--output={tmp_path}', tmp_path / 'x.xy'))
    for flag in ('top_k', 'batch_size', 'wavelength', 'output'):
      assert f'--{flag}=' in out
  out = _cli_errors(_run('-m', 'difcon_jax.evaluate', '--checkpoint=nowhere', '--batch_size=0',
                         '--set=experimental', '--figure_structures=-2'))
  for flag in ('checkpoint', 'batch_size', 'data', 'figure_structures'):
    assert f'--{flag}=' in out


def test_help_spells_flags_as_the_parser_takes_them():
  code = ('import importlib, re, sys; from absl import flags; m = importlib.import_module(sys.argv[1]); '
          'getattr(m, "define_flags", lambda: None)(); '
          'used = set(re.findall(r"--([a-z][a-z_-]*)", m.__doc__)); '
          'print(sorted(u for u in used if u not in flags.FLAGS and not u.startswith("config") '
          'and not (u.startswith("no") and u[2:] in flags.FLAGS)))')  # --noX: absl's negation of a bool flag
  procs = {m: subprocess.Popen([sys.executable, '-c', code, m], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=ROOT)
           for m in ('difcon_jax.peaks', 'difcon_jax.data.build', 'difcon_jax.predict', 'difcon_jax.evaluate',
                     'difcon_jax.train')}
  for m, p in procs.items():
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-1500:]
    assert out.strip() == '[]', (m, out)


def test_config_errors_name_each_bad_field():
  import train_helpers
  rng = np.random.default_rng(14)
  base = train_helpers.tiny_config('corpus')
  assert config_checks.config_errors(base) == []
  bad = {'steps': [-1, 0], 'log_every': [0, -5], 'eval_every': [0], 'checkpoint_every': [0],
         'batch_size': [0, -int(rng.integers(1, 99))], 'best_metric': ['nope', 'equivariance/top1'],
         'augmentation': ['trian'], 'ema_decay': [1.0, -0.1], 'two_theta_max': [0.0, 200.0]}
  for field, values in bad.items():
    for v in values:
      c = train_helpers.tiny_config('corpus')
      with c.unlocked():
        c[field] = v
      errors = config_checks.config_errors(c)
      assert len(errors) == 1 and errors[0].startswith(f'config.{field}='), (field, v, errors)
  c = train_helpers.tiny_config('corpus')
  c.optimizer.name = 'sgd'
  c.model.stage_sizes = ()
  assert len(config_checks.config_errors(c)) == 2


def test_train_refuses_bad_configs_and_unknown_fields_in_one_line(tmp_path):
  for args in (['--config.steps=-1'], ['--config.best_metric=nope'], ['--config.x=1'], ['--config.model.nope=2']):
    run = _run('-m', 'difcon_jax.train', '--config=configs/quickstart.py', f'--workdir={tmp_path / "w"}', *args)
    assert run.returncode == 2 and 'Traceback' not in run.stderr, run.stderr[-1500:]
    lines = [l for l in run.stderr.splitlines() if l.startswith('train: error:')]
    assert len(lines) == 1 and args[0].split('=')[0].removeprefix('--') in lines[0], run.stderr[-800:]
    assert not os.path.exists(tmp_path / 'w' / 'config.json')


# ---------------------------------------------------------------------------------------------- outputs

def test_output_locations(tmp_path):
  afile = tmp_path / 'afile'
  afile.write_text('x')
  c = cli.Checks()
  assert c.output_file('output', str(tmp_path / 'new' / 'deeper' / 'p.csv'))
  assert not (tmp_path / 'new').exists()  # made with the file, not by the check (issue 35)
  assert not c.output_file('output', str(tmp_path))
  assert not c.output_file('output', str(afile / 'p.csv'))
  assert c.output_dir('out', str(tmp_path / 'o1'))
  assert not c.output_dir('out', str(afile))
  assert not c.output_dir('out', str(afile / 'sub'))
  assert len(c.errors) == 4
  with pytest.raises(ValueError, match='--out='):
    build.build(str(STRUCTURES), str(afile), progress=False)


def test_atomic_write_leaves_the_old_file_or_the_new(tmp_path):
  path = tmp_path / 'r.json'
  path.write_text('old')
  rng = np.random.default_rng(15)
  for k in range(3):
    with pytest.raises(RuntimeError):
      with outputs.write(str(path)) as f:
        f.write('x' * int(rng.integers(1, 10_000)))
        raise RuntimeError('killed half way')
    assert path.read_text() == 'old' and os.listdir(tmp_path) == ['r.json']
  with outputs.write(str(path)) as f:
    f.write('new')
  assert path.read_text() == 'new' and oct(path.stat().st_mode & 0o777) != oct(0o600)


# ------------------------------------------------------------------------------------ the training workdir

def test_trim_metrics_keeps_one_row_per_step(tmp_path):
  rng = np.random.default_rng(16)
  for _ in range(4):
    last = int(rng.integers(5, 50))
    start = int(rng.integers(1, last))
    rows = [{'step': s, 'train/loss': 1.0} for s in range(1, last + 1)]
    rows += [{'step': s, 'eval/x': 0.5} for s in range(2, last + 1, 2)]
    (tmp_path / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows) + '{"step": 9')
    workdir_lib.trim_metrics(str(tmp_path), start)
    kept = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
    assert kept == [r for r in rows if r['step'] <= start]


def test_a_changed_model_is_refused_before_the_workdir_is_touched(tiny_workdir, tmp_path):
  from difcon_jax import train
  import train_helpers
  work = tmp_path / 'work'
  shutil.copytree(tiny_workdir, work)
  corpus = json.load(open(work / 'config.json'))['corpus']
  before = {p: (work / p).read_bytes() for p in ('config.json', 'metrics.jsonl')}
  for field, value in (('width', 16), ('embedding_dim', 24)):
    c = train_helpers.tiny_config(corpus, steps=4)
    c.model[field] = value
    with pytest.raises(config_checks.ConfigError, match='different model') as e:
      train.train_and_evaluate(c, str(work))
    assert 'config.json' in str(e.value) and '\n' not in str(e.value)
    assert {p: (work / p).read_bytes() for p in before} == before


def test_a_resume_with_another_corpus_or_recipe_is_refused_before_the_workdir_is_touched(tiny_workdir, tmp_path):
  """Same model, other training: another corpus, learning rate or augmentation range would silently go on with
  other data or another recipe; steps (the cadence fields) may change."""
  from difcon_jax import train
  import train_helpers
  work = tmp_path / 'work'
  shutil.copytree(tiny_workdir, work)
  corpus = json.load(open(work / 'config.json'))['corpus']
  other = tmp_path / 'other_corpus'
  shutil.copytree(corpus, other)
  before = {p: (work / p).read_bytes() for p in ('config.json', 'metrics.jsonl')}
  changes = {'corpus': lambda c: setattr(c, 'corpus', str(other)),
             'optimizer.learning_rate': lambda c: setattr(c.optimizer, 'learning_rate', 0.5),
             'augment.U': lambda c: c.update({'augment': {'U': (0.001, 0.002)}})}
  for field, change in changes.items():
    c = train_helpers.tiny_config(corpus, steps=4)
    with c.unlocked():
      change(c)
    with pytest.raises(config_checks.ConfigError, match='another config') as e:
      train.train_and_evaluate(c, str(work))
    assert f'{field}:' in str(e.value) and 'config.json' in str(e.value) and '\n' not in str(e.value)
    assert {p: (work / p).read_bytes() for p in before} == before
  c = train_helpers.tiny_config(corpus, steps=3)  # the same recipe, one step more: resumed
  train.train_and_evaluate(c, str(work))
  assert max(json.loads(l)['step'] for l in open(work / 'metrics.jsonl')) == 3


def test_a_config_json_of_an_older_trainer_resumes_under_its_own_config(tmp_path):
  """Before config.json held the rendered augmentation ranges it held the overrides (unset): the same config is no
  change, an override is one, and a field the old record lacks is none."""
  import train_helpers
  c = train_helpers.tiny_config(str(tmp_path))
  old = json.loads(c.to_json_best_effort())
  assert not any(old['augment'].values())  # the overrides, none set
  del old['ema_decay']
  assert resume_checks.resume_changes(old, c) == ([], [])
  c.augment = {'U': (0.001, 0.002)}
  c.steps = 9
  refused, allowed = resume_checks.resume_changes(old, c)
  assert [r[0] for r in refused] == ['augment.U'] and allowed == [('steps', 2, 9)]


def test_resume_writes_each_step_once(tiny_workdir, tmp_path):
  """Rows written after the last checkpoint by a killed run are dropped and written once more."""
  from difcon_jax import train
  import train_helpers
  work = tmp_path / 'work'
  shutil.copytree(tiny_workdir, work)
  with open(work / 'metrics.jsonl', 'a') as f:  # a run that died at step 3, after its log, before its checkpoint
    f.write(json.dumps({'step': 3, 'train/loss': 99.0}) + '\n')
  c = train_helpers.tiny_config(json.load(open(work / 'config.json'))['corpus'], steps=3)
  train.train_and_evaluate(c, str(work))
  rows = [json.loads(l) for l in open(work / 'metrics.jsonl')]
  keys = [(r['step'], 'train/loss' in r) for r in rows]
  assert len(keys) == len(set(keys)) and 99.0 not in [r.get('train/loss') for r in rows]
  assert max(r['step'] for r in rows) == 3


# ------------------------------------------------------------------------------------------ unbounded work

def test_work_after_reading_is_bounded_by_the_grid(tmp_path, monkeypatch):
  from difcon_jax.evaluation import sets as eval_sets
  from difcon_jax import predict
  from difcon_jax.io import measured
  grid = grid_lib.config(2000, 0.0, 120.0)
  seen = []  # points left after the coarsening inside io.measured.to_grid, which predict and evaluate both call
  real = patterns.coarsen
  monkeypatch.setattr(patterns, 'coarsen', lambda p, n: (lambda c: (seen.append(len(c.two_theta)), c)[1])(real(p, n)))
  rng = np.random.default_rng(17)
  tt = np.linspace(5, 115, 400_000)
  y = 10 + sum(rng.uniform(10, 1000) * np.exp(-(tt - c) ** 2 / 0.01) for c in rng.uniform(10, 110, 20))
  np.savetxt(tmp_path / 'fine.xy', np.stack([tt, y], 1), fmt='%.6f %.3f')
  values, _ = predict.prepare(str(tmp_path / 'fine.xy'), grid, 1.5418)
  assert seen[-1] <= measured.MAX_POINTS_PER_BIN * 2000 and values.shape == (2000,)
  np.savez(tmp_path / 'set.npz', two_theta=tt, intensity=y[None], space_group=np.array([14]))
  seen.clear()
  eval_sets.read_measured(str(tmp_path / 'set.npz'), None, grid, 1.5418)
  assert seen and seen[-1] <= measured.MAX_POINTS_PER_BIN * 2000
  c = patterns.coarsen(patterns.from_arrays('f', tt, y), 1000)
  assert len(c.two_theta) <= 1000 and abs(c.intensity.mean() - y.mean()) < 1e-3 * y.mean()
  assert abs(c.two_theta[np.argmax(c.intensity)] - tt[np.argmax(y)]) < 0.5


# ------------------------------------------------------------------------------------------- broken pipes

def test_peaks_into_a_closed_pipe_ends_quietly():
  files = sorted(STRUCTURES.glob('*.cif'))
  proc = subprocess.Popen([sys.executable, '-m', 'difcon_jax.peaks', *map(str, files)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, cwd=ROOT)
  proc.stdout.readline()
  proc.stdout.close()  # `| head -1`
  err = proc.stderr.read().decode()
  assert proc.wait(timeout=120) in (0, 1) and 'Traceback' not in err and 'BrokenPipe' not in err, err
