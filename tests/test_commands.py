"""The commands as a newcomer meets them: --help, one spelling per flag, the libraries' log noise."""

import glob
import logging
import os
import subprocess
import sys

from absl import flags

from difcon_jax.io import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
