"""Augmentation distributions as data: ranges set from a training config reach the kernel, config.json records
them, and overrides a distribution cannot take are refused one line each."""

import json
import os
import pathlib
import subprocess
import sys

from absl import flags
import jax
import numpy as np
import pytest
from ml_collections import config_flags

from difcon_jax import config_base
from difcon_jax.crystallography import pattern_grid as grid
from difcon_jax.training import config_checks
from difcon_jax.augment import kernel
from difcon_jax.augment import params

ROOT = pathlib.Path(__file__).parent.parent
GRID = dict(num_bins=3000, two_theta_max=60.0)  # 0.02° bins: small enough to compile fast


def _config(augmentation='train', **augment):
  c = config_base.paper_config()
  c.corpus = 'corpus'
  c.augmentation = augmentation
  for k, v in augment.items():
    c.augment[k] = v
  return c


def _kernel_config(config):
  """The kernel's config as the trainer builds it from a training config."""
  return params.config(config.augmentation, GRID['num_bins'], GRID['two_theta_max'], overrides=config.get('augment'))


@pytest.mark.slow
def test_a_range_set_in_the_config_reaches_the_draws_and_the_pattern():
  # What the kernel draws: every U of a batch inside the range the config set (train's own is [0, 2e-4]).
  cfg = _kernel_config(_config('train', U=(3e-4, 5e-4)))
  u = np.asarray(kernel.sample_draws(jax.random.key(0), cfg, 64, 8)['U'])
  assert (u >= 3e-4).all() and (u <= 5e-4).all()
  default_u = np.asarray(kernel.sample_draws(jax.random.key(0), _kernel_config(_config('train')), 64, 8)['U'])
  assert (default_u <= 2e-4).all()
  # What it renders: an ideal pattern's lone peak at 30° moves by the zero shift the config set (ideal's own: 0).
  tt, y = np.array([[30.0, 0.0]], np.float32), np.array([[1.0, 0.0]], np.float32)
  centres = grid.bin_centres(grid.config(GRID['num_bins'], 0.0, GRID['two_theta_max']))
  peak = {}
  for shift in (None, (0.5, 0.5)):
    cfg = _kernel_config(_config('ideal', zero_shift=shift))
    pattern = np.asarray(kernel.make_augment_fn(cfg)(jax.random.key(1), tt, y))[0]
    peak[shift] = centres[np.argmax(pattern)]
  assert abs(peak[None] - 30.0) < 0.02
  assert abs(abs(peak[(0.5, 0.5)] - 30.0) - 0.5) < 0.02  # the sign of a zero shift is drawn


def test_no_override_is_the_named_distribution_and_a_whole_dict_replaces_it():
  for name in params.DISTRIBUTIONS:
    unset = params.override_fields()  # config_base's config.augment: every quantity None
    assert params.config(name, overrides=unset).dist.to_dict() == params.distribution(name).to_dict(), name
    assert set(params.resolved_ranges(name)) == set(params.quantities(name))
  # In a config file: a dict of a few quantities, or a whole distribution's.
  c = _config('train')
  c.augment = dict(U=(1e-4, 3e-4))
  d = _kernel_config(c).dist
  assert d.U == (1e-4, 3e-4) and d.W == params.distribution('train').W
  c.augment = params.distribution('invariance_test')
  assert config_checks.config_errors(c) == []
  assert _kernel_config(c).dist.to_dict() == params.distribution('invariance_test').to_dict()


# ml_collections' config_flags loads the config file with importlib's deprecated load_module.
@pytest.mark.filterwarnings('ignore:the load_module:DeprecationWarning')
def test_command_line_overrides_parse_as_ranges_and_numbers():
  """--config.augment.X=... through ml_collections' config_flags, as the trainer parses its command line."""
  argv = ['train', f'--config={ROOT / "configs" / "quickstart.py"}', '--config.augmentation=lab',
          '--config.augment.U=(2e-3,3e-3)', '--config.augment.impurities=2,4', '--config.augment.kalpha2=0.5',
          '--config.augment.dilation=(1,3)']
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file('config', None, flag_values=fv, lock_config=True, sys_argv=argv)
  fv(argv)
  c = fv.config
  assert config_checks.config_errors(c) == []
  d = _kernel_config(c).dist
  assert d.U == (2e-3, 3e-3) and d.impurities == (2, 4) and d.dilation == (1, 3) and d.kalpha2 == 0.5
  assert all(isinstance(v, int) for v in d.impurities)


def test_config_json_records_the_ranges_the_run_renders(tmp_path):
  from difcon_jax import train  # pylint: disable=g-import-not-at-top
  c = _config('lab', U=(2e-3, 3e-3), kalpha2=0.5)
  c.lock()
  train.write_config(c, str(tmp_path), 0)
  recorded = json.loads((tmp_path / 'config.json').read_text())
  lab = params.distribution('lab')
  assert recorded['augmentation'] == 'lab'
  assert recorded['augment']['U'] == [2e-3, 3e-3] and recorded['augment']['kalpha2'] == 0.5
  assert recorded['augment']['W'] == list(lab.W) and recorded['augment']['hump'] == lab.hump
  assert set(recorded['augment']) == set(params.quantities('lab'))  # lab renders no p
  assert c.augment.W is None  # the config itself is left as given


# (distribution, quantity, value, what the error line says is allowed)
BAD = [
    ('train', 'U', (3e-4, 1e-4), '0 <= lo <= hi'),
    ('train', 'U', (1e-4,), 'a range (lo, hi) of numbers'),
    ('train', 'U', ('1e-4', '3e-4'), 'a range (lo, hi) of numbers'),
    ('train', 'V', (-1e-4, float('inf')), 'lo <= hi'),
    ('train', 'eta', (0.5, 1.5), '<= 1'),
    ('train', 'impurities', (0.5, 2), 'a range (lo, hi) of integers'),
    ('train', 'impurities', (0, 11), f'<= {params.MAX_IMPURITIES}'),
    ('train', 'dilation', (0, 3), '1 <= lo'),
    ('lab', 'crystallite_size', (0.0, 100.0), '0 < lo'),
    ('lab', 'kalpha2', 1.5, 'a probability from 0 to 1'),
    ('lab', 'hump', (0.1, 0.2), 'a probability from 0 to 1'),
    ('train', 'kalpha2', 0.5, "augmentation='train' does not draw it (drawn by lab)"),
    ('lab', 'p', (0.0, 1e-4), "augmentation='lab' does not draw it"),
    ('train', 'UU', (0.0, 1e-4), 'no such augmentation quantity; the quantities are zero_shift'),
]


@pytest.mark.parametrize('name,key,value,allowed', BAD, ids=[f'{b[0]}-{b[1]}-{b[2]}' for b in BAD])
def test_bad_overrides_are_refused_in_one_line(name, key, value, allowed):
  c = _config(name)
  c.augment = {key: value, 'W': (1e-4, 2e-4)}  # beside a good one
  errors = config_checks.config_errors(c)
  assert len(errors) == 1 and errors[0].startswith(f'config.augment.{key}={value!r}: '), errors
  assert allowed in errors[0] and '\n' not in errors[0], errors
  with pytest.raises(ValueError, match=f'^{key}='):
    params.config(name, overrides=c.augment)


def test_trainer_refuses_a_bad_range_before_writing_anything(tmp_path):
  run = subprocess.run([sys.executable, '-m', 'difcon_jax.train', '--config=configs/quickstart.py',
                        f'--workdir={tmp_path / "w"}', '--config.augment.U=(3e-4,1e-4)'],
                       capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env={**os.environ, 'JAX_PLATFORMS': 'cpu'})
  lines = [l for l in run.stderr.splitlines() if l.startswith('train: error:')]
  assert run.returncode == 2 and 'Traceback' not in run.stderr, run.stderr[-1500:]
  assert lines == ['train: error: config.augment.U=(0.0003, 0.0001): a range (lo, hi) of numbers, 0 <= lo <= hi']
  assert not (tmp_path / 'w' / 'config.json').exists()
