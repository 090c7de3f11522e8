r"""Local sweep runner: expands a sweep file into runs, runs them (N at a time), collects one table.

  python launch/sweep.py --sweep=configs/sweeps/paper_ablation.py --root=runs/ablation [--parallel=1]
      [--experimental=PATTERNS.npz] [--dry_run] [--set=key=value ...]

A sweep file defines get_sweep() -> list of runs; each run is a dict with 'name' and either 'config' (a config
file for difcon_jax.train) plus optional 'overrides' ({'loss.ssl_weight': 0.01, ...}), or 'hand': True (the HAND
baseline on 'corpus'). `grid(base, **axes)` expands the product of override values into runs.
Each training run is evaluated on the equivariance and invariance sets (in training) and, with --experimental,
on measured patterns. The results go to ROOT/results.csv and ROOT/results.md: the paper's table of
equivariance / invariance / experimental accuracy per model.
"""

from __future__ import annotations

import concurrent.futures
import csv
import importlib.util
import itertools
import json
import os
import shlex
import subprocess
import sys

from absl import app
from absl import flags

FLAGS = flags.FLAGS
HEADS = ('crystal_system', 'extinction_group', 'space_group')
SETS = ('equivariance', 'invariance', 'experimental')


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


def load_sweep(path: str) -> list[dict]:
  spec = importlib.util.spec_from_file_location('sweep', path)
  module = importlib.util.module_from_spec(spec)
  sys.modules.setdefault('launch_sweep', sys.modules[__name__])
  spec.loader.exec_module(module)
  runs = module.get_sweep()
  names = [r['name'] for r in runs]
  if len(set(names)) != len(names):
    raise ValueError(f'{path}: run names repeat')
  return runs


def _safe(name: str) -> str:
  return ''.join(c if c.isalnum() or c in '-_.=' else '_' for c in name)


def commands(run: dict, root: str, extra: dict, experimental: str | None) -> list[list[str]]:
  workdir = os.path.join(root, _safe(run['name']))
  py = sys.executable
  overrides = {**run.get('overrides', {}), **extra}
  if run.get('hand'):
    cmd = [py, '-m', 'difcon_jax.hand', f"--corpus={overrides.get('corpus', run.get('corpus'))}", f'--out={workdir}']
    if experimental:
      cmd.append(f'--experimental={experimental}')
    return [cmd]
  cmds = [[py, '-m', 'difcon_jax.train', f"--config={run['config']}", f'--workdir={workdir}'] +
          [f'--config.{k}={v}' for k, v in overrides.items()]]
  if experimental:
    # The checkpoint of final_metrics.json (the last step), so that every number of the run's row is one model's.
    cmds.append([py, '-m', 'difcon_jax.evaluate', f'--checkpoint={workdir}', '--weights=latest',
                 '--set=experimental', f'--data={experimental}'])
  return cmds


def collect(run: dict, root: str) -> dict:
  """The run's metrics as {set/head: top-1}, all of one checkpoint: the equivariance and invariance numbers of
  final_metrics.json and the experimental ones of evaluate --weights=latest (the same last step; a row whose
  steps differ is refused)."""
  workdir = os.path.join(root, _safe(run['name']))
  row = {'model': run['name']}
  if run.get('hand'):
    path = os.path.join(workdir, 'metrics.json')
    results = json.load(open(path)) if os.path.exists(path) else {}
    for s, m in results.items():
      for h in HEADS:
        row[f'{s}/{h}'] = m[f'{h}_top1']
    return row
  path = os.path.join(workdir, 'final_metrics.json')
  final = json.load(open(path)) if os.path.exists(path) else {}
  for s in ('equivariance', 'invariance'):
    for h in HEADS:
      if f'{s}/{h}_top1' in final:
        row[f'{s}/{h}'] = final[f'{s}/{h}_top1']
  exp = os.path.join(workdir, 'eval_experimental', 'metrics.json')
  if os.path.exists(exp):
    m = json.load(open(exp))
    if final and m.get('model_step') != final.get('step'):
      raise ValueError(f'{run["name"]}: experimental metrics of step {m.get("model_step")}, the others of step '
                       f'{final.get("step")}')
    for h in HEADS:
      row[f'experimental/{h}'] = m[f'{h}_top1']
  return row


def write_table(rows: list[dict], root: str) -> tuple[str, str]:
  cols = ['model'] + [f'{s}/{h}' for s in SETS for h in HEADS]
  csv_path, md_path = os.path.join(root, 'results.csv'), os.path.join(root, 'results.md')
  with open(csv_path, 'w', newline='') as f:
    w = csv.DictWriter(f, fieldnames=cols)
    w.writeheader()
    w.writerows({c: r.get(c, '') for c in cols} for r in rows)
  fmt = lambda v: f'{100 * v:.1f}' if isinstance(v, float) else '–'
  lines = ['| model | ' + ' | '.join(f'{s[:5]}. {h.split("_")[0][:3].upper()}' for s in SETS for h in HEADS) + ' |',
           '| --- |' + ' ---: |' * (len(cols) - 1)]
  lines += ['| ' + r['model'] + ' | ' + ' | '.join(fmt(r.get(c)) for c in cols[1:]) + ' |' for r in rows]
  with open(md_path, 'w') as f:
    f.write('Top-1 accuracy (%): CRY = crystal system, EXT = extinction group, SPA = space group.\n\n')
    f.write('\n'.join(lines) + '\n')
  return csv_path, md_path


def define_flags():
  flags.DEFINE_string('sweep', None, 'Sweep file with get_sweep().')
  flags.DEFINE_string('root', 'runs/sweep', 'Folder for the runs and the table.')
  flags.DEFINE_integer('parallel', 1, 'Runs at a time.')
  flags.DEFINE_string('experimental', None, 'Measured patterns (.npz) for the experimental column.')
  flags.DEFINE_multi_string('set', [], 'Override for every training run, key=value (e.g. corpus=DIR).')
  flags.DEFINE_bool('dry_run', False, 'Print the commands only.')


def main(argv):
  del argv
  if not FLAGS.sweep:
    raise app.UsageError('--sweep is required')
  runs = load_sweep(FLAGS.sweep)
  extra = dict(s.split('=', 1) for s in FLAGS.set)
  os.makedirs(FLAGS.root, exist_ok=True)
  plan = {r['name']: commands(r, FLAGS.root, extra, FLAGS.experimental) for r in runs}
  if FLAGS.dry_run:
    for name, cmds in plan.items():
      for c in cmds:
        print(shlex.join(c))
    return 0

  def execute(name):
    log = open(os.path.join(FLAGS.root, _safe(name) + '.log'), 'w')
    for c in plan[name]:
      rc = subprocess.run(c, stdout=log, stderr=subprocess.STDOUT).returncode
      if rc:
        return name, rc
    return name, 0

  failed = []
  with concurrent.futures.ThreadPoolExecutor(FLAGS.parallel) as pool:
    for i, (name, rc) in enumerate(pool.map(execute, plan), 1):
      print(f'[{i}/{len(plan)}] {name}: {"ok" if rc == 0 else f"failed (exit {rc}), see its .log"}', flush=True)
      if rc:
        failed.append(name)
  csv_path, md_path = write_table([collect(r, FLAGS.root) for r in runs], FLAGS.root)
  print(open(md_path).read())
  print(f'-> {csv_path}, {md_path}')
  return 1 if failed else 0


if __name__ == '__main__':
  define_flags()
  app.run(main)
