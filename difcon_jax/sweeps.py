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


class SweepError(ValueError):
  """A sweep file that cannot be run; one line per problem, each naming the file and the runs concerned."""


def load(path: str) -> tuple[list[dict], dict | None]:
  """The sweep file's runs (get_sweep()) and its published numbers (PAPER, or None).

  Raises SweepError (one line per problem) when the file cannot be loaded, get_sweep() is missing, fails or gives
  no runs, a run lacks its name or what to run, or two runs would write the same paths under the root (repeated
  names, or names that map to one folder: `clashes`)."""
  try:
    module = load_file(path)
    runs = module.get_sweep()
  except Exception as e:  # pylint: disable=broad-except  (the file is the user's code: any failure is its error)
    raise SweepError(f'{path}: cannot be loaded ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""})'
                     ) from None
  problems = _run_problems(path, runs)
  if problems:
    raise SweepError('\n'.join(problems))
  return runs, getattr(module, 'PAPER', None)


def _run_problems(path: str, runs) -> list[str]:
  if not isinstance(runs, (list, tuple)) or not runs:
    return [f'{path}: get_sweep() gave no runs ({type(runs).__name__} {runs!r:.60})']
  problems = []
  for i, r in enumerate(runs):
    if not isinstance(r, dict) or not isinstance(r.get('name'), str) or not r['name']:
      problems.append(f'{path}: run {i} has no name (each run is a dict with "name")')
    elif not r.get('hand') and not r.get('config'):
      problems.append(f'{path}: run {r["name"]!r} has neither "config" (a training) nor "hand": True')
  if problems:
    return problems
  names = [r['name'] for r in runs]
  outside = [n for n in names if folder_name(n) in ('.', '..')]
  if outside:
    return [f'{path}: run name {outside[0]!r} is no folder of its own under the root']
  repeated = sorted({n for n in names if names.count(n) > 1})
  if repeated:
    return [f'{path}: run names repeat ({", ".join(map(repr, repeated))}): two runs would share a workdir']
  return [f'{path}: {line}' for line in clashes(names)]


# What the sweep itself writes into the root, beside the runs' folders and files.
ROOT_FILES = ('runs.csv', 'results.csv', 'results.md')


def run_paths(name: str) -> tuple[str, ...]:
  """What a run writes under the sweep root: its workdir, its log and its timing (launch/sweep.py)."""
  folder = folder_name(name)
  return folder, folder + '.log', folder + '.timing.json'


def clashes(names: list[str]) -> list[str]:
  """One line per pair of runs (or a run and the sweep's table) that would write one path under the root: names
  that map to one folder (`a b` and `a_b`: folder_name), differ only in case (one folder on macOS and Windows), or
  whose folder is another's log (`x.log` and `x`)."""
  owner = {f.lower(): "the sweep's table" for f in ROOT_FILES}
  lines, pairs = [], set()
  for name in names:
    for p in run_paths(name):
      first = owner.setdefault(p.lower(), name)
      if first != name and (first, name) not in pairs:
        pairs.add((first, name))
        lines.append(f'runs {first!r} and {name!r} would both write {p} under the root; rename one'
                     if first != "the sweep's table" else f'run {name!r} would write {p}, a file of the sweep\'s '
                     'table, under the root; rename it')
  return lines


def folder_name(name: str) -> str:
  """A run's folder name under the sweep root: its name with every character but letters, digits and -_.=
  replaced by _."""
  return ''.join(c if c.isalnum() or c in '-_.=' else '_' for c in name)


def workdir_of(run: dict, root: str) -> str:
  return os.path.join(root, folder_name(run['name']))
