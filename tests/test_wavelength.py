import numpy as np
import pytest

from difcon_jax.crystallography import wavelength as wl


def test_round_trip():
  tt = np.linspace(5, 150, 50)
  back = wl.convert_two_theta(wl.convert_two_theta(tt, 1.5418, 0.7107), 0.7107, 1.5418)
  np.testing.assert_allclose(back, tt, rtol=0, atol=1e-9)


def test_same_d():
  tt_mo = np.array([10.0, 20.0, 30.0])
  tt_cu = wl.convert_two_theta(tt_mo, 0.7107, 1.5418)
  np.testing.assert_allclose(wl.two_theta_to_d(tt_mo, 0.7107), wl.two_theta_to_d(tt_cu, 1.5418), rtol=1e-12)
  # The paper's formula, written out.
  np.testing.assert_allclose(tt_cu, 2 * np.degrees(np.arcsin(1.5418 / 0.7107 * np.sin(np.radians(tt_mo) / 2))))


def test_truncation_when_target_wavelength_is_longer():
  # Mo 2θ' = 60° is d = 0.7107 Å: Cu (1.5418 Å) cannot reach it (λ/2d > 1).
  out = wl.convert_two_theta(np.array([30.0, 60.0]), 0.7107, 1.5418)
  assert np.isfinite(out[0]) and np.isnan(out[1])
  # The other way nothing is lost.
  assert np.all(np.isfinite(wl.convert_two_theta(np.linspace(1, 179, 100), 1.5418, 0.7107)))


def test_d_to_two_theta_out_of_reach():
  assert np.isnan(wl.d_to_two_theta(np.array([0.5]), 1.5418))[0]


def test_anodes():
  assert wl.anode_wavelength('cu') == 1.5418
  assert wl.anode_wavelength('Mo') == pytest.approx(0.7107)
  with pytest.raises(ValueError, match='unknown anode'):
    wl.anode_wavelength('Xx')


@pytest.mark.slow
def test_predict_wavelength_flag_is_the_measurement_wavelength(tmp_path):
  """predict --wavelength: a Mo Kα scan whose file states no wavelength, or the wrong one, is predicted exactly as
  the same scan whose header says 0.7107 Å (the flag comes before the file's header), with a warning only where the
  header says another wavelength."""
  import csv
  import os
  import subprocess
  import sys
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  example = os.path.join(root, 'examples', 'quartz_mo.xy')  # header: 'wavelength 0.7107 A'
  data = [l for l in open(example).read().splitlines() if not l.startswith('#')]
  (tmp_path / 'bare.xy').write_text('\n'.join(data) + '\n')
  (tmp_path / 'wrong.xy').write_text('# wavelength 1.5418\n' + '\n'.join(data) + '\n')
  out = tmp_path / 'p.csv'
  run = subprocess.run([sys.executable, '-m', 'difcon_jax.predict', '--wavelength=0.7107', '--output', str(out),
                        '--input', example, str(tmp_path / 'bare.xy'), str(tmp_path / 'wrong.xy')],
                       capture_output=True, text=True, cwd=root)
  assert run.returncode == 0, run.stderr[-2000:]
  rows = {os.path.basename(r['file']): r for r in csv.DictReader(open(out))}
  ranked = lambda r: {k: v for k, v in r.items() if k not in ('file', 'warning', 'index_seconds')}  # not timings
  assert ranked(rows['bare.xy']) == ranked(rows['quartz_mo.xy']) == ranked(rows['wrong.xy'])
  # (Without the flag the bare file would be read as Cu Kα with a 'no wavelength' warning.) The file whose header
  # says another wavelength is read at the flag's, and its row says so, naming both (issue 35).
  assert not rows['bare.xy']['warning'] and not rows['quartz_mo.xy']['warning']
  assert '1.5418' in rows['wrong.xy']['warning'] and '0.7107' in rows['wrong.xy']['warning']
