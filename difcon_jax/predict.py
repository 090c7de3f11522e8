r"""Batch prediction on measured powder patterns.

  python -m difcon_jax.predict --checkpoint=runs/quickstart --input=PATH [--input=PATH ...] [PATH ...] \
      --output=preds.csv [--wavelength=1.5406 | --anode=Cu] [--top-k=5] [--embeddings=emb.npy]

Inputs are files, folders or globs (quote them). Each file gets one CSV row: the top-k crystal systems,
extinction groups and space groups (number and symbol) with probabilities, the space groups led by those of
the predicted crystal system. A file that cannot be used gets a row with its error, one line on stderr, and the
rest still come out; the exit status is 1 when any failed.
"""

from __future__ import annotations

import csv
import sys

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tqdm

from difcon_jax.crystallography import spacegroups
from difcon_jax.crystallography import wavelength as wavelength_lib
from difcon_jax.io import patterns as patterns_lib

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string('checkpoint', 'runs/quickstart', 'Training workdir (config.json + checkpoints).')
  flags.DEFINE_multi_string('input', [], 'Pattern file, folder or glob; repeat or separate with commas.')
  flags.DEFINE_string('output', 'predictions.csv', 'CSV to write.')
  flags.DEFINE_float('wavelength', None, 'Measurement wavelength, Å (else the file\'s, else Cu Kα).')
  flags.DEFINE_string('anode', None, 'Cu, Mo, Co, Fe, Cr or Ag (instead of --wavelength).')
  flags.DEFINE_integer('top_k', 5, 'Ranked labels per head.')
  flags.DEFINE_alias('top-k', 'top_k')
  flags.DEFINE_string('embeddings', None, 'Write the embeddings of the good files here (.npy, rows in CSV order).')
  flags.DEFINE_integer('batch_size', 64, 'Patterns per model call.')
  flags.DEFINE_bool('remove_background', True, 'Subtract a SNIP background before prediction.')


def predict_files(paths, model, wavelength, top_k=5, batch_size=64, remove_background=True, progress=True):
  """Rows (dicts, in input order) and the embeddings [good files, dim]."""
  from difcon_jax import inference  # pylint: disable=g-import-not-at-top
  rows, good, grid_values = [], [], []
  for path in tqdm.tqdm(paths, desc='reading', unit='file', file=sys.stderr, disable=not progress):
    try:
      pattern = patterns_lib.read_pattern(path)
      g = inference.to_grid(pattern, model.grid, wavelength, remove_background=remove_background)
      for w in g.warnings:
        logging.warning('%s', w)
      rows.append({'file': path, 'status': 'ok', 'error': ''})
      good.append(len(rows) - 1)
      grid_values.append(g.values)
    except patterns_lib.PatternError as e:
      rows.append({'file': path, 'status': 'error', 'error': str(e)})
      print(f'error: {e}', file=sys.stderr)
  embeddings = []
  for start in tqdm.tqdm(range(0, len(good), batch_size), desc='predicting', unit='batch', file=sys.stderr,
                         disable=not progress):
    x = np.stack(grid_values[start:start + batch_size])
    n = len(x)
    if n < batch_size:  # one compiled shape
      x = np.concatenate([x, np.zeros((batch_size - n,) + x.shape[1:], x.dtype)])
    logits, aux = model(x)
    top = inference.ranked(logits, top_k)
    embeddings.append(np.asarray(aux['embedding'])[:n])
    for j in range(n):
      row = rows[good[start + j]]
      for r in range(top_k):
        cs_i, cs_p = top['crystal_system']
        eg_i, eg_p = top['extinction_group']
        sg_i, sg_p = top['space_group']
        if r < cs_i.shape[1]:
          row[f'crystal_system_{r + 1}'] = spacegroups.CRYSTAL_SYSTEMS[cs_i[j, r]]
          row[f'crystal_system_{r + 1}_p'] = f'{cs_p[j, r]:.4f}'
        row[f'extinction_group_{r + 1}'] = spacegroups.extinction_group_label(int(eg_i[j, r]))
        row[f'extinction_group_{r + 1}_index'] = int(eg_i[j, r])
        row[f'extinction_group_{r + 1}_p'] = f'{eg_p[j, r]:.4f}'
        row[f'space_group_{r + 1}'] = int(sg_i[j, r])
        row[f'space_group_{r + 1}_symbol'] = spacegroups.symbol(int(sg_i[j, r]))
        row[f'space_group_{r + 1}_p'] = f'{sg_p[j, r]:.4f}'
  emb = np.concatenate(embeddings) if embeddings else np.zeros((0, 0), np.float32)
  return rows, emb


def main(argv):
  inputs = [p for item in FLAGS.input for p in item.split(',') if p] + list(argv[1:])
  if not inputs:
    raise app.UsageError('give pattern files with --input (or as arguments)')
  paths = patterns_lib.expand_inputs(inputs)
  if not paths:
    print(f'error: no pattern files in {inputs}', file=sys.stderr)
    return 2
  wl = wavelength_lib.anode_wavelength(FLAGS.anode) if FLAGS.anode else FLAGS.wavelength
  from difcon_jax import inference  # pylint: disable=g-import-not-at-top
  try:
    model = inference.Model(FLAGS.checkpoint)
  except FileNotFoundError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  rows, emb = predict_files(paths, model, wl, FLAGS.top_k, FLAGS.batch_size, FLAGS.remove_background)
  fields = list(dict.fromkeys(k for r in rows for k in r))
  with open(FLAGS.output, 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
  if FLAGS.embeddings:
    np.save(FLAGS.embeddings, emb)
  failed = sum(r['status'] != 'ok' for r in rows)
  print(f'{len(rows) - failed} predicted, {failed} failed -> {FLAGS.output} (model step {model.step})')
  return 1 if failed else 0


if __name__ == '__main__':
  define_flags()
  app.run(main)
