"""Helpers of the tests of bad input: commands run as a user runs them, and inputs made up in the tests."""

import os
import shutil
import subprocess
import sys

import numpy as np

from difcon_jax.crystallography import structure as structure_lib
from difcon_jax.io import workdir as workdir_lib

from conftest import STRUCTURES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args, timeout=600, **kw):
  """A command (python ARGS) run from the repository root, its output captured; a hang fails the test."""
  return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                        timeout=timeout, **kw)


def refused(done, code=2) -> str:
  """The stderr of a command refused in lines (no traceback), with the exit status `code`."""
  assert done.returncode == code, done.stdout[-800:] + done.stderr[-2000:]
  assert 'Traceback' not in done.stderr, done.stderr[-2000:]
  return done.stderr


def error_lines(done, code=2) -> list[str]:
  """The error lines of a command refused in lines (no traceback), with the exit status `code`."""
  return [l for l in refused(done, code).splitlines() if 'error' in l]


CELL_TAGS = structure_lib.CELL_TAGS


def cif(cell=('4.0', '4.0', '4.0', '90', '90', '90'), x='0.0', hm='P m -3 m', name='t', atoms=None):
  """A CsCl-like CIF; cell entries of None are left out."""
  lines = [f'data_{name}'] + [f'{t} {v}' for t, v in zip(CELL_TAGS, cell) if v is not None]
  lines += [f"_symmetry_space_group_name_H-M '{hm}'", 'loop_', '_atom_site_label', '_atom_site_type_symbol',
            '_atom_site_fract_x', '_atom_site_fract_y', '_atom_site_fract_z']
  lines += atoms or [f'Cs1 Cs {x} 0 0', 'Cl1 Cl 0.5 0.5 0.5']
  return '\n'.join(lines) + '\n'


def bad_cells(rng):
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


def pattern_text(rng, n=400, fmt='{:.3f} {:.1f}'):
  tt = np.linspace(10, 80, n)
  y = 50 + sum(rng.uniform(200, 2000) * np.exp(-((tt - c) / 0.15) ** 2) for c in rng.uniform(15, 75, 8))
  return tt, y, '\n'.join(fmt.format(a, b) for a, b in zip(tt, y)) + '\n'


def cifs(tmp_path, names=('nacl.cif', 'si.cif', 'cscl.cif', 'caf2.cif')):
  cifs = tmp_path / 'cifs'
  cifs.mkdir(exist_ok=True)
  for n in names:
    shutil.copy(STRUCTURES / n, cifs / n)
  return cifs


def hold_lock(folder, name, what):
  """A process that takes the lock and waits; returns it once the lock is held."""
  proc = subprocess.Popen([sys.executable, '-c', 'import sys, time; from difcon_jax.io import folder_lock; '
                           f'l = folder_lock.acquire({str(folder)!r}, {name!r}, {what!r}); print("held", flush=True); '
                           'time.sleep(120)'], stdout=subprocess.PIPE, text=True, cwd=ROOT)
  assert proc.stdout.readline().strip() == 'held'
  return proc


def workdir(tmp_path, steps):
  """A training workdir with a checkpoint (untrained weights) at each step, written without training."""
  import jax.numpy as jnp
  import orbax.checkpoint as ocp
  import train_helpers
  from difcon_jax import train
  config = train_helpers.tiny_config(str(tmp_path / 'corpus'))
  config.keep_checkpoints = 5
  work = tmp_path / 'work'
  work.mkdir()
  (work / 'config.json').write_text(config.to_json_best_effort(indent=1))
  model, tx = train.create_model(config), train.create_optimizer(config)
  state = train.init_state(config, model, tx, jnp.zeros((1, config.num_bins)))
  latest, _ = workdir_lib.checkpoint_managers(str(work), config.keep_checkpoints, config.best_metric)
  for s in steps:
    latest.save(s, args=ocp.args.StandardSave(state.replace(step=jnp.asarray(s, jnp.int32))))
  latest.wait_until_finished()
  return config, work


def pattern_lines(fmt='{:.3f} {:.1f}', tt=None, scale=1.0):
  tt = np.linspace(10, 80, 400) if tt is None else tt
  y = 50 + 1000 * np.exp(-((tt - 30) / 0.2) ** 2) + 500 * np.exp(-((tt - 50) / 0.2) ** 2)
  return ''.join(fmt.format(a, b * scale) + '\n' for a, b in zip(tt, y))


def config():
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import train_helpers  # pylint: disable=g-import-not-at-top
  return train_helpers.tiny_config('/nowhere')
