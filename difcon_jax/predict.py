r"""Batch prediction on measured powder patterns.

  python -m difcon_jax.predict [--checkpoint=DIR] --input=PATH [--input=PATH ...] [PATH ...] \
      --output=preds.csv [--wavelength=1.5406 | --anode=Cu] [--top_k=5] [--embeddings=emb.npy]

Inputs are files, folders or globs (quote them). Each file gets one CSV row: the top-k crystal systems,
extinction groups and space groups (number and symbol) with probabilities, the extinction groups and space groups
led by those of the predicted crystal system. A file that cannot be used gets a row with its error, one line on stderr, and the
rest still come out; the exit status is 1 when any failed. A file read with a doubt (NaN rows dropped, decimal
commas, no wavelength) is predicted with the doubt in its row's `warning`. Flags and the output paths are checked
before any work (exit status 2): an output that is one of the inputs, a file of the model or another output is
refused. The CSV and the embeddings are written atomically (devices, FIFOs and /dev/stdout as streams). Folders
and globs list each real file once and never loop through symlinks; a FIFO or device among the inputs gets an error
row without being opened.

By default each pattern's unit cells are searched too (difcon_jax/autoindex, --index_budget CPU seconds per pattern,
in a process pool) and the crystal systems ranked by the network and the cells together with the model's
combination.json (autoindex/combine.py; the network alone where a search runs out of time or the model has none,
which is said); --noindex ranks by the network alone, as `evaluate` does without --index.

What a person reads: for up to 20 files, a short table per file (top crystal systems, extinction groups with their
space groups, top space groups with Hermann-Mauguin symbols, probabilities, warnings beside the file), else one
line; the last line gives the counts, the CSV and the model. --format=summary writes a narrow CSV (the first label
of each head, the ranked space groups in one cell) instead of the full one; --report=DIR writes DIR/index.html,
a page with a sortable table and per file the pattern as read, the pattern the model saw and the ranked
predictions as bars (difcon_jax/io/report.py).
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags
import numpy as np
import tqdm

from difcon_jax.io import cli
from difcon_jax.crystallography import pattern_grid as grid_lib
from difcon_jax.inference import rows as summary
from difcon_jax.crystallography import spacegroups
from difcon_jax.autoindex import combine
from difcon_jax.io import measured
from difcon_jax.io import inputs as inputs_lib
from difcon_jax.io import outputs
from difcon_jax.io import patterns as patterns_lib

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string('checkpoint', None, 'Training workdir or exported model (default: the bundled model, '
                      'difcon_jax/pretrained/default).')
  cli.define_pattern_input_flags()
  flags.DEFINE_string('output', 'predictions.csv', 'CSV to write.')
  flags.DEFINE_integer('top_k', 5, 'Ranked labels per head.')
  flags.DEFINE_string('embeddings', None, 'Write the embeddings of the good files here (.npy, rows in CSV order).')
  flags.DEFINE_integer('batch_size', 64, 'Patterns per model call.')
  flags.DEFINE_bool('remove_background', True, 'Subtract a SNIP background before prediction.')
  flags.DEFINE_enum('format', 'full', ['full', 'summary'], 'CSV columns: full (top-k of every head, for '
                    'programs) or summary (first label per head and the ranked space groups in one cell).')
  flags.DEFINE_string('report', None, 'Also write an HTML report into this folder (DIR/index.html: plots of each '
                      'pattern as read and as the model saw it, predictions as bars, a sortable table).')
  flags.DEFINE_bool('index', True, 'Search unit cells from the picked peaks (difcon_jax/autoindex) and rank the '
                    'crystal systems by the network and the cells together (indexing/combine.py, fitted for the model: '
                    'its combination.json; a model without one keeps the network\'s ranking and says so); the '
                    'extinction groups and space groups follow. Adds the cells (index_*, cell_*, <system>_cell '
                    'columns) and whether network and indexing agree. --noindex: the network alone.')
  flags.DEFINE_float('index_budget', combine.DEFAULT_BUDGET, 'With --index: seconds of cell search per pattern; a '
                     'search out of time keeps the network\'s ranking and says so.')
  flags.DEFINE_integer('index_workers', None, 'With --index: search processes (default: the CPU cores).')
  flags.DEFINE_bool('check_cells', False, 'Also say whether a cell of the predicted crystal system indexes the '
                    'picked peaks (columns cell_check, cell_check_m: its M20, cell_check_cell; difcon_jax/autoindex).')


def prepare(path, grid, wavelength, remove_background=True,
            training_wavelength: float = grid_lib.WAVELENGTH) -> tuple[np.ndarray, list[str]]:
  """One file on the model grid [bins] and its warnings (io.measured.load); raises PatternError for a bad file."""
  m = measured.load(path, grid, wavelength, training_wavelength, remove_background)
  if not m.ok:
    raise patterns_lib.PatternError(m.error)
  return m.values, list(m.warnings)


def _read_at(m: measured.Measured, given: float | None, training: float) -> str:
  """'0.7107 Å (the file)': the wavelength a pattern was read at and where it came from, for its row."""
  if m.wavelength is None:
    return ''
  if given is not None:
    source = 'the command line'
  elif m.file_wavelength is not None:
    source = 'the file'
  else:
    source = f'not in the file: the training wavelength {training:g} Å assumed'
  return f'{m.wavelength:g} Å ({source})'


def predict_files(paths, model, wavelength, top_k=5, batch_size=64, remove_background=True, progress=True,
                  views: int = 0, check_cells: bool = False, index: bool = False, combination=None,
                  index_budget: float | None = combine.DEFAULT_BUDGET, index_workers: int | None = None):
  """Rows (dicts, in input order; summary.prediction_rows), the embeddings [good files, dim] and the report entries
  of the first `views` files (report.Entry: the pattern as read and on the model grid, decimated; [] when views
  is 0). With `index`, cells are searched (index_budget CPU seconds per pattern, index_workers processes) and the
  rows get summary.index_columns; with a `combination` too (autoindex.combine, fitted for the model) the crystal
  systems are ranked by both, else by the network alone."""
  from difcon_jax.evaluation import sets as eval_sets  # pylint: disable=g-import-not-at-top
  from difcon_jax.io import report  # pylint: disable=g-import-not-at-top
  statuses, values, shown = [], [], []
  bar = tqdm.tqdm(paths, desc='reading', unit='file', file=sys.stderr, disable=not progress)
  for path in bar:
    m = measured.load(path, model.grid, wavelength, model.wavelength, remove_background)
    statuses.append({**summary.status_row(m.name, m.error, m.warnings),
                     'wavelength': _read_at(m, wavelength, model.wavelength)})
    if m.ok:
      values.append(m.values)  # only the values: the patterns as read are kept for the report's files alone
    if len(shown) < views:
      shown.append(m)  # with the pattern as read, for the report
  x = np.stack(values) if values else np.zeros((0, model.grid.num_bins), np.float32)
  batches = eval_sets.grid_batches(x, [s['file'] for s in statuses if s['status'] == 'ok'], batch_size)
  preds = eval_sets.run(model, tqdm.tqdm(batches, desc='predicting', unit='batch', file=sys.stderr,
                                         total=-(-len(x) // batch_size), disable=not progress),
                        top_k, embeddings=True, keep_logits=index)
  evidence = []
  if index and len(x):
    evidence = combine.search_patterns(x, grid_lib.bin_centres(model.grid), model.wavelength, index_budget,
                                       index_workers, progress)
    if combination is not None:
      preds, _ = eval_sets.with_index(preds, evidence, combination, top_k)
  rows = summary.prediction_rows(statuses, preds.ranked, top_k)
  if evidence:
    summary.add_index_columns(rows, evidence, combine.network_probs(preds.logits))
  if check_cells:  # does the network's crystal system index the peaks? (indexing.check_columns)
    from difcon_jax import autoindex as indexing  # pylint: disable=g-import-not-at-top
    for j, row in enumerate(r for r in rows if r['status'] == 'ok'):
      row.update(indexing.check_columns(x[j], model.grid, row['crystal_system_1'], model.wavelength))
  centres = grid_lib.bin_centres(model.grid)
  seen = [report.entry(m.name, row, m.pattern, wavelength, centres, m.values) for m, row in zip(shown, rows)]
  emb = preds.embeddings if len(x) else np.zeros((0, 0), np.float32)
  return rows, emb, seen


def check_flags() -> tuple[bool, float | None]:
  """(ok, measurement wavelength or None); prints one line per bad flag, before any work."""
  checks = cli.Checks()
  wl = checks.wavelength(FLAGS.wavelength, FLAGS.anode, allow_none=True)
  checks.number('top_k', FLAGS.top_k, 1, spacegroups.NUM_SPACE_GROUPS, integer=True)
  checks.number('batch_size', FLAGS.batch_size, 1, integer=True)
  checks.number('index_budget', FLAGS.index_budget, 0, lo_open=True)
  checks.number('index_workers', FLAGS.index_workers, 1, integer=True, allow_none=True)
  checks.output_file('output', FLAGS.output)
  checks.output_file('embeddings', FLAGS.embeddings, allow_none=True)
  if FLAGS.report is not None:
    checks.output_dir('report', FLAGS.report)
  return not checks.report('predict'), wl


def check_outputs(paths: list[str], protected) -> bool:
  """Prints one line per output that would destroy an input, a file of the model (protected: (path, what)) or the
  other output; True when there is none. Before any work."""
  checks = cli.Checks()
  files = {'output': FLAGS.output, 'embeddings': FLAGS.embeddings,
           'report': FLAGS.report and os.path.join(FLAGS.report, 'index.html')}
  for flag, path, why in outputs.clashes(files, paths, protected):
    checks.require(False, flag, path, why)
  return not checks.report('predict')


def main(argv):
  inputs = cli.pattern_inputs(argv)
  if not inputs:
    raise app.UsageError('give pattern files with --input (or as arguments)')
  ok, wl = check_flags()
  if not ok:
    return cli.USAGE_ERROR
  found = inputs_lib.find_inputs(inputs)
  for line in found.skipped:  # no file is passed over without a word
    print(f'skipped {outputs.escape(line)}', file=sys.stderr)
  paths = found.paths
  if not paths:
    print(f'error: no pattern files in {inputs}', file=sys.stderr)
    return 2
  from difcon_jax.inference import model as inference  # pylint: disable=g-import-not-at-top
  if not check_outputs(paths, inference.model_files(FLAGS.checkpoint)):
    return cli.USAGE_ERROR
  try:
    model = inference.Model(FLAGS.checkpoint)
    combination = combine.find(model.folder) if FLAGS.index else None
  except (FileNotFoundError, inference.ModelError, combine.CombinationError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  if FLAGS.index and combination is None:
    print(f'note: the model {model.folder} has no {combine.COMBINATION_FILE} (the combination of its crystal system '
          f'with the cells, fitted for it): the crystal systems are ranked by the network alone, the cells shown '
          f'beside; fit one with python -m difcon_jax.index --fit_combination --checkpoint={model.folder} '
          f'--corpus=CORPUS', file=sys.stderr)
  from difcon_jax.io import report  # pylint: disable=g-import-not-at-top
  rows, emb, seen = predict_files(paths, model, wl, FLAGS.top_k, FLAGS.batch_size, FLAGS.remove_background,
                                  views=report.MAX_DETAILS if FLAGS.report else 0, check_cells=FLAGS.check_cells,
                                  index=FLAGS.index, combination=combination, index_budget=FLAGS.index_budget,
                                  index_workers=FLAGS.index_workers)
  written = [summary.narrow(r) for r in rows] if FLAGS.format == 'summary' else rows
  try:
    outputs.write_rows(FLAGS.output, written)
    if FLAGS.embeddings:
      with outputs.write(FLAGS.embeddings, 'wb') as f:
        np.save(f, emb)
  except outputs.OutputError as e:  # a full disk: one line, and no half-written file
    print(f'error: {e}', file=sys.stderr)
    return 1
  if FLAGS.report:
    # Files past the first MAX_DETAILS are in the page's table without plots.
    seen += [report.Entry(r['file'], r) for r in rows[len(seen):]]
    page = report.write(FLAGS.report, seen, 'difcon-jax predictions', model.source, model.wavelength,
                        csv_path=FLAGS.output)
  failed = sum(r['status'] != 'ok' for r in rows)
  tables = summary.terminal(rows)
  if tables:
    print(tables + '\n')
  else:  # too many files for a table each: the errors one line each, once
    for r in rows:
      if r['status'] != 'ok':
        print(f"error: {r['error']}", file=sys.stderr)
  counts = (f'{len(rows) - failed} predicted, {failed} failed' if tables else summary.overview(rows))
  if FLAGS.report:
    print(f'report: {page}')
  print(f'{counts} -> {FLAGS.output} (model: {model.source})')
  return 1 if failed else 0


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
