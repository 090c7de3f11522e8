r"""Indexing: unit cells from the peak positions of measured patterns (the paper's NTREOR baseline).

  python -m difcon_jax.index --input=PATH [--input=PATH ...] [PATH ...] [--wavelength=1.5406 | --anode=Cu] \
      [--output=runs/cells.csv] [--top=3]
  python -m difcon_jax.index --evaluate --corpus=DIR [--examples=N] [--experimental=PATTERNS.npz] [--out=DIR]

Each file is read, converted and background-subtracted by the loader `predict` uses (io.measured.load), its
peaks are picked and Kα2 partners removed (autoindex/lines.py), and cells are searched from cubic down to
monoclinic with a zero shift (autoindex/search.py). One CSV row per file: the crystal system of the
best cell, or "no solution" when no cell reaches M20 >= --m20_min with at most --max_unindexed unindexed lines
(10 and 3: de Wolff's rule of thumb is 10 and 2; picked peaks bring spurious lines, see docs/results.md "INDEX"),
then the best --top cells with their system, a b c alpha beta gamma (Å, degrees),
volume (Å³), zero shift (degrees 2θ), N (the first --lines lines, fewer when the pattern has fewer), de Wolff's
M_N (M20 for N = 20), Smith & Snyder's F_N with (|Δ2θ|̄, N_poss) and the unindexed lines among the N.
Triclinic cells are not searched. A hexagonal-metric cell is called trigonal when its lines obey the rhombohedral
condition, else hexagonal (a metric cannot tell the P trigonal groups from the hexagonal ones).
A file that cannot be used gets a row with its error, one line on stderr, and the rest still come out; the exit
status is 1 when any failed.

--evaluate scores the crystal system of the best cell on the corpus test split (lines from the peak lists, and
picked from the patterns rendered with the train and invariance_test distributions, the network's evaluation sets)
and on measured patterns, with metrics.py; "no solution" counts as wrong (autoindex/scoring.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

from absl import app
from absl import flags
import numpy as np

from difcon_jax.io import cli
from difcon_jax import config_base
from difcon_jax.crystallography import pattern_grid as grid_lib
from difcon_jax.augment import params as augment_params
from difcon_jax.data import corpus as corpus_lib
from difcon_jax.crystallography import spacegroups
from difcon_jax.crystallography import wavelength as wavelength_lib
from difcon_jax.autoindex import combine
from difcon_jax.autoindex import scoring as evaluation
from difcon_jax.autoindex import lines as peaks_lib
from difcon_jax.autoindex import search
from difcon_jax.io import measured
from difcon_jax.io import inputs as inputs_lib
from difcon_jax.io import outputs
from difcon_jax.io import patterns as patterns_lib

FLAGS = flags.FLAGS
NO_SOLUTION = 'no solution'


def define_flags():
  defaults = search.Settings()
  cli.define_pattern_input_flags()
  flags.DEFINE_string('output', 'runs/cells.csv', 'CSV to write (its folder is made).')
  flags.DEFINE_integer('top', 3, 'Cells per file in the CSV.')
  flags.DEFINE_bool('remove_background', True, 'Subtract a SNIP background before picking peaks.')
  flags.DEFINE_bool('kalpha2', True, 'Remove the Kα2 lines of resolved doublets (for an anode\'s weighted Kα).')
  flags.DEFINE_integer('lines', defaults.lines, 'N: the first N lines are indexed (M_N, F_N).')
  flags.DEFINE_float('m20_min', defaults.m20_min, 'Least M_N of an accepted cell.')
  flags.DEFINE_integer('max_unindexed', defaults.max_unindexed, 'Most unindexed lines of an accepted cell.')
  flags.DEFINE_float('tolerance', defaults.tolerance, 'Degrees 2θ: a line within this of a calculated one is indexed.')
  flags.DEFINE_float('max_volume', defaults.max_volume, 'Largest cell volume searched, Å³.')
  flags.DEFINE_bool('evaluate', False, 'Score the crystal system of the best cell on the test sets instead.')
  flags.DEFINE_string('corpus', None, 'Corpus for --evaluate (its test split).')
  flags.DEFINE_string('split', 'test', 'Corpus split for --evaluate.')
  flags.DEFINE_integer('examples', None, 'The first this many structures of the split (default: all).')
  flags.DEFINE_list('sets', ['exact', 'equivariance', 'invariance'], 'Corpus sets for --evaluate: '
                    'exact (peak-list positions), equivariance (train draws), invariance (invariance_test draws).')
  flags.DEFINE_string('experimental', None, 'Measured patterns (.npz like rruff_dev.npz) for --evaluate.')
  flags.DEFINE_integer('eval_seed', config_base.paper_config().eval_seed, 'Seed of the rendered sets\' draws.')
  flags.DEFINE_string('out', None, 'Folder for --evaluate\'s metrics.json and per-pattern predictions.')
  flags.DEFINE_bool('fit_combination', False, 'Fit the combination of a model\'s crystal system with the search\'s '
                    'cells (autoindex/combine.py, used by predict --index) on held-out simulated patterns of --corpus '
                    'instead, and write it beside the model (--checkpoint/combination.json).')
  flags.DEFINE_string('checkpoint', None, 'With --fit_combination: the model (default: the bundled model).')
  flags.DEFINE_string('distribution', 'lab', 'With --fit_combination: the augmentation the patterns are rendered '
                      'with (augment/params.py).')
  flags.DEFINE_integer('start', 4096, 'With --fit_combination: the first test structure used (the trainer\'s '
                       'evaluation reads the first config.eval_examples; these are further in).', lower_bound=0)
  flags.DEFINE_float('budget', combine.DEFAULT_BUDGET, 'Seconds of search per pattern (--fit_combination); a '
                     'search that runs out of it keeps the network\'s answer.')
  flags.DEFINE_integer('workers', None, 'Search processes (default: the CPU cores).', lower_bound=1)


def settings_from_flags() -> search.Settings:
  return dataclasses.replace(search.Settings(), lines=FLAGS.lines, m20_min=FLAGS.m20_min,
                             max_unindexed=FLAGS.max_unindexed, tolerance=FLAGS.tolerance,
                             max_volume=FLAGS.max_volume)


def observed_lines(path: str, wavelength: float | None, remove_background: bool = True,
                   kalpha2: bool = True) -> tuple[np.ndarray, float, list[str]]:
  """(lines [n] in degrees 2θ at the measurement wavelength, that wavelength (Å), warnings) of one file, read and
  brought to the model grid as predict does (io.measured.load). Raises PatternError (or ValueError) for a bad
  file."""
  grid = grid_lib.config()
  m = measured.load(path, grid, wavelength, grid_lib.WAVELENGTH, remove_background)
  if not m.ok:
    raise patterns_lib.PatternError(m.error)
  tt, height = peaks_lib.pick(m.values, grid_lib.bin_centres(grid))
  # Back to the measurement's own 2θ, where a zero shift is one number.
  tt = wavelength_lib.convert_two_theta(tt, grid_lib.WAVELENGTH, m.wavelength)
  ok = np.isfinite(tt)
  tt, height = tt[ok], height[ok]
  if kalpha2:
    tt, height = peaks_lib.strip_kalpha2(tt, height, m.wavelength, peaks_lib.doublet(m.wavelength))
  return tt, m.wavelength, list(m.warnings)


def cell_columns(solutions: list[search.Solution], top: int) -> dict:
  """The CSV columns of the best `top` cells."""
  row = {}
  for r, x in enumerate(solutions[:top], 1):
    a, b, c, alpha, beta, gamma = x.cell
    row.update({f'cell_{r}_system': x.crystal_system, f'cell_{r}_a': f'{a:.4f}', f'cell_{r}_b': f'{b:.4f}',
                f'cell_{r}_c': f'{c:.4f}', f'cell_{r}_alpha': f'{alpha:.3f}', f'cell_{r}_beta': f'{beta:.3f}',
                f'cell_{r}_gamma': f'{gamma:.3f}', f'cell_{r}_volume': f'{x.volume:.2f}',
                f'cell_{r}_zero_shift': f'{x.zero_shift:.4f}', f'cell_{r}_N': x.n, f'cell_{r}_M_N': f'{x.m:.1f}',
                f'cell_{r}_F_N': f'{x.f:.1f} ({x.mean_error:.4f}, {x.n_possible})',
                f'cell_{r}_unindexed': x.unindexed})
  return row


def cell_line(row: dict) -> str:
  """What the terminal shows of a file's row: its best cell (system, a b c alpha beta gamma, volume, M_N and the
  unindexed lines) or that there is none."""
  if row.get('crystal_system') == NO_SOLUTION or 'cell_1_a' not in row:
    best = f"; best try {row['cell_1_system']} M{row['cell_1_N']} {row['cell_1_M_N']}" if 'cell_1_a' in row else ''
    return f"{row['file']}: no solution ({row['lines']} lines{best})"
  c = {k: row[f'cell_1_{k}'] for k in ('a', 'b', 'c', 'alpha', 'beta', 'gamma', 'volume', 'N', 'M_N', 'unindexed')}
  return (f"{row['file']}: {row['crystal_system']} a {c['a']} b {c['b']} c {c['c']} Å, α {c['alpha']} β {c['beta']} "
          f"γ {c['gamma']}°, V {c['volume']} Å³, M{c['N']} {c['M_N']}, {c['unindexed']} of {c['N']} lines "
          f"unindexed")


def index_files(paths: list[str], wavelength: float | None, settings: search.Settings, top: int = 3,
                remove_background: bool = True, kalpha2: bool = True) -> list[dict]:
  """One row per file (dicts, in input order)."""
  rows = []
  for path in paths:
    start = time.perf_counter()
    try:
      tt, measured_at, warnings = observed_lines(path, wavelength, remove_background, kalpha2)
    except (patterns_lib.PatternError, ValueError, FloatingPointError) as e:
      msg = str(e) if str(e).startswith(path) else f'{path}: {e}'
      rows.append({'file': path, 'status': 'error', 'error': msg})
      print(f'error: {msg}', file=sys.stderr)
      continue
    result = search.index(tt, measured_at, settings)
    row = {'file': path, 'status': 'ok', 'error': '', 'warning': '; '.join(warnings), 'wavelength': measured_at,
           'lines': len(tt), 'crystal_system': result.best.crystal_system if result.best else NO_SOLUTION,
           'seconds': f'{time.perf_counter() - start:.2f}'}
    row.update(cell_columns(result.solutions, top))
    rows.append(row)
  return rows


def check_flags() -> tuple[bool, float | None]:
  checks = cli.Checks()
  wl = checks.wavelength(FLAGS.wavelength, FLAGS.anode, allow_none=True)
  checks.number('top', FLAGS.top, 1, 50, integer=True)
  checks.number('lines', FLAGS.lines, 6, 100, integer=True)
  checks.number('m20_min', FLAGS.m20_min, 0)
  checks.number('max_unindexed', FLAGS.max_unindexed, 0, FLAGS.lines, integer=True)
  checks.number('tolerance', FLAGS.tolerance, 0, 1, lo_open=True)
  checks.number('max_volume', FLAGS.max_volume, 1, lo_open=True)
  if FLAGS.fit_combination:
    checks.require(not FLAGS.evaluate, 'evaluate', FLAGS.evaluate, 'not with --fit_combination')
    if checks.require(bool(FLAGS.corpus), 'corpus', FLAGS.corpus, 'with --fit_combination: a corpus folder'):
      try:
        corpus_lib.dataset_dir(FLAGS.corpus)
      except FileNotFoundError as e:
        checks.require(False, 'corpus', FLAGS.corpus, str(e).split(': ', 1)[-1])
    checks.require(FLAGS.distribution in augment_params.DISTRIBUTIONS, 'distribution', FLAGS.distribution,
                   f'one of {", ".join(augment_params.DISTRIBUTIONS)}')
    checks.number('budget', FLAGS.budget, 0, lo_open=True)
    checks.number('examples', FLAGS.examples, 100, integer=True, allow_none=True)
  elif FLAGS.evaluate:
    checks.require(bool(FLAGS.corpus or FLAGS.experimental), 'corpus', FLAGS.corpus,
                   'a corpus folder (or give --experimental)')
    checks.require(all(s in evaluation.SETS[:3] for s in FLAGS.sets), 'sets', ','.join(FLAGS.sets),
                   f'some of {", ".join(evaluation.SETS[:3])}')
    checks.number('examples', FLAGS.examples, 1, integer=True, allow_none=True)
    if FLAGS.out:
      checks.output_dir('out', FLAGS.out)
  else:
    checks.output_file('output', FLAGS.output)
  return not checks.report('index'), wl


def evaluate(settings: search.Settings) -> dict:
  """{set: evaluation.summary} of the corpus sets and the measured set, printed as they finish."""
  import tqdm  # pylint: disable=g-import-not-at-top
  results, per_pattern = {}, {}
  jobs = []
  if FLAGS.corpus:
    n = evaluation.corpus_examples(FLAGS.corpus, FLAGS.split, FLAGS.examples)
    jobs = [(name, n, lambda name=name: evaluation.corpus_items(FLAGS.corpus, FLAGS.split, name, FLAGS.examples,
                                                                FLAGS.eval_seed)) for name in FLAGS.sets]
  if FLAGS.experimental:
    experimental = evaluation.measured_items(FLAGS.experimental)[0]
    jobs.append(('experimental', len(experimental), lambda: experimental))
  for name, total, items in jobs:
    with tqdm.tqdm(desc=f'indexing {name}', unit='pattern', total=total, file=sys.stderr) as bar:
      out = evaluation.run(items(), grid_lib.WAVELENGTH, settings, bar)
    results[name] = evaluation.summary(out)
    per_pattern[name] = out
    m = results[name]
    print(f"INDEX {name} ({m['examples']}): crystal system {m['crystal_system_top1']:.3f}, no solution "
          f"{m['no_solution']:.3f}, trigonal+hexagonal as one {m['crystal_system_top1_trigonal_hexagonal_merged']:.3f}"
          f", {m['seconds_per_pattern_mean']:.2f} s per pattern", flush=True)
  results['settings'] = dataclasses.asdict(settings)
  results['command'] = ' '.join(sys.argv)
  if FLAGS.out:
    with outputs.write(f'{FLAGS.out}/metrics.json') as f:
      json.dump(results, f, indent=1)
    labels = spacegroups.CRYSTAL_SYSTEMS + (NO_SOLUTION,)
    for name, out in per_pattern.items():
      outputs.write_rows(f'{FLAGS.out}/{name}_predictions.csv', [
          {'pattern': p, 'truth': labels[t], 'predicted': labels[c], 'm': f'{m:.2f}', 'seconds': f'{s:.3f}'}
          for p, t, c, m, s in zip(out['names'], out['truth'], out['predicted'], out['m'], out['seconds'])])
  return results


def fit_combination(settings: search.Settings) -> int:
  """Fits autoindex.combine's combination for a model on held-out simulated patterns and writes it beside the
  model; prints its accuracy on them against the network's and the search's alone."""
  from difcon_jax.evaluation import sets as eval_sets  # pylint: disable=g-import-not-at-top  (jax: only this mode needs it)
  from difcon_jax.inference import model as inference  # pylint: disable=g-import-not-at-top
  model = inference.Model(FLAGS.checkpoint)
  out = os.path.join(model.folder, combine.COMBINATION_FILE)
  data = eval_sets.SimulatedSet(FLAGS.corpus, FLAGS.distribution, model.config.num_bins, model.config.two_theta_max,
                                64, model.config.get('eval_seed', 1), FLAGS.examples or 1500, start=FLAGS.start)
  kept = []
  batches = (kept.append(b) or b for b in data)
  preds = eval_sets.run(model, batches, keep_logits=True)
  x = np.concatenate([np.asarray(b.x)[:b.count] for b in kept])
  evidence = combine.search_patterns(x, grid_lib.bin_centres(model.grid), model.wavelength, FLAGS.budget,
                                     FLAGS.workers, settings=settings)
  truth = preds.labels['crystal_system']
  record = {'model': model.source, 'corpus': FLAGS.corpus, 'split': 'test',
            'structures': [FLAGS.start, FLAGS.start + len(x)], 'distribution': FLAGS.distribution,
            'budget_s': FLAGS.budget, 'command': ' '.join(['python -m difcon_jax.index'] + sys.argv[1:])}
  fitted = combine.fit(combine.network_probs(preds.logits), evidence, truth, record, settings)
  fitted.save(out)
  net = np.argmax(combine.network_probs(preds.logits), 1)
  both = np.argmax(combine.combined_probs(combine.network_probs(preds.logits), evidence, fitted, settings), 1)
  alone = np.array([spacegroups.CRYSTAL_SYSTEMS.index(e.chosen.crystal_system) if e.chosen else -1
                    for e in evidence])
  timed_out = np.mean([e.timed_out for e in evidence])
  print(f'combination fitted on {fitted.record["fitted_on"]} of {len(x)} patterns ({FLAGS.distribution}, '
        f'{FLAGS.corpus} test structures {FLAGS.start}-{FLAGS.start + len(x) - 1}; {timed_out:.1%} searches out of '
        f'time): crystal system on these patterns: network {np.mean(net == truth):.3f}, indexing alone '
        f'{np.mean(alone == truth):.3f}, combined {np.mean(both == truth):.3f} -> {out}')
  return 0


def main(argv):
  ok, wl = check_flags()
  if not ok:
    return cli.USAGE_ERROR
  settings = settings_from_flags()
  if FLAGS.evaluate:
    evaluate(settings)
    return 0
  if FLAGS.fit_combination:
    return fit_combination(settings)
  inputs = cli.pattern_inputs(argv)
  if not inputs:
    raise app.UsageError('give pattern files with --input (or as arguments)')
  paths = inputs_lib.expand_inputs(inputs)
  if not paths:
    print(f'error: no pattern files in {inputs}', file=sys.stderr)
    return cli.USAGE_ERROR
  rows = index_files(paths, wl, settings, FLAGS.top, FLAGS.remove_background, FLAGS.kalpha2)
  outputs.write_rows(FLAGS.output, rows)
  for row in rows:
    if row['status'] == 'ok':
      print(cell_line(row))
  failed = sum(r['status'] != 'ok' for r in rows)
  solved = sum(r.get('crystal_system', NO_SOLUTION) != NO_SOLUTION for r in rows)
  print(f'{solved} indexed, {len(rows) - failed - solved} without a solution, {failed} failed -> {FLAGS.output}')
  return 1 if failed else 0


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
