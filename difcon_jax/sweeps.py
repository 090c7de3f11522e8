"""Sweep files: what they are made of and how they are read (launch/sweep.py runs them).

A sweep file (configs/sweeps/*.py) defines get_sweep() -> list of runs; each run is a dict with 'name' and either
'config' (a config file for difcon_jax.train) plus optional 'overrides' ({'loss.ssl_weight': 0.01, ...}), or
'hand': True (the HAND baseline on 'corpus', with optional 'hand_flags'). Runs that share a 'model' (e.g. the seeds
of one network) are one row of the table. It may define PAPER = {model: {column: value}}: published numbers shown
under each model. A sweep file builds on another with `sweeps.load_file(path)`:

    from difcon_jax import sweeps
    ABLATION = sweeps.load_file(sweeps.beside(__file__, 'cpu_ablation.py'))
    def get_sweep():
      return sweeps.grid({'name': 'q', 'config': 'configs/quickstart.py'}, loss__ssl_weight=[0.0, 0.005])
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import types


def grid(base: dict, **axes) -> list[dict]:
  """Runs for every combination of the override values in axes ({'loss.ssl_weight': [a, b]} style keys
  written with '__' for '.': grid(base, loss__ssl_weight=[...]))."""
  keys = list(axes)
  runs = []
  for values in itertools.product(*(axes[k] for k in keys)):
    over = dict(base.get('overrides', {}))
    over.update({k.replace('__', '.'): v for k, v in zip(keys, values)})
    suffix = ','.join(f"{k.replace('__', '.')}={v}" for k, v in zip(keys, values))
    runs.append({**base, 'name': f"{base['name']}[{suffix}]", 'overrides': over})
  return runs


def beside(file: str, name: str) -> str:
  """The path of `name` in the folder of `file` (a sweep file's __file__)."""
  return os.path.join(os.path.dirname(os.path.abspath(file)), name)


def load_file(path: str) -> types.ModuleType:
  """A sweep file executed as a module of its own (its names as attributes)."""
  spec = importlib.util.spec_from_file_location(f'sweep_{os.path.splitext(os.path.basename(path))[0]}', path)
  if spec is None or spec.loader is None:
    raise FileNotFoundError(f'{path}: not a Python file')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load(path: str) -> tuple[list[dict], dict | None]:
  """The sweep file's runs (get_sweep()) and its published numbers (PAPER, or None). Raises ValueError when run
  names repeat (two runs would share a workdir)."""
  module = load_file(path)
  runs = module.get_sweep()
  names = [r['name'] for r in runs]
  if len(set(names)) != len(names):
    raise ValueError(f'{path}: run names repeat')
  return runs, getattr(module, 'PAPER', None)


def folder_name(name: str) -> str:
  """A run's folder name under the sweep root: its name with every character but letters, digits and -_.=
  replaced by _."""
  return ''.join(c if c.isalnum() or c in '-_.=' else '_' for c in name)


def workdir_of(run: dict, root: str) -> str:
  return os.path.join(root, folder_name(run['name']))
