"""Readers of measured pattern files, including broken ones."""

import numpy as np
import pytest

from difcon_jax.io import inputs
from difcon_jax.io import patterns
import codecs
import json
import os
import threading

from difcon_jax.crystallography import pattern_grid as grid_lib
from difcon_jax.io import labelled
from difcon_jax.io import measured
import input_helpers


def _xy(n=50):
  tt = np.linspace(10, 60, n)
  return tt, 100 + 1000 * np.exp(-((tt - 30) / 0.2) ** 2)


def test_two_column_variants(tmp_path):
  tt, y = _xy()
  body = '\n'.join(f'{a:.4f} {b:.2f}' for a, b in zip(tt, y))
  files = {
      'plain.xy': body,
      'header.xye': '# measured on a lab diffractometer\n# wavelength = 1.5406\n2theta intensity esd\n' + '\n'.join(
          f'{a:.4f}\t{b:.2f}\t{np.sqrt(b):.2f}' for a, b in zip(tt, y)),
      'comma.csv': 'two_theta,intensity\n' + '\n'.join(f'{a:.4f},{b:.2f}' for a, b in zip(tt, y)),
      'semicolon.txt': '\n'.join(f'{a:.4f}; {b:.2f}' for a, b in zip(tt, y)),
      'quoted.csv': '"2theta","counts"\n' + '\n'.join(
          f'"{a:.4f}","{b:.2f}"'.replace('.', ',') for a, b in zip(tt, y)),
      'rruff.txt': '##NAMES=Quartz\n##X-RAY WAVELENGTH=1.541838\n' + '\n'.join(
          f'{a:.4f}, {b:.2f}' for a, b in zip(tt, y)) + '\n##END=\n',
  }
  for name, text in files.items():
    (tmp_path / name).write_text(text)
    p = patterns.read_pattern(str(tmp_path / name))
    np.testing.assert_allclose(p.two_theta, tt, atol=1e-4)
    np.testing.assert_allclose(p.intensity, y, atol=1e-2)
  assert patterns.read_pattern(str(tmp_path / 'header.xye')).wavelength == 1.5406
  assert patterns.read_pattern(str(tmp_path / 'rruff.txt')).wavelength == 1.541838
  assert patterns.read_pattern(str(tmp_path / 'plain.xy')).wavelength is None


def test_xrdml(tmp_path):
  tt, y = _xy(40)
  xml = f'''<?xml version="1.0" encoding="UTF-8"?>
<xrdMeasurements xmlns="http://www.xrdml.com/XRDMeasurement/1.5">
 <xrdMeasurement measurementType="Scan" status="Completed">
  <usedWavelength intended="K-Alpha 1"><kAlpha1 unit="Angstrom">1.5405980</kAlpha1>
   <kAlpha2 unit="Angstrom">1.5444260</kAlpha2><ratioKAlpha2KAlpha1>0.5</ratioKAlpha2KAlpha1></usedWavelength>
  <scan><dataPoints>
   <positions axis="2Theta" unit="deg"><startPosition>{tt[0]}</startPosition><endPosition>{tt[-1]}</endPosition></positions>
   <positions axis="Omega" unit="deg"><startPosition>5</startPosition><endPosition>30</endPosition></positions>
   <intensities unit="counts">{' '.join(f'{v:.1f}' for v in y)}</intensities>
  </dataPoints></scan></xrdMeasurement></xrdMeasurements>'''
  (tmp_path / 'a.xrdml').write_text(xml)
  p = patterns.read_pattern(str(tmp_path / 'a.xrdml'))
  np.testing.assert_allclose(p.two_theta, tt, atol=1e-9)
  np.testing.assert_allclose(p.intensity, np.round(y, 1))
  assert p.wavelength == pytest.approx((1.540598 + 0.5 * 1.544426) / 1.5)


def test_gsas_fxye(tmp_path):
  tt, y = _xy(30)
  text = 'Quartz lab data\nBANK 1 30 30 CONS 1000 172.4 0 0 FXYE\n' + '\n'.join(
      f'{a * 100:.2f} {b:.2f} {np.sqrt(b):.2f}' for a, b in zip(tt, y))
  (tmp_path / 'a.fxye').write_text(text)
  p = patterns.read_pattern(str(tmp_path / 'a.fxye'))
  np.testing.assert_allclose(p.two_theta, tt, atol=1e-4)


def test_xrdml_list_positions(tmp_path):
  """Scans with unequal steps list every 2θ (<listPositions>) instead of a start and an end."""
  tt = np.array([10.0, 10.02, 10.05, 10.09, 10.14, 10.2, 10.27, 10.35, 10.44, 10.54, 10.65, 10.77])
  y = np.arange(12) * 10.0 + 5.0
  xml = f"""<?xml version="1.0"?><xrdMeasurements xmlns="http://www.xrdml.com/XRDMeasurement/2.0">
 <xrdMeasurement><scan><dataPoints>
  <positions axis="Omega" unit="deg"><listPositions>{' '.join(str(t / 2 + 1) for t in tt)}</listPositions></positions>
  <positions axis="2Theta" unit="deg"><listPositions>{' '.join(map(str, tt))}</listPositions></positions>
  <counts unit="counts">{' '.join(map(str, y))}</counts>
 </dataPoints></scan></xrdMeasurement></xrdMeasurements>"""
  (tmp_path / 'list.xrdml').write_text(xml)
  p = patterns.read_pattern(str(tmp_path / 'list.xrdml'))
  np.testing.assert_array_equal(p.two_theta, tt)  # the 2θ axis's list, not the ω axis's, and not a linspace
  np.testing.assert_array_equal(p.intensity, y)
  assert p.wavelength is None


def test_gsas_std(tmp_path):
  """GSAS STD: BANK 1 nchan nrec CONS start step 0 0 STD, start and step in centidegrees, then the counts ten to a
  line in 8-character fields; the last line is short and counts past nchan are not read."""
  counts = np.arange(25) * 7 + 3
  lines = [''.join(f'{c:8d}' for c in counts[i:i + 10]) for i in range(0, 25, 10)]
  text = 'lab data, STD\nBANK 1 24 3 CONS 1000.0 5.0 0 0 STD\n' + '\n'.join(lines) + '\n'
  (tmp_path / 'a.gsa').write_text(text)
  p = patterns.read_pattern(str(tmp_path / 'a.gsa'))
  np.testing.assert_allclose(p.two_theta, 10.0 + 0.05 * np.arange(24))  # 1000 centidegrees, steps of 5
  np.testing.assert_array_equal(p.intensity, counts[:24])


@pytest.mark.parametrize('name,text,reason', [
    ('empty.xy', '', 'no numeric data'),
    ('words.xy', '10 5\n11 6\n12 seven\n', 'not numbers'),
    ('one.xy', '10\n11\n12\n', 'one column'),
    ('nan.xy', '\n'.join(f'{10 + i} {"nan" if i == 5 else 3}' for i in range(20)), 'NaN'),
    ('neg.xy', '\n'.join(f'{10 + i} {-100 if i == 5 else 3}' for i in range(20)), 'negative'),
    ('range.xy', '\n'.join(f'{170 + i} 3' for i in range(20)), 'outside'),
    ('short.xy', '10 1\n11 2\n', 'only 2 data points; a pattern needs at least 10'),
    ('one.xy', '10 1\n', 'only 1 data point; a pattern needs at least 10'),
    ('decimal_comma.csv', '\n'.join(f'{10 + i // 50},{i % 50:02d},{300 + i},5' for i in range(200)), 'distinct 2θ'),
    ('bad.xrdml', '<xml', 'cannot read'),
    ('bad.fxye', 'no bank here\n1 2\n', 'BANK'),
    ('bruker.raw', 'RAW1.01', 'Bruker'),
])
def test_bad_files_say_which_and_why(tmp_path, name, text, reason):
  path = tmp_path / name
  path.write_text(text)
  with pytest.raises(patterns.PatternError) as e:
    patterns.read_pattern(str(path))
  assert str(e.value).startswith(str(path)) and reason in str(e.value)


def test_missing_file(tmp_path):
  with pytest.raises(patterns.PatternError, match='no such file'):
    patterns.read_pattern(str(tmp_path / 'nope.xy'))


def test_expand_inputs(tmp_path):
  (tmp_path / 'sub').mkdir()
  for n in ('a.xy', 'sub/b.xrdml', 'sub/c.csv', 'notes.md'):
    (tmp_path / n).write_text('x')
  found = inputs.expand_inputs([str(tmp_path)])
  assert [p.split('/')[-1] for p in found] == ['a.xy', 'b.xrdml', 'c.csv']
  assert inputs.expand_inputs([str(tmp_path / 'sub' / '*.csv')]) == [str(tmp_path / 'sub' / 'c.csv')]


def _random_xy(rng, n=300):
  tt = np.sort(rng.uniform(5, 100, n))
  return tt, rng.uniform(1, 1000, n)


def _read(tmp_path, name, text):
  path = tmp_path / name
  path.write_text(text)
  return patterns.read_pattern(str(path))


_XRDML = ('<xrdMeasurements><xrdMeasurement><usedWavelength><kAlpha1 unit="Angstrom">1.5406</kAlpha1>'
          '</usedWavelength>{scans}</xrdMeasurement></xrdMeasurements>')


_SCAN = ('<scan scanAxis="{axis}"><dataPoints><positions axis="2Theta" unit="deg"><startPosition>10'
         '</startPosition><endPosition>80</endPosition></positions><intensities unit="counts">{counts}</intensities>'
         '</dataPoints></scan>')


def test_every_reader_failure_is_a_pattern_error(tmp_path):
  """Fixed broken files of each format, and random garbage and cut-off files: PatternError, nothing else."""
  rng = np.random.default_rng(6)
  tt, y = _random_xy(rng)
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
  tt, y = _random_xy(rng)
  np.savetxt(tmp_path / 'a.xy', np.stack([tt, y], 1))
  (tmp_path / 'labels.csv').write_text('file,space_group,wavelength\na.xy,14,\nmissing.xy,14,\na.xy,0,\na.xy,14,-1\n')
  items = labelled.read_folder(str(tmp_path), str(tmp_path / 'labels.csv'))
  assert [bool(i.error) for i in items] == [False, True, True, True]
  assert 'no such file' in items[1].error and '1-230' in items[2].error and 'wavelength' in items[3].error
  (tmp_path / 'bad.csv').write_text('name,sg\na.xy,14\n')
  with pytest.raises(patterns.PatternError, match='no column'):
    labelled.read_folder(str(tmp_path), str(tmp_path / 'bad.csv'))


def test_decimal_commas_are_read_as_decimals(tmp_path):
  rng = np.random.default_rng(10)
  for k in range(6):
    tt, y = _random_xy(rng)
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
  tt, y = _random_xy(rng)
  path.write_text('\n'.join(f'{a:.3f},{b:.2f}' for a, b in zip(tt, y)))
  p = patterns.read_pattern(str(path))
  np.testing.assert_allclose(p.two_theta, np.round(tt, 3)) and not p.warnings


def test_patterns_that_would_be_predicted_wrongly_are_refused(tmp_path):
  rng = np.random.default_rng(11)
  for k in range(4):
    tt, y = _random_xy(rng)
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
  tt, y = _random_xy(rng)
  lines = [f'{a:.3f} {b:.2f}' for a, b in zip(tt, y)]
  lines[100] = 'NaN NaN'
  path.write_text('\n'.join(lines))
  assert 'NaN' in patterns.read_pattern(str(path)).warnings[0]


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


def test_encodings_from_windows_software(tmp_path):
  rng = np.random.default_rng(3)
  tt, y, body = input_helpers.pattern_text(rng)
  header = '# Scan 2θ 10-80°, wavelength = 1.5406 Å, 40 kV\n'
  for name, data, warned in (('utf16.xy', codecs.BOM_UTF16_LE + (header + body).encode('utf-16-le'), False),
                             ('utf16be.xy', codecs.BOM_UTF16_BE + (header + body).encode('utf-16-be'), False),
                             ('cp1252.xy', (header.replace('θ', '') + '# “q”\n' + body).encode('cp1252'), True),
                             ('latin1.xy', (header.replace('θ', '') + body).encode('latin-1'), True)):
    (tmp_path / name).write_bytes(data)
    p = patterns.read_pattern(str(tmp_path / name))
    np.testing.assert_allclose(p.two_theta, np.round(tt, 3))
    np.testing.assert_allclose(p.intensity, np.round(y, 1))
    assert p.wavelength == pytest.approx(1.5406), name
    assert any('not UTF-8' in w for w in p.warnings) == warned, (name, p.warnings)
  (tmp_path / 'binary.xy').write_bytes(bytes(rng.integers(0, 256, 3000, dtype=np.uint8)))
  with pytest.raises(patterns.PatternError, match='binary'):
    patterns.read_pattern(str(tmp_path / 'binary.xy'))


def test_thousands_separators_are_read_right_or_refused(tmp_path):
  rng = np.random.default_rng(4)
  tt = np.linspace(10, 80, 300)
  y = rng.uniform(200, 90_000, 300).round()
  thousands = lambda v: f'{int(v):,}'
  files = {  # name -> (text, intensities expected, or words of the refusal)
      'us.xy': ('\n'.join(f'{a:.2f} {thousands(b)}' for a, b in zip(tt, y)), y),
      'us_quoted.csv': ('"2theta","counts"\n' + '\n'.join(f'"{a:.2f}","{thousands(b)}"' for a, b in zip(tt, y)), y),
      'us_semicolon.csv': ('\n'.join(f'{a:.2f};{thousands(b)}' for a, b in zip(tt, y)), y),
      'european.xy': ('\n'.join(f'{a:.2f} {b / 1000:.3f}'.replace('.', ',') for a, b in zip(tt, y)), y / 1000),
      'ambiguous.xy': ('\n'.join(f'{int(a)} {thousands(b)}' for a, b in zip(tt, y)), 'cannot tell'),
      'mixed.xy': ('\n'.join(f'{a:.2f}'.replace('.', ',') + f' {thousands(b)}.5' for a, b in zip(tt, y)),
                   'as decimal commas .* and as thousands separators'),
  }
  for name, (text, expected) in files.items():
    path = tmp_path / name
    path.write_text(text + '\n')
    if isinstance(expected, str):
      with pytest.raises(patterns.PatternError, match=expected):
        patterns.read_pattern(str(path))
      continue
    p = patterns.read_pattern(str(path))
    np.testing.assert_allclose(p.intensity, expected, rtol=1e-9, err_msg=name)
    np.testing.assert_allclose(p.two_theta, np.round(tt, 2), err_msg=name)
    assert any(('thousands' if 'us' in name else 'decimal commas') in w for w in p.warnings), (name, p.warnings)
  path = tmp_path / 'nbsp.xy'  # no-break spaces between digit groups (French, from spreadsheet exports)
  path.write_text('\n'.join(f'{a:.2f}\t{thousands(b)}'.replace(',', '\u00a0') for a, b in zip(tt, y)) + '\n')
  np.testing.assert_allclose(patterns.read_pattern(str(path)).intensity, y)
  path = tmp_path / 'one.xy'  # a single separated value among plain ones is still found
  path.write_text('\n'.join(f'{a:.2f} {int(b) if i != 150 else thousands(b + 1000)}'
                            for i, (a, b) in enumerate(zip(tt, y))) + '\n')
  assert patterns.read_pattern(str(path)).intensity[150] == y[150] + 1000


def test_wavelength_units_in_headers(tmp_path):
  rng = np.random.default_rng(5)
  _, _, body = input_helpers.pattern_text(rng)
  for header, expected in (('# Wavelength (nm): 0.07107', 0.7107), ('# wavelength = 0.15406 nm', 1.5406),
                           ('# Wavelength [Å]: 1.5406', 1.5406), ('# lambda = 154.06 pm', 1.5406),
                           ('# Wavelength: 1.5406 A', 1.5406), ('# Wavelength 1.5406', 1.5406),
                           ('# Wellenlänge / wavelength: 1,5406', 1.5406),
                           ('# X-ray wavelength (keV): 17.479', 12.398419843320026 / 17.479)):
    (tmp_path / 'p.xy').write_text(header + '\n' + body)
    assert patterns.read_pattern(str(tmp_path / 'p.xy')).wavelength == pytest.approx(expected), header
  (tmp_path / 'p.xy').write_text('# Wavelength (cm): 1.5406e-8\n# wavelength 0.0000000154 cm\n' + body)
  with pytest.raises(patterns.PatternError, match='cm'):
    patterns.read_pattern(str(tmp_path / 'p.xy'))
  counts = ' '.join(f'{v:.1f}' for v in rng.uniform(1, 100, 50))
  (tmp_path / 'nm.xrdml').write_text(
      f'<x><kAlpha1 unit="nm">0.15406</kAlpha1><positions axis="2Theta"><startPosition>10</startPosition>'
      f'<endPosition>60</endPosition></positions><intensities>{counts}</intensities></x>')
  assert patterns.read_pattern(str(tmp_path / 'nm.xrdml')).wavelength == pytest.approx(1.5406)


def test_globs_and_folders_cut_loops_and_list_each_file_once(tmp_path):
  data = tmp_path / 'data'
  (data / 'sub').mkdir(parents=True)
  for n in ('a.xy', 'sub/b.xy'):
    (data / n).write_text('x')
  os.symlink('.', data / 'self')
  os.symlink('..', data / 'sub' / 'up')
  code = ('import json, sys; from difcon_jax.io import inputs; '
          'print(json.dumps([inputs.expand_inputs([a]) for a in sys.argv[1:]]))')
  run = input_helpers.run('-c', code, str(data / '**' / '*.xy'), str(data), timeout=60)
  assert run.returncode == 0, run.stderr[-1000:]
  for found in json.loads(run.stdout):
    assert sorted(os.path.realpath(p) for p in found) == [str(data / 'a.xy'), str(data / 'sub' / 'b.xy')], found


def test_fifos_in_an_input_folder_are_refused_unopened(tmp_path):
  rng = np.random.default_rng(6)
  (tmp_path / 'good.xy').write_text(input_helpers.pattern_text(rng)[2])
  fifo = tmp_path / 'pipe.xy'
  os.mkfifo(fifo)
  found = inputs.expand_inputs([str(tmp_path)])
  assert sorted(os.path.basename(p) for p in found) == ['good.xy', 'pipe.xy']
  results = {}

  def read_all():
    for p in found:
      try:
        patterns.read_pattern(p)
        results[p] = 'ok'
      except patterns.PatternError as e:
        results[p] = str(e)
  reader = threading.Thread(target=read_all, daemon=True)
  reader.start()
  reader.join(30)
  if reader.is_alive():  # unblock the reader before failing
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    os.close(fd)
  assert not reader.is_alive(), 'read_pattern blocked on a FIFO'
  assert results[str(tmp_path / 'good.xy')] == 'ok'
  assert results[str(fifo)].startswith(str(fifo)) and 'FIFO' in results[str(fifo)]


def test_overflowing_counts_and_scans_with_nothing_left_are_named(tmp_path):
  rng = np.random.default_rng(7)
  tt, y, _ = input_helpers.pattern_text(rng)
  (tmp_path / 'huge.xy').write_text('\n'.join(f'{a:.3f} {b / y.max() * 1.7e308:.6g}' for a, b in zip(tt, y)))
  with pytest.raises(patterns.PatternError, match='overflow'):
    patterns.read_pattern(str(tmp_path / 'huge.xy'))
  # Measured with Mo Kα at 60-100°: at the Cu Kα training wavelength none of it has a counterpart.
  high = patterns.from_arrays('mo.xy', np.linspace(60, 100, 400), y)
  with pytest.raises(patterns.PatternError, match='nothing to predict') as e:
    measured.to_grid(high, grid_lib.config(2000), 0.7107)
  assert str(e.value).startswith('mo.xy')


def test_several_blocks_in_a_text_file_read_the_first_and_say_so(tmp_path):
  two = '# scan 1\n' + input_helpers.pattern_lines() + '# scan 2\n' + input_helpers.pattern_lines(scale=2)
  p = _read(tmp_path, 'blocks.xy', two)
  assert len(p.two_theta) == 400 and any('2 blocks' in w for w in p.warnings)
  p = _read(tmp_path, 'restart.xy', input_helpers.pattern_lines() + input_helpers.pattern_lines(scale=2))  # no header between
  assert len(p.two_theta) == 400 and any('starts again' in w for w in p.warnings)
  p = _read(tmp_path, 'footer.xy', input_helpers.pattern_lines() + 'END\n')  # a footer is no second block
  assert len(p.two_theta) == 400 and not p.warnings


def test_another_axis_than_two_theta_is_refused(tmp_path):
  for name, header in (('d.xy', '# d-spacing (A)  Intensity\n'), ('q.xy', 'Q (1/A) I\n'),
                       ('tof.xy', '# TOF counts\n')):
    with pytest.raises(patterns.PatternError, match='not 2θ'):
      _read(tmp_path, name, header + input_helpers.pattern_lines())
  assert not _read(tmp_path, 'tth.xy', '# 2theta d-spacing I\n' + input_helpers.pattern_lines()).warnings


def test_xrdml_with_several_scans_or_another_axis(tmp_path):
  y = 50 + 1000 * np.exp(-((np.linspace(10, 80, 400) - 30) / 0.2) ** 2)
  counts = ' '.join(f'{v:.0f}' for v in y)
  scan = _SCAN.format(axis='Gonio', counts=counts)
  p = _read(tmp_path, 'two.xrdml', _XRDML.format(scans=scan + _SCAN.format(axis='Gonio', counts=counts + ' 5')))
  assert len(p.two_theta) == 400 and any('2 scans' in w for w in p.warnings)
  with pytest.raises(patterns.PatternError, match='Omega'):
    _read(tmp_path, 'rocking.xrdml', _XRDML.format(scans=_SCAN.format(axis='Omega', counts=counts)))


def test_fortran_exponents_and_quoted_spreadsheet_exports(tmp_path):
  p = _read(tmp_path, 'fortran.dat', input_helpers.pattern_lines('{:.6E} {:.6E}').replace('E', 'D'))
  assert len(p.two_theta) == 400 and p.two_theta.max() == pytest.approx(80)
  quoted = 'Angle;Intensity\n' + input_helpers.pattern_lines('"{:.3f}";"{:.1f}"').replace('.', ',')
  p = _read(tmp_path, 'sheet.csv', quoted)
  assert len(p.two_theta) == 400 and p.two_theta.max() == pytest.approx(80)


def test_the_input_finder_says_what_it_passed_over(tmp_path):
  folder = tmp_path / 'in'
  folder.mkdir()
  (folder / 'a.xy').write_text('1 2\n')
  (folder / 'noext').write_text('1 2\n')
  (folder / 'notes.docx').write_bytes(b'x')
  (folder / '.DS_Store').write_bytes(b'x')
  (tmp_path / 'empty').mkdir()
  found = inputs.find_inputs([str(folder), str(tmp_path / 'empty'), str(tmp_path / 'z*.xy')])
  assert found.paths == [str(folder / 'a.xy')]
  said = '\n'.join(found.skipped)
  assert 'noext: no suffix' in said and 'notes.docx' in said and '.DS_Store' not in said
  assert 'empty: a folder with no pattern file' in said and 'z*.xy: no file matches' in said
