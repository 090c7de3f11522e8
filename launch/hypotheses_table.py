r"""The hypothesis table of configs/sweeps/contrastive_hypotheses.py: each run at its invariance peak and at the end.

  python launch/hypotheses_table.py --root=runs/hypotheses [--sweep=configs/sweeps/contrastive_hypotheses.py]
      [--md=docs/results.md]

Reads ROOT/<run>/metrics.jsonl (the trainer's evaluation rows). Per run and seed: crystal-system top-1 on the
equivariance, invariance and invariance_nuisance sets at the end, the invariance set's best evaluation (value and
step) and the contrastive loss at the end; a model's seeds are averaged with their half-range. With --md the table
replaces the block between MD_BEGIN and MD_END of that document (appended when absent); it is always printed.
"""

from __future__ import annotations

import os

from absl import app
from absl import flags

from difcon_jax import sweeps
from difcon_jax.io import workdir as workdir_lib

SETS = ('equivariance', 'invariance', 'invariance_nuisance')
MD_BEGIN = '<!-- hypothesis table: begin (written by launch/hypotheses_table.py) -->'
MD_END = '<!-- hypothesis table: end -->'

_ROOT = flags.DEFINE_string('root', 'runs/hypotheses', 'The sweep root.')
_SWEEP = flags.DEFINE_string('sweep', 'configs/sweeps/contrastive_hypotheses.py', 'The sweep file.')
_MD = flags.DEFINE_string('md', None, 'Document whose table block is replaced.')


def summarise(rows: list[dict]) -> dict | None:
  """{set: end value, 'invariance_peak': (value, step), 'steps': last eval step, 'ssl_loss': at the end} of one
  run's rows; None before its first evaluation."""
  evals = [r for r in rows if 'equivariance/crystal_system_top1' in r]
  if not evals:
    return None
  end = evals[-1]
  out = {s: end.get(f'{s}/crystal_system_top1', float('nan')) for s in SETS}
  peak = max(evals, key=lambda r: r.get('invariance/crystal_system_top1', -1))
  out['invariance_peak'] = (peak['invariance/crystal_system_top1'], peak['step'])
  nuisance = [r for r in evals if 'invariance_nuisance/crystal_system_top1' in r]
  out['nuisance_peak'] = (max((r['invariance_nuisance/crystal_system_top1'] for r in nuisance), default=float('nan')))
  out['steps'] = end['step']
  train = [r for r in rows if 'train/loss' in r]
  out['ssl_loss'] = train[-1].get('train/loss_ssl', float('nan')) if train else float('nan')
  return out


def _mean_spread(values: list[float]) -> str:
  values = [v for v in values if v == v]
  if not values:
    return 'n/a'
  mean = sum(values) / len(values)
  text = f'{100 * mean:.1f}'
  if len(values) > 1:
    text += f' ± {100 * (max(values) - min(values)) / 2:.1f}'
  return text


def table(runs: list[dict], root: str) -> str:
  by_model: dict[str, list[dict]] = {}
  running: dict[str, int] = {}  # runs started but not finished: left out of the numbers until they finish
  for run in runs:
    workdir, model = sweeps.workdir_of(run, root), run.get('model', run['name'])
    s = summarise(workdir_lib.read_metrics(workdir))
    by_model.setdefault(model, [])
    if s is not None and workdir_lib.trained_step(workdir) is not None:
      by_model[model].append(s)
    elif s is not None:
      running[model] = running.get(model, 0) + 1
  lines = ['| run | seeds | steps | equivariance CS (end) | invariance CS (end) | invariance CS (peak, step) | '
           'nuisance CS (end) | nuisance CS (peak) | Barlow/NT-Xent loss (end) |',
           '|---|---|---|---|---|---|---|---|---|']
  for model, summaries in by_model.items():
    more = f' (+{running[model]} running)' if model in running else ''
    if not summaries:
      lines.append(f'| {model} | 0{more} | not run | | | | | | |')
      continue
    steps = '/'.join(sorted({str(s['steps']) for s in summaries}))
    peak_steps = ','.join(str(s['invariance_peak'][1]) for s in summaries)
    lines.append(
        f"| {model} | {len(summaries)}{more} | {steps} | {_mean_spread([s['equivariance'] for s in summaries])} | "
        f"{_mean_spread([s['invariance'] for s in summaries])} | "
        f"{_mean_spread([s['invariance_peak'][0] for s in summaries])} ({peak_steps}) | "
        f"{_mean_spread([s['invariance_nuisance'] for s in summaries])} | "
        f"{_mean_spread([s['nuisance_peak'] for s in summaries])} | "
        f"{sum(s['ssl_loss'] for s in summaries) / len(summaries):.3g} |")
  return '\n'.join(lines)


def write_block(path: str, text: str) -> None:
  doc = open(path).read() if os.path.exists(path) else ''
  block = f'{MD_BEGIN}\n{text}\n{MD_END}'
  if MD_BEGIN in doc and MD_END in doc:
    doc = doc[:doc.index(MD_BEGIN)] + block + doc[doc.index(MD_END) + len(MD_END):]
  else:
    doc = doc.rstrip('\n') + '\n\n' + block + '\n'
  with open(path, 'w') as f:
    f.write(doc)


def main(argv):
  del argv
  runs, _ = sweeps.load(_SWEEP.value)
  text = table(runs, _ROOT.value)
  print(text)
  if _MD.value:
    write_block(_MD.value, text)


if __name__ == '__main__':
  app.run(main)
