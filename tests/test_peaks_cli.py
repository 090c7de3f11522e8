import json
import subprocess
import sys

from conftest import STRUCTURES
import input_helpers


def _run(*args):
  return subprocess.run([sys.executable, '-m', 'difcon_jax.peaks', *map(str, args)], capture_output=True, text=True)


def test_jsonl_one_object_per_file_and_errors_do_not_stop_the_rest(tmp_path):
  bad = tmp_path / 'broken.cif'
  bad.write_text('data_broken\n_cell_length_a 3\n')
  out = _run(STRUCTURES / 'nacl.cif', bad, STRUCTURES / 'quartz.cif', '--wavelength', '1.5406',
             '--two_theta_min', '5', '--two_theta_max', '90', '--format', 'jsonl')
  assert out.returncode == 1
  records = [json.loads(line) for line in out.stdout.splitlines()]
  assert [r['file'] for r in records] == [str(STRUCTURES / 'nacl.cif'), str(bad), str(STRUCTURES / 'quartz.cif')]
  nacl, broken, quartz = records
  assert set(nacl) >= {'file', 'formula', 'space_group', 'crystal_system', 'extinction_group', 'peaks'}
  assert nacl['space_group'] == 225 and nacl['crystal_system'] == 'cubic' and nacl['formula'] == 'Cl Na'
  assert max(p['intensity'] for p in nacl['peaks']) == 100.0
  first = nacl['peaks'][0]
  assert set(first) == {'two_theta', 'd', 'hkl', 'multiplicity', 'intensity'}
  assert abs(first['two_theta'] - 27.366) < 0.01 and sorted(map(abs, first['hkl'])) == [1, 1, 1]
  assert all(5 <= p['two_theta'] <= 90 for p in quartz['peaks'])
  assert set(broken) == {'file', 'error'} and 'broken.cif' in broken['error']
  assert 'broken.cif' in out.stderr and 'Traceback' not in out.stderr


def test_table_and_anode():
  out = _run(STRUCTURES / 'si.cif', '--anode', 'Mo', '--two_theta_max', '30')
  assert out.returncode == 0, out.stderr
  assert 'Fd-3m (227)' in out.stdout and 'λ = 0.7107' in out.stdout
  rows = [l for l in out.stdout.splitlines() if l and not l.startswith('#') and not l.lstrip().startswith('2theta')]
  assert float(rows[0].split()[0]) < 14  # Si 111 moves from 28.4° (Cu) to about 13° (Mo)


def test_peaks_into_a_closed_pipe_ends_quietly():
  files = sorted(STRUCTURES.glob('*.cif'))
  proc = subprocess.Popen([sys.executable, '-m', 'difcon_jax.peaks', *map(str, files)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, cwd=input_helpers.ROOT)
  proc.stdout.readline()
  proc.stdout.close()  # `| head -1`
  err = proc.stderr.read().decode()
  assert proc.wait(timeout=120) in (0, 1) and 'Traceback' not in err and 'BrokenPipe' not in err, err
