r"""Corpus builder: a folder of CIFs -> a TFDS dataset of Bragg peak lists with labels.

  python -m difcon_jax.data.build --cifs DIR --out DIR [--workers N] [--max_peaks 512] [--wavelength 1.5418]

Reads every .cif and .cif.gz below --cifs (sorted, so the same input gives the same dataset), computes each peak
list in a process pool with a progress bar, splits by compound (hash of reduced formula and space group: 90/10),
and writes ``OUT/difcon_corpus/1.0.0``. A file that fails is skipped and listed with its reason in
``OUT/build_report.json``; so is a file whose declared space group disagrees with its atoms, unless
--on_mismatch=keep.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sys
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tqdm

from difcon_jax.crystallography import diffraction
from difcon_jax.crystallography import spacegroups
from difcon_jax.crystallography import structure as structure_lib
from difcon_jax.data import corpus



def make_record(path: str, root: str, spec: corpus.CorpusSpec, default_b: float = 0.0,
                on_mismatch: str = 'skip', test_fraction: float = 0.1) -> dict:
  """One corpus record, or {'error': reason} (never raises for a bad file)."""
  source_id = os.path.relpath(path, root)
  try:
    structure, warning = structure_lib.read_structure(path, default_b=default_b)
    if warning and on_mismatch == 'skip':
      return {'source_id': source_id, 'error': warning}
    peaks = diffraction.peak_list(structure, spec.wavelength, 0.0, spec.two_theta_max)
    tt, inten = diffraction.merge_coincident(peaks)
  except (structure_lib.StructureError, ValueError, RuntimeError, MemoryError, FloatingPointError) as e:
    msg = str(e)
    return {'source_id': source_id, 'error': msg if msg.startswith(path) else f'{path}: {msg}'}
  if len(tt) == 0:
    return {'source_id': source_id, 'error': f'{path}: no reflections below {spec.two_theta_max}° 2θ'}
  truncated = len(tt) > spec.max_peaks
  if truncated:
    keep = np.sort(np.argsort(-inten, kind='stable')[:spec.max_peaks])
    tt, inten = tt[keep], inten[keep]
  n = len(tt)
  pad = lambda x: np.pad(x.astype(np.float32), (0, spec.max_peaks - n))
  sg = structure.space_group
  rec = {
      'two_theta': pad(tt), 'intensity': pad(inten / inten.max()), 'num_peaks': np.int32(n),
      'crystal_system': spacegroups.crystal_system_index(sg), 'extinction_group': spacegroups.extinction_group(sg),
      'space_group': np.int32(sg), 'cell': np.array(structure.cell, dtype=np.float32),
      'formula': structure.formula, 'source_id': source_id,
      'split': corpus.split_of(structure.formula, sg, test_fraction),
  }
  notes = [w for w in (warning, f'{len(peaks)} peaks, kept the strongest {spec.max_peaks}' if truncated else None)
           if w]
  if notes:
    rec['notes'] = notes
  return rec


def _work(args):
  return make_record(*args)


def build(cif_root: str, out: str, spec: corpus.CorpusSpec = corpus.CorpusSpec(), workers: int | None = None,
          default_b: float = 0.0, on_mismatch: str = 'skip', test_fraction: float = 0.1,
          progress: bool = True) -> dict:
  """Builds the corpus; returns the report (also written to OUT/build_report.json)."""
  paths = corpus.find_cifs(cif_root)
  if not paths:
    raise FileNotFoundError(f'{cif_root}: no .cif or .cif.gz files')
  workers = workers or os.cpu_count() or 1
  jobs = [(p, cif_root, spec, default_b, on_mismatch, test_fraction) for p in paths]
  start = time.time()
  bar = tqdm.tqdm(total=len(jobs), desc='structures', unit='cif', file=sys.stderr, disable=not progress)
  results = []
  if workers == 1:
    for job in jobs:
      results.append(_work(job))
      bar.update()
  else:
    ctx = multiprocessing.get_context('spawn')  # no fork of a process that may hold JAX/TFDS threads
    with ctx.Pool(workers) as pool:
      for rec in pool.imap(_work, jobs, chunksize=max(1, min(64, len(jobs) // (8 * workers)))):
        results.append(rec)
        bar.update()
  bar.close()
  elapsed = time.time() - start

  records = {s: [] for s in corpus.SPLITS}
  skipped, notes = [], []
  for rec in results:
    if 'error' in rec:
      skipped.append({'source_id': rec['source_id'], 'reason': rec['error']})
      continue
    for note in rec.pop('notes', []):
      notes.append({'source_id': rec['source_id'], 'note': note})
    records[rec.pop('split')].append(rec)

  os.makedirs(out, exist_ok=True)
  target = os.path.join(out, corpus.NAME, corpus.VERSION)
  if os.path.exists(target):
    logging.info('replacing %s', target)
    shutil.rmtree(target)
  dataset_dir = corpus.write(records, spec, out)
  report = {
      'cif_root': os.path.abspath(cif_root), 'dataset': dataset_dir, 'files': len(paths),
      'written': {s: len(v) for s, v in records.items()}, 'skipped': skipped, 'notes': notes,
      'seconds': round(elapsed, 2), 'structures_per_second': round(len(paths) / max(elapsed, 1e-9), 1),
      'spec': {'wavelength': spec.wavelength, 'two_theta_max': spec.two_theta_max, 'max_peaks': spec.max_peaks},
  }
  with open(os.path.join(out, 'build_report.json'), 'w') as f:
    json.dump(report, f, indent=1)
  return report

FLAGS = flags.FLAGS


def define_flags():
  """Command-line flags; defined only when run as a program, so that importing this module defines none."""
  flags.DEFINE_string('cifs', None, 'Folder of CIFs (searched recursively for .cif and .cif.gz).')
  flags.DEFINE_string('out', None, 'Output folder.')
  flags.DEFINE_integer('workers', None, 'Processes (default: all CPU cores).')
  flags.DEFINE_integer('max_peaks', 512, 'Peaks kept per structure (the strongest).')
  flags.DEFINE_float('wavelength', 1.5418, 'Wavelength of the peak lists, Å.')
  flags.DEFINE_float('two_theta_max', 120.0, 'Highest 2θ, degrees.')
  flags.DEFINE_float('test_fraction', 0.1, 'Share of compounds in the test split.')
  flags.DEFINE_float('default_b', 0.0, 'Isotropic B (Å²) for sites without displacement parameters.')
  flags.DEFINE_enum('on_mismatch', 'skip', ['skip', 'keep'],
                                   'What to do with a CIF whose declared space group disagrees with its atoms.')


def main(argv):
  del argv
  if not FLAGS.cifs or not FLAGS.out:
    raise app.UsageError('--cifs and --out are required')
  spec = corpus.CorpusSpec(max_peaks=FLAGS.max_peaks, wavelength=FLAGS.wavelength,
                           two_theta_max=FLAGS.two_theta_max)
  try:
    report = build(FLAGS.cifs, FLAGS.out, spec, FLAGS.workers, FLAGS.default_b, FLAGS.on_mismatch,
                   FLAGS.test_fraction)
  except FileNotFoundError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  for item in report['skipped']:
    print(f"skipped {item['reason']}", file=sys.stderr)
  print(f"{report['files']} CIFs -> train {report['written']['train']}, test {report['written']['test']}, "
        f"skipped {len(report['skipped'])} ({report['structures_per_second']} structures/s); "
        f"dataset {report['dataset']}; report {os.path.join(FLAGS.out, 'build_report.json')}")
  return 0


if __name__ == '__main__':
  define_flags()
  app.run(main)
