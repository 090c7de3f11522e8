r"""Learning curves of training workdirs side by side, from their metrics.jsonl: a markdown table.

  python launch/learning_curves.py runs/cmp_mean runs/cmp_attention runs/cmp_flatten [--every 1000]

One row per evaluation step and workdir: examples seen, the training wall time up to that step (from the logged
examples/s), the CPU minutes the run had used by its last log line at or before that step (set-up, compilation and
evaluations included: the measure of runs that share a machine), and the held-out accuracies (equivariance,
invariance and invariance_nuisance by default; --columns chooses any logged metrics, a `train/...` one being the
mean over the training log lines since the previous evaluation: the training batches' accuracy there). Used to
compare candidate networks at equal CPU time (docs/results.md) and to set a run's held-out accuracy beside its
training batches':

  python launch/learning_curves.py runs/cpu_v2 --every 2000 \
      --columns=lab/crystal_system_top1,train/accuracy_crystal_system,equivariance/crystal_system_top1
"""

import os
import sys

from absl import app
from absl import flags

from difcon_jax.io import workdir as workdir_lib

COLUMNS = ('equivariance/crystal_system_top1', 'equivariance/space_group_top1', 'equivariance/space_group_top5',
           'invariance/crystal_system_top1', 'invariance/space_group_top1', 'invariance_nuisance/crystal_system_top1')

_EVERY = flags.DEFINE_integer('every', 1000, 'Show evaluations at multiples of this step.')
_COLUMNS = flags.DEFINE_list('columns', list(COLUMNS), 'Metrics of metrics.jsonl to show; a train/... one: its '
                             'mean over the training log lines since the previous evaluation.')


def curve(workdir: str, columns=COLUMNS) -> list[dict]:
  """[{step, examples, train_minutes, cpu_minutes, metrics...}] at each evaluation (a step that logged one of the
  held-out `columns`), with the batch size of config.json."""
  batch = workdir_lib.read_config(workdir)['batch_size']
  held_out = [c for c in columns if not c.startswith('train/')]
  rows, seconds, last_step, cpu, train = {}, 0.0, 0, float('nan'), {}  # train: {key: [values since the last eval]}
  for r in workdir_lib.read_metrics(workdir):
    step = int(r['step'])
    cpu = r.get('train/cpu_s', cpu)
    for k, v in r.items():
      if k.startswith('train/'):
        train.setdefault(k, []).append(v)
    rate = r.get('train/examples_per_s')
    if rate and rate == rate and step > last_step:  # time of the steps since the last log line
      seconds += (step - last_step) * batch / rate
      last_step = step
    if any(k in r for k in held_out):
      rows.setdefault(step, {'step': step, 'examples': step * batch, 'train_minutes': seconds / 60,
                             'cpu_minutes': cpu / 60}).update(
          {k: r[k] if k in r else sum(train[k]) / len(train[k]) for k in columns if k in r or k in train})
      train = {}
  return [rows[s] for s in sorted(rows)]


def main(argv):
  columns = _COLUMNS.value
  lines = ['| run | step | examples | train min | CPU min | ' + ' | '.join(c.replace('/', ' ') for c in columns)
           + ' |', '|' + ' --- |' * (5 + len(columns))]
  for workdir in argv[1:]:
    if not workdir_lib.is_training_workdir(workdir):  # e.g. a sweep's NAME.log beside its run folders
      print(f'learning_curves: {workdir}: not a training workdir (no config.json and checkpoints), skipped',
            file=sys.stderr)
      continue
    for r in curve(workdir, columns):
      if r['step'] % _EVERY.value:
        continue
      lines.append(f"| {os.path.basename(workdir.rstrip('/'))} | {r['step']} | {r['examples']:,} | "
                   f"{r['train_minutes']:.1f} | {r['cpu_minutes']:.1f} | "
                   + ' | '.join(f"{r[c]:.3f}" if c in r else '' for c in columns) + ' |')
  print('\n'.join(lines))


if __name__ == '__main__':
  if len(sys.argv) < 2:
    sys.exit(__doc__)
  app.run(main)
