r"""Batch prediction on measured powder patterns.

  python -m difcon_jax.predict [--checkpoint=DIR] --input=PATH [--input=PATH ...] [PATH ...] \
      --output=preds.csv [--wavelength=1.5406 | --anode=Cu] [--top-k=5] [--embeddings=emb.npy]

Inputs are files, folders or globs (quote them). Each file gets one CSV row: the top-k crystal systems,
extinction groups and space groups (number and symbol) with probabilities, the space groups led by those of
the predicted crystal system. A file that cannot be used gets a row with its error, one line on stderr, and the
rest still come out; the exit status is 1 when any failed. A file read with a doubt (NaN rows dropped, decimal
commas, no wavelength) is predicted with the doubt in its row's `warning`. Flags and the output paths are checked
before any work (exit status 2); the CSV and the embeddings are written atomically.
"""

from __future__ import annotations

import csv
import sys

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tqdm

from difcon_jax import cli
from difcon_jax import grid as grid_lib
from difcon_jax.crystallography import spacegroups
from difcon_jax.io import patterns as patterns_lib

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string('checkpoint', None, 'Training workdir or exported model (default: the bundled model, '
                      'difcon_jax/pretrained/default).')
  flags.DEFINE_multi_string('input', [], 'Pattern file, folder or glob; repeat or separate with commas.')
  flags.DEFINE_string('output', 'predictions.csv', 'CSV to write.')
  flags.DEFINE_float('wavelength', None, 'Measurement wavelength, Å (else the file\'s, else Cu Kα).')
  flags.DEFINE_string('anode', None, 'Cu, Mo, Co, Fe, Cr or Ag (instead of --wavelength).')
  flags.DEFINE_integer('top_k', 5, 'Ranked labels per head.')
  flags.DEFINE_alias('top-k', 'top_k')
  flags.DEFINE_string('embeddings', None, 'Write the embeddings of the good files here (.npy, rows in CSV order).')
  flags.DEFINE_integer('batch_size', 64, 'Patterns per model call.')
  flags.DEFINE_bool('remove_background', True, 'Subtract a SNIP background before prediction.')


def prepare(path, grid, wavelength, remove_background=True,
            training_wavelength: float = grid_lib.WAVELENGTH) -> tuple[np.ndarray, list[str]]:
  """One file on the model grid [bins] and its warnings; raises PatternError (or ValueError) for a bad file."""
  from difcon_jax import inference  # pylint: disable=g-import-not-at-top
  g = inference.to_grid(patterns_lib.read_pattern(path), grid, wavelength, training_wavelength, remove_background)
  return g.values, g.warnings


def predict_files(paths, model, wavelength, top_k=5, batch_size=64, remove_background=True, progress=True):
  """Rows (dicts, in input order) and the embeddings [good files, dim]."""
  from difcon_jax import eval_sets  # pylint: disable=g-import-not-at-top
  from difcon_jax import inference  # pylint: disable=g-import-not-at-top
  rows, good, grid_values = [], [], []
  for path in tqdm.tqdm(paths, desc='reading', unit='file', file=sys.stderr, disable=not progress):
    try:
      values, warnings = prepare(path, model.grid, wavelength, remove_background, model.wavelength)
      for w in warnings:
        logging.warning('%s', w)
      rows.append({'file': path, 'status': 'ok', 'error': '', 'warning': '; '.join(warnings)})
      good.append(len(rows) - 1)
      grid_values.append(values)
    except (patterns_lib.PatternError, ValueError, FloatingPointError) as e:
      msg = str(e) if str(e).startswith(path) else f'{path}: {e}'
      rows.append({'file': path, 'status': 'error', 'error': msg, 'warning': ''})
      print(f'error: {msg}', file=sys.stderr)
  x = np.stack(grid_values) if grid_values else np.zeros((0, model.grid.num_bins), np.float32)
  batches = eval_sets.grid_batches(x, [rows[i]['file'] for i in good], batch_size)
  preds = eval_sets.run(model, tqdm.tqdm(batches, desc='predicting', unit='batch', file=sys.stderr,
                                         total=-(-len(x) // batch_size), disable=not progress),
                        top_k, embeddings=True)
  for j, i in enumerate(good):
    rows[i].update(inference.prediction_columns(preds.ranked, j, top_k))
  emb = preds.embeddings if len(good) else np.zeros((0, 0), np.float32)
  return rows, emb


def check_flags() -> tuple[bool, float | None]:
  """(ok, measurement wavelength or None); prints one line per bad flag, before any work."""
  checks = cli.Checks()
  wl = checks.wavelength(FLAGS.wavelength, FLAGS.anode, allow_none=True)
  checks.number('top_k', FLAGS.top_k, 1, spacegroups.NUM_SPACE_GROUPS, integer=True)
  checks.number('batch_size', FLAGS.batch_size, 1, integer=True)
  checks.output_file('output', FLAGS.output)
  checks.output_file('embeddings', FLAGS.embeddings, allow_none=True)
  return not checks.report('predict'), wl


def main(argv):
  inputs = [p for item in FLAGS.input for p in item.split(',') if p] + list(argv[1:])
  if not inputs:
    raise app.UsageError('give pattern files with --input (or as arguments)')
  ok, wl = check_flags()
  if not ok:
    return cli.USAGE_ERROR
  paths = patterns_lib.expand_inputs(inputs)
  if not paths:
    print(f'error: no pattern files in {inputs}', file=sys.stderr)
    return 2
  from difcon_jax import inference  # pylint: disable=g-import-not-at-top
  try:
    model = inference.Model(FLAGS.checkpoint)
  except FileNotFoundError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  rows, emb = predict_files(paths, model, wl, FLAGS.top_k, FLAGS.batch_size, FLAGS.remove_background)
  fields = list(dict.fromkeys(k for r in rows for k in r))
  with cli.atomic_write(FLAGS.output, newline='') as f:
    writer = csv.DictWriter(f, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
  if FLAGS.embeddings:
    with cli.atomic_write(FLAGS.embeddings, 'wb') as f:
      np.save(f, emb)
  failed = sum(r['status'] != 'ok' for r in rows)
  print(f'{len(rows) - failed} predicted, {failed} failed -> {FLAGS.output} (model: {model.source})')
  return 1 if failed else 0


if __name__ == '__main__':
  define_flags()
  app.run(main)
