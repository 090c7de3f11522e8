"""Readers of measured pattern files, including broken ones."""

import numpy as np
import pytest

from difcon_jax.io import patterns


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
  found = patterns.expand_inputs([str(tmp_path)])
  assert [p.split('/')[-1] for p in found] == ['a.xy', 'b.xrdml', 'c.csv']
  assert patterns.expand_inputs([str(tmp_path / 'sub' / '*.csv')]) == [str(tmp_path / 'sub' / 'c.csv')]
