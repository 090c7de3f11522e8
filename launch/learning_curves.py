r"""Learning curves of training workdirs side by side, from their metrics.jsonl: a markdown table.

  python launch/learning_curves.py runs/cmp_mean runs/cmp_attention runs/cmp_flatten [--every 1000]

One row per evaluation step and workdir: examples seen, the training wall time up to that step (from the logged
examples/s), the CPU minutes the run had used by its last log line at or before that step (set-up, compilation
and evaluations included: the measure of runs that share a machine), and the held-out accuracies (equivariance,
invariance and invariance_nuisance). Used to compare candidate networks at equal CPU time (docs/results.md).
"""

import os
import sys

from absl import app
from absl import flags

from difcon_jax import workdir as workdir_lib

_EVERY = flags.DEFINE_integer('every', 1000, 'Show evaluations at multiples of this step.')

COLUMNS = ('equivariance/crystal_system_top1', 'equivariance/space_group_top1', 'equivariance/space_group_top5',
           'invariance/crystal_system_top1', 'invariance/space_group_top1', 'invariance_nuisance/crystal_system_top1')


def curve(workdir: str) -> list[dict]:
  """[{step, examples, train_minutes, cpu_minutes, metrics...}] at each evaluation, with the batch size of
  config.json."""
  batch = workdir_lib.read_config(workdir)['batch_size']
  rows, seconds, last_step, cpu = {}, 0.0, 0, float('nan')
  for r in workdir_lib.read_metrics(workdir):
    step = int(r['step'])
    cpu = r.get('train/cpu_s', cpu)
    rate = r.get('train/examples_per_s')
    if rate and rate == rate and step > last_step:  # time of the steps since the last log line
      seconds += (step - last_step) * batch / rate
      last_step = step
    if any(k in r for k in COLUMNS):
      rows.setdefault(step, {'step': step, 'examples': step * batch, 'train_minutes': seconds / 60,
                             'cpu_minutes': cpu / 60}).update(
          {k: r[k] for k in COLUMNS if k in r})
  return [rows[s] for s in sorted(rows)]


def main(argv):
  lines = ['| run | step | examples | train min | CPU min | ' + ' | '.join(c.replace('/', ' ') for c in COLUMNS)
           + ' |', '|' + ' --- |' * (5 + len(COLUMNS))]
  for workdir in argv[1:]:
    if not workdir_lib.is_training_workdir(workdir):  # e.g. a sweep's NAME.log beside its run folders
      print(f'learning_curves: {workdir}: not a training workdir (no config.json and checkpoints), skipped',
            file=sys.stderr)
      continue
    for r in curve(workdir):
      if r['step'] % _EVERY.value:
        continue
      lines.append(f"| {os.path.basename(workdir.rstrip('/'))} | {r['step']} | {r['examples']:,} | "
                   f"{r['train_minutes']:.1f} | {r['cpu_minutes']:.1f} | "
                   + ' | '.join(f"{r[c]:.3f}" if c in r else '' for c in COLUMNS) + ' |')
  print('\n'.join(lines))


if __name__ == '__main__':
  if len(sys.argv) < 2:
    sys.exit(__doc__)
  app.run(main)
