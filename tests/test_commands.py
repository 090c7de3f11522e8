"""The commands as a newcomer meets them: --help, one spelling per flag, the libraries' log noise."""

import glob
import logging
import os
import subprocess
import sys

from absl import flags

from difcon_jax.io import cli
import numpy as np
import pytest

from conftest import STRUCTURES
import input_helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_help_exits_0_and_shows_the_configs_and_one_spelling_per_flag():
  procs = {m: subprocess.Popen([sys.executable, '-m', f'difcon_jax.{m}', '--help'], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=ROOT)
           for m in ('predict', 'evaluate', 'train', 'data.build', 'index', 'peaks', 'export', 'hand', 'similarity',
                     'data.synthetic')}
  out = {}
  for m, p in procs.items():
    out[m], err = p.communicate(timeout=300)
    assert p.returncode == 0, (m, err[-1500:])
    assert 'flags:' in out[m] or 'Flags' in out[m], m
  configs = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, 'configs', '*.py')))
  assert configs and all(c in out['train'].replace('\n    ', ' ') for c in configs)
  assert "(default: 'None')" not in out['train'].split('--config:')[1].split('--workdir:')[0]
  assert out['predict'].count('--top_k:') == 1 and '--top-k' not in out['predict']
  for flag in ('--format:', '--report:'):
    assert flag in out['predict']
  assert '--report:' in out['evaluate'] and '--rebuild' in out['data.build']
  assert '--fit_combination' in out['index'] and '--output:' in out['index']
  for flag in ('--input:', '--anode:', '--wavelength:', '--index_budget:'):
    assert flag in out['predict'], flag


def test_a_flag_spelt_with_dashes_is_read_as_its_one_spelling():
  if 'difcon_test_top_k' not in flags.FLAGS:
    flags.DEFINE_integer('difcon_test_top_k', 5, 'a flag of this test')
    flags.DEFINE_bool('difcon_test_switch', True, 'a flag of this test')
  args = ['--difcon-test-top-k=3', '-difcon-test-top-k', '4', '--nodifcon-test-switch', '--unknown-flag=1',
          'a-file.xy', '--', '--difcon-test-top-k=9']
  assert cli._underscored(args) == ['--difcon_test_top_k=3', '-difcon_test_top_k', '4', '--nodifcon_test_switch',
                                    '--unknown-flag=1', 'a-file.xy', '--', '--difcon-test-top-k=9']


def _record(path, level):
  return logging.LogRecord('x', level, path, 1, 'message', None, None)


def test_library_records_below_their_threshold_are_hidden():
  site = '/venv/lib/python3.11/site-packages'
  hidden = [_record(f'{site}/jax/_src/xla_bridge.py', logging.INFO),  # "Unable to initialize backend 'tpu'"
            _record(f'{site}/orbax/checkpoint/checkpoint_manager.py', logging.WARNING),  # missing metadata
            _record(f'{site}/tensorflow_datasets/core/writer.py', logging.INFO)]
  shown = [_record(f'{site}/jax/_src/xla_bridge.py', logging.WARNING),  # e.g. a GPU without a CUDA jaxlib
           _record(f'{site}/orbax/checkpoint/checkpoint_manager.py', logging.ERROR),
           _record('/work/difcon_jax/train.py', logging.INFO),  # our own progress lines
           _record('/home/me/jax/difcon_jax/data/build.py', logging.INFO),  # ours, in a folder named jax
           _record(f'{site}/numpy/core/foo.py', logging.INFO)]
  assert [cli._library_noise(r) for r in hidden] == [False] * 3
  assert [cli._library_noise(r) for r in shown] == [True] * 5


_PROGRAM = r'''
import logging, sys
from absl import app
from absl import logging as absl_logging
from difcon_jax.io import cli

def main(argv):
  site = '/venv/lib/python3.11/site-packages/jax/_src/xla_bridge.py'
  logging.getLogger('jax._src.xla_bridge').handle(
      logging.LogRecord('jax._src.xla_bridge', logging.INFO, site, 849, "Unable to initialize backend 'tpu'",
                        None, None))
  absl_logging.info('our own line')

app.run(main, flags_parser=cli.parse_flags)
'''


def test_noise_is_hidden_unless_verbosity_is_given():
  quiet = subprocess.run([sys.executable, '-c', _PROGRAM], capture_output=True, text=True, cwd=ROOT)
  loud = subprocess.run([sys.executable, '-c', _PROGRAM, '--verbosity=0'], capture_output=True, text=True,
                        cwd=ROOT)
  assert quiet.returncode == loud.returncode == 0, quiet.stderr + loud.stderr
  assert 'our own line' in quiet.stderr and 'Unable to initialize' not in quiet.stderr
  assert 'our own line' in loud.stderr and "Unable to initialize backend 'tpu'" in loud.stderr


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


def test_command_lines_are_refused_before_any_work(tmp_path):
  afile = tmp_path / 'afile'
  afile.write_text('x')
  out = input_helpers.refused(input_helpers.run('-m', 'difcon_jax.peaks', STRUCTURES / 'nacl.cif', '--wavelength=nan', '--default_b=-100',
                         '--workers=0', '--two_theta_min=50', '--two_theta_max=40', '--min_intensity=-1'))
  for flag in ('wavelength', 'default_b', 'workers', 'two_theta_max', 'min_intensity'):
    assert f'--{flag}=' in out
  assert input_helpers.run('-m', 'difcon_jax.peaks', STRUCTURES / 'nacl.cif', '--anode=Zz').stderr.count('one of Cu') == 1
  out = input_helpers.refused(input_helpers.run('-m', 'difcon_jax.data.build', f'--cifs={STRUCTURES}', f'--out={afile}', '--workers=-1',
                         '--max_peaks=0', '--test_fraction=2', '--wavelength=0', '--two_theta_max=180'))
  for flag in ('out', 'workers', 'max_peaks', 'test_fraction', 'wavelength', 'two_theta_max'):
    assert f'--{flag}=' in out
  out = input_helpers.refused(input_helpers.run('-m', 'difcon_jax.data.build', f'--cifs={STRUCTURES}', f'--out={afile}/sub'))
  assert '--out=' in out


def test_help_spells_flags_as_the_parser_takes_them():
  code = ('import importlib, re, sys; from absl import flags; m = importlib.import_module(sys.argv[1]); '
          'getattr(m, "define_flags", lambda: None)(); '
          'used = set(re.findall(r"--([a-z][a-z_-]*)", m.__doc__)); '
          'print(sorted(u for u in used if u not in flags.FLAGS and not u.startswith("config") '
          'and not (u.startswith("no") and u[2:] in flags.FLAGS)))')  # --noX: absl's negation of a bool flag
  procs = {m: subprocess.Popen([sys.executable, '-c', code, m], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=input_helpers.ROOT)
           for m in ('difcon_jax.peaks', 'difcon_jax.data.build', 'difcon_jax.predict', 'difcon_jax.evaluate',
                     'difcon_jax.train')}
  for m, p in procs.items():
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-1500:]
    assert out.strip() == '[]', (m, out)


def test_help_lists_the_flags_helpers_define():
  run = input_helpers.run('-m', 'difcon_jax.predict', '--help')
  assert run.returncode == 0
  for flag in ('--input', '--anode', '--wavelength', '--checkpoint'):
    assert f'  {flag}' in run.stdout + run.stderr, flag
  sweep = input_helpers.run('launch/sweep.py', '--help')
  assert sweep.returncode == 0 and '--sweep' in sweep.stdout + sweep.stderr
