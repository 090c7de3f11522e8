r"""Local sweep runner: expands a sweep file into runs, runs them (N at a time), collects one table.

  python launch/sweep.py --sweep=configs/sweeps/paper_ablation.py --root=runs/ablation [--parallel=1]
      [--experimental=PATTERNS.npz] [--dry_run] [--set=key=value ...] [--rerun]
      [--only=REGEX | --collect_only] [--results_csv=docs/results.csv --results_md=docs/results.md]

The sweep file's format is difcon_jax/sweeps.py's (get_sweep() -> runs; PAPER; sweeps.grid). Runs that share a
'model' (e.g. the seeds of one network) are one row of the table, averaged, with their spread.

Each training run is evaluated on the equivariance and invariance sets (in training) and, with --experimental,
on measured patterns. A run whose results are all there is kept (--rerun runs it again), so the command can be
repeated after an interruption and only what is missing runs. The sweep writes ROOT/NAME.log and
ROOT/NAME.timing.json (wall and CPU seconds of each command) per run, ROOT/runs.csv (one row per run),
ROOT/results.csv (one row per model: equivariance / invariance / experimental top-1, experimental top-5, steps,
examples and patterns seen, CPU and wall minutes of training, spreads) and ROOT/results.md.

Bad input: the flags, the sweep file and the outputs are checked before anything runs or is created (one line
each, exit status 2): a sweep file that cannot be loaded or gives no runs, two runs whose names map to one folder
(`a b` and `a_b`, names differing only in case), an --only that matches no run, a --results_csv or --results_md
that is an input, a file of the sweep's table, a run's folder or the other. Flags that change nothing with
--collect_only are warned about. --dry_run prints the commands and creates nothing.
"""

from __future__ import annotations

import concurrent.futures
import csv
import json
import os
import re
import shlex
import subprocess
import sys
import time

from absl import app
from absl import flags

from difcon_jax.io import cli
from difcon_jax import sweeps
from difcon_jax import train
from difcon_jax.io import workdir as workdir_lib
from difcon_jax.io import outputs
from difcon_jax.models.heads import HEADS

FLAGS = flags.FLAGS
workdir_of = sweeps.workdir_of
SETS = ('equivariance', 'invariance', 'experimental')


def _experimental_numbers(workdir: str) -> dict | None:
  """{head_top1, head_top5} on the measured set of a finished training, of its last step: from final_metrics.json
  (the trainer's experimental evaluator), else from `evaluate --weights=latest` (eval_experimental/metrics.json,
  of a run trained without it; refused when of another step). None when there are none."""
  final = workdir_lib.read_final(workdir) or {}
  if f'experimental/{HEADS[0]}_top1' in final:
    return {k.split('/', 1)[1]: v for k, v in final.items() if k.startswith('experimental/')}
  exp = os.path.join(workdir, 'eval_experimental', 'metrics.json')
  if not os.path.exists(exp):
    return None
  m = json.load(open(exp))
  if final and m.get('model_step') != final.get('step'):
    raise ValueError(f'{workdir}: experimental metrics of step {m.get("model_step")}, the others of step '
                     f'{final.get("step")}')
  return m


def commands(run: dict, root: str, extra: dict, experimental: str | None) -> list[list[str]]:
  """The run's commands: HAND, or the training (with the measured set as one of its evaluators). A training that
  finished without the measured set is evaluated on it instead, at its last step."""
  workdir = workdir_of(run, root)
  py = sys.executable
  overrides = {**run.get('overrides', {}), **extra}
  if run.get('hand'):
    cmd = [py, '-m', 'difcon_jax.hand', f"--corpus={overrides.get('corpus', run.get('corpus'))}", f'--out={workdir}']
    cmd += [f'--{k}={v}' for k, v in run.get('hand_flags', {}).items()]
    if experimental:
      cmd.append(f'--experimental={experimental}')
    return [cmd]
  if experimental and workdir_lib.trained_step(workdir) is not None and _experimental_numbers(workdir) is None:
    return [[py, '-m', 'difcon_jax.evaluate', f'--checkpoint={workdir}', '--weights=latest', '--set=experimental',
             f'--data={experimental}']]
  if experimental:
    overrides['evals.experimental.data'] = experimental
  return [[py, '-m', 'difcon_jax.train', f"--config={run['config']}", f'--workdir={workdir}'] +
          [f'--config.{k}={v}' for k, v in overrides.items()]]


def complete(run: dict, root: str, experimental: str | None) -> bool:
  """Whether the run's results are all there (a finished run is not trained or evaluated again)."""
  workdir = workdir_of(run, root)
  if run.get('hand'):
    path = os.path.join(workdir, 'metrics.json')
    return os.path.exists(path) and (not experimental or 'experimental' in json.load(open(path)))
  if workdir_lib.trained_step(workdir) is None:
    return False
  return not experimental or _experimental_numbers(workdir) is not None


def collect(run: dict, root: str) -> dict:
  """The run's row: {set/head: top-1, experimental/head_top5: top-5, steps, examples_seen, patterns_seen,
  cpu_minutes, wall_minutes}. All accuracies are of one checkpoint, the last step's: final_metrics.json's (the
  experimental ones from evaluate --weights=latest for a run trained without the measured set). The minutes are
  those of training: the trainer's own count in final_metrics.json (summed over interruptions), else the sweep's
  NAME.timing.json (CPU time from wait4)."""
  workdir = workdir_of(run, root)
  row = {'run': run['name'], 'model': run.get('model', run['name']), 'seed': run.get('seed', '')}
  timing_path = os.path.join(root, sweeps.folder_name(run['name']) + '.timing.json')
  trainers = ('difcon_jax.train', 'difcon_jax.hand')
  for t in _read_json(timing_path, []):
    if any(f' {m} ' in f' {t["command"]} ' for m in trainers):
      row['cpu_minutes'], row['wall_minutes'] = t['cpu_s'] / 60, t['wall_s'] / 60
  if run.get('hand'):
    path = os.path.join(workdir, 'metrics.json')
    results = json.load(open(path)) if os.path.exists(path) else {}
    for s, m in results.items():
      for h in HEADS:
        row[f'{s}/{h}'] = m[f'{h}_top1']
        if s == 'experimental':
          row[f'{s}/{h}_top5'] = m[f'{h}_top5']
    return row
  final = workdir_lib.read_final(workdir) or {}
  if 'train/cpu_s' in final:  # the trainer's own count, summed over interruptions
    row['cpu_minutes'], row['wall_minutes'] = final['train/cpu_s'] / 60, final['train/wall_s'] / 60
  for s in ('equivariance', 'invariance'):
    for h in HEADS:
      if f'{s}/{h}_top1' in final:
        row[f'{s}/{h}'] = final[f'{s}/{h}_top1']
  if final:
    config = workdir_lib.read_config(workdir)
    views = train.num_views(config)
    row.update(steps=final['step'], examples_seen=final['step'] * config['batch_size'],
               patterns_seen=final['step'] * config['batch_size'] * views)
  m = _experimental_numbers(workdir) if final else None
  if m is not None:
    for h in HEADS:
      row[f'experimental/{h}'] = m[f'{h}_top1']
      row[f'experimental/{h}_top5'] = m[f'{h}_top5']
  return row


ACCURACY = [f'{s}/{h}' for s in SETS for h in HEADS] + [f'experimental/{h}_top5' for h in HEADS]
COST = ['steps', 'examples_seen', 'patterns_seen', 'cpu_minutes', 'wall_minutes']


def aggregate(rows: list[dict]) -> list[dict]:
  """One row per model (in order of first appearance): the mean over its runs (seeds) of every number, 'seeds'
  (how many runs have results) and 'spread/COLUMN' (largest minus smallest over the runs) of every accuracy."""
  models = {}
  for r in rows:
    models.setdefault(r['model'], []).append(r)
  out = []
  for model, runs in models.items():
    agg = {'model': model, 'seeds': sum(any(c in r for c in ACCURACY) for r in runs)}
    for c in ACCURACY + COST:
      values = [r[c] for r in runs if isinstance(r.get(c), (int, float))]
      if values:
        mean = sum(values) / len(values)
        agg[c] = int(mean) if all(isinstance(v, int) for v in values) and mean == int(mean) else mean
        if c in ACCURACY and len(values) > 1:
          agg[f'spread/{c}'] = max(values) - min(values)
    out.append(agg)
  return out


def _fmt_row(label: str, r: dict) -> str:
  def acc(c):
    v = r.get(c)
    if not isinstance(v, (int, float)):
      return '–'
    spread = r.get(f'spread/{c}')
    return f'{100 * v:.1f}' + (f' ±{50 * spread:.1f}' if spread is not None else '')
  cost = lambda c, f: format(r[c], f) if isinstance(r.get(c), (int, float)) else '–'
  return (f'| {label} | ' + ' | '.join(acc(c) for c in ACCURACY) + ' | ' + cost('examples_seen', ',.0f') +
          ' | ' + cost('cpu_minutes', '.0f') + ' |')


def markdown(models: list[dict], paper: dict | None = None) -> str:
  """The table of results.md: accuracies in %, mean ± half the spread over seeds; the paper's row (when the
  sweep file gives PAPER) under each model."""
  short = {'crystal_system': 'CS', 'extinction_group': 'EG', 'space_group': 'SG'}
  names = {'equivariance': 'equiv.', 'invariance': 'inv.', 'experimental': 'exp.'}
  head = [f'{names[c.split("/")[0]]} {short[c.split("/")[1].removesuffix("_top5")]}'
          + (' top-5' if c.endswith('_top5') else '') for c in ACCURACY]
  lines = ['| model | ' + ' | '.join(head) + ' | examples seen | CPU min |', '| --- |' + ' ---: |' * (len(head) + 2)]
  for r in models:
    label = r['model'] + (f' ({r["seeds"]} seeds)' if r['seeds'] > 1 else '')
    lines.append(_fmt_row(label, r))
    if paper and r['model'] in paper:
      lines.append(_fmt_row(f'*paper: {r["model"]}*', paper[r['model']]))
  return ('Top-1 accuracy in % (top-5 where marked); CS = crystal system, EG = extinction group, SG = space group; '
          "exp. = the measured patterns of --experimental; ± half the spread over the seeds.\n\n"
          + '\n'.join(lines) + '\n')


MD_BEGIN, MD_END = '<!-- sweep table: begin (written by launch/sweep.py) -->', '<!-- sweep table: end -->'


def _cell(v):
  return round(v, 4) if isinstance(v, float) else v


def write_table(rows: list[dict], root: str, paper: dict | None = None, results_csv: str | None = None,
                results_md: str | None = None) -> tuple[str, str]:
  """ROOT/runs.csv (one row per run), ROOT/results.csv (one per model: mean and spread over seeds) and
  ROOT/results.md; results_csv: a copy of results.csv; results_md: a document whose table between MD_BEGIN and
  MD_END is replaced (appended when it has none)."""
  models = aggregate(rows)
  run_cols = ['run', 'model', 'seed'] + ACCURACY + COST
  model_cols = ['model', 'seeds'] + ACCURACY + COST + [f'spread/{c}' for c in ACCURACY]
  for path, cols, table in ((os.path.join(root, 'runs.csv'), run_cols, rows),
                            (os.path.join(root, 'results.csv'), model_cols, models),
                            (results_csv, model_cols, models)):
    if path:
      with outputs.write(path, newline='') as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows({c: _cell(r.get(c, '')) for c in cols} for r in table)
  text = markdown(models, paper)
  md_path = os.path.join(root, 'results.md')
  with outputs.write(md_path) as f:
    f.write(text)
  if results_md:
    doc = open(results_md).read() if os.path.exists(results_md) else ''
    block = f'{MD_BEGIN}\n{text}{MD_END}'
    if MD_BEGIN in doc and MD_END in doc:
      doc = doc[:doc.index(MD_BEGIN)] + block + doc[doc.index(MD_END) + len(MD_END):]
    else:
      doc = doc + ('\n' if doc else '') + block + '\n'
    with outputs.write(results_md) as f:
      f.write(doc)
  return os.path.join(root, 'results.csv'), md_path


def run_timed(cmd: list[str], log) -> tuple[int, dict]:
  """Runs cmd with its output to log; returns its exit status and {'command', 'wall_s', 'cpu_s'} (the CPU
  seconds of that process and the children it waited for, from wait4, so runs side by side do not mix)."""
  t0 = time.time()
  proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
  _, status, usage = os.wait4(proc.pid, 0)
  proc.returncode = os.waitstatus_to_exitcode(status)
  return proc.returncode, {'command': shlex.join(cmd), 'wall_s': round(time.time() - t0, 1),
                           'cpu_s': round(usage.ru_utime + usage.ru_stime, 1)}


def define_flags():
  flags.DEFINE_string('sweep', None, 'Sweep file with get_sweep().')
  flags.DEFINE_string('root', 'runs/sweep', 'Folder for the runs and the table.')
  flags.DEFINE_integer('parallel', 1, 'Runs at a time.')
  flags.DEFINE_string('experimental', None, 'Measured patterns (.npz) for the experimental column.')
  flags.DEFINE_multi_string('set', [], 'Override for every training run, key=value (e.g. corpus=DIR).')
  flags.DEFINE_bool('dry_run', False, 'Print the commands only.')
  flags.DEFINE_bool('rerun', False, 'Run every run again (default: a finished run is kept, a finished training '
                    'only evaluated).')
  flags.DEFINE_bool('collect_only', False, 'Run nothing: write the table from the results already there.')
  flags.DEFINE_string('only', None, 'Run only the runs whose name matches this regular expression (the table '
                      'still lists every run of the sweep).')
  flags.DEFINE_string('results_csv', None, 'Also write the per-model table here (e.g. docs/results.csv).')
  flags.DEFINE_string('results_md', None, 'Replace the sweep table in this document (e.g. docs/results.md).')


def check_flags() -> tuple[list[dict], dict | None] | None:
  """(runs, PAPER) of the sweep file, or None after printing one line per problem: the flags, the sweep file (its
  runs must map to distinct folders) and the outputs, before anything runs or is created."""
  checks = cli.Checks()
  runs, paper = [], None
  if checks.require(bool(FLAGS.sweep) and os.path.isfile(FLAGS.sweep), 'sweep', FLAGS.sweep,
                    'a sweep file (Python with get_sweep()) that exists'):
    try:
      runs, paper = sweeps.load(FLAGS.sweep)
    except sweeps.SweepError as e:
      checks.errors += [f'--sweep={FLAGS.sweep}: {line.removeprefix(FLAGS.sweep + ": ")}'
                        for line in str(e).splitlines()]
  checks.number('parallel', FLAGS.parallel, 1, integer=True)
  for s in FLAGS.set:
    checks.require('=' in s and s.split('=', 1)[0].strip(), 'set', s, 'key=value (e.g. corpus=DIR)')
  if FLAGS.experimental is not None:
    checks.require(os.path.isfile(FLAGS.experimental), 'experimental', FLAGS.experimental,
                   'an .npz of measured patterns that exists')
  if FLAGS.only is not None:
    _check_only(checks, runs)
  if checks.output_dir('root', FLAGS.root):
    _check_outputs(checks, runs)
  _warn_unused_flags()
  return None if checks.report('sweep') else (runs, paper)


def _check_only(checks: cli.Checks, runs: list[dict]) -> None:
  """--only: a regular expression that matches at least one run (else the sweep would run nothing and say ok)."""
  try:
    pattern = re.compile(FLAGS.only)
  except re.error as e:
    checks.require(False, 'only', FLAGS.only, f'a regular expression ({e})')
    return
  if runs and not any(pattern.search(r['name']) for r in runs):
    checks.require(False, 'only', FLAGS.only, f'a regular expression matching a run of the sweep (it matches none '
                   f'of the {len(runs)}: {", ".join(r["name"] for r in runs[:3])}{", ..." if len(runs) > 3 else ""})')


def _check_outputs(checks: cli.Checks, runs: list[dict]) -> None:
  """--results_csv and --results_md: neither an input, a file of the sweep's own table, a run's folder nor each
  other."""
  root = FLAGS.root
  written = {f'root {name}': os.path.join(root, name) for name in sweeps.ROOT_FILES}
  written.update(results_csv=FLAGS.results_csv, results_md=FLAGS.results_md)
  inputs = [p for p in (FLAGS.sweep, FLAGS.experimental) if p]
  protected = [(workdir_of(r, root), f'the folder of run {r["name"]!r}') for r in runs]
  for flag, path, why in outputs.clashes(written, inputs, protected):
    checks.require(False, flag, path, why)
  for flag in ('results_csv', 'results_md'):
    if FLAGS[flag].value:
      checks.output_file(flag, FLAGS[flag].value)


def _warn_unused_flags() -> None:
  """Flags that change nothing in this run are said, not silently dropped."""
  if FLAGS.collect_only:
    for name in ('rerun', 'only', 'dry_run', 'parallel'):
      if FLAGS[name].present:
        print(f'sweep: warning: --{name} has no effect with --collect_only (nothing runs)', file=sys.stderr)


def main(argv):
  del argv
  loaded = check_flags()
  if loaded is None:
    return cli.USAGE_ERROR
  runs, paper = loaded
  by_name = {r['name']: r for r in runs}
  extra = dict(s.split('=', 1) for s in FLAGS.set)
  plan = {r['name']: commands(r, FLAGS.root, extra, FLAGS.experimental) for r in runs
          if not FLAGS.collect_only and (not FLAGS.only or re.search(FLAGS.only, r['name']))}
  if FLAGS.dry_run:  # prints the commands, creates nothing
    for name, cmds in plan.items():
      for c in cmds:
        print(shlex.join(c))
    return 0
  os.makedirs(FLAGS.root, exist_ok=True)

  def execute(name):
    run = by_name[name]
    timing_path = os.path.join(FLAGS.root, sweeps.folder_name(name) + '.timing.json')
    timing = _read_json(timing_path, [])
    if not FLAGS.rerun and complete(run, FLAGS.root, FLAGS.experimental):
      return name, 'kept'
    # A finished training that is only evaluated keeps its training's timing.
    first = 1 if plan[name] and '-m difcon_jax.evaluate' in ' '.join(plan[name][0]) else 0
    timing = timing[:first]
    with open(os.path.join(FLAGS.root, sweeps.folder_name(name) + '.log'), 'a' if first else 'w') as log:
      for c in plan[name]:
        rc, t = run_timed(c, log)
        timing.append(t)
        with outputs.write(timing_path) as f:
          json.dump(timing, f, indent=1)
        if rc:
          return name, rc
    return name, 0

  failed = []
  with concurrent.futures.ThreadPoolExecutor(FLAGS.parallel) as pool:
    for i, (name, rc) in enumerate(pool.map(execute, plan), 1):
      status = {0: 'ok', 'kept': 'finished before, kept'}.get(rc, f'failed (exit {rc}), see its .log')
      print(f'[{i}/{len(plan)}] {name}: {status}', flush=True)
      if rc not in (0, 'kept'):
        failed.append(name)
  csv_path, md_path = write_table([collect(r, FLAGS.root) for r in runs], FLAGS.root, paper, FLAGS.results_csv,
                                  FLAGS.results_md)
  print(open(md_path).read())
  print(f'-> {csv_path}, {md_path}')
  return 1 if failed else 0


def _read_json(path: str, default):
  """A JSON file's content; `default` when it is missing or cut short (a kill during a write before writes were
  atomic)."""
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return default


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
