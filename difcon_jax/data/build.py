r"""Corpus builder: a folder of CIFs -> a TFDS dataset of Bragg peak lists with labels.

  python -m difcon_jax.data.build --cifs DIR --out DIR [--workers N] [--max_peaks 512] [--wavelength 1.5418]

Reads every .cif and .cif.gz below --cifs (sorted, so the same input gives the same dataset), computes each peak
list in a process pool with a progress bar, splits by compound (hash of reduced formula and space group: 90/10),
and writes ``OUT/difcon_corpus/1.0.0``. A file that fails is skipped and listed with its reason in
``OUT/build_report.json`` (and on stderr); so is a file whose declared space group disagrees with its atoms, unless
--on_mismatch=keep. Each file is read in a worker process with a memory cap (--memory_gb): one that crashes gemmi or
spglib, needs more memory or hangs is skipped too, and the rest go on. Flags and --out are checked before any work;
the exit status is 2 for a refused command line, 1 when any file was skipped (the corpus is still written).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tqdm

from difcon_jax import cli
from difcon_jax import grid as grid_lib
from difcon_jax.crystallography import diffraction
from difcon_jax.crystallography import spacegroups
from difcon_jax.crystallography import structure as structure_lib
from difcon_jax.data import corpus
from difcon_jax.data import synthetic
from difcon_jax.data import workers as workers_lib



def make_record(path: str, root: str, spec: corpus.CorpusSpec, default_b: float = 0.0,
                on_mismatch: str = 'skip', test_fraction: float = 0.1) -> dict:
  """One corpus record, or {'error': reason} (never raises for a bad file)."""
  source_id = os.path.relpath(path, root)
  try:
    structure, warning = structure_lib.read_structure(path, default_b=default_b)
    if warning and on_mismatch == 'skip':
      return {'source_id': source_id, 'error': warning}
    return record_from_structure(structure, source_id, spec, test_fraction,
                                 [*structure.notes, *([warning] if warning else [])])
  except (structure_lib.StructureError, ValueError, RuntimeError, MemoryError, FloatingPointError) as e:
    return _error_row(path, source_id, str(e) or type(e).__name__)


def _error_row(path: str, source_id: str, reason: str) -> dict:
  return {'source_id': source_id, 'error': reason if reason.startswith(path) else f'{path}: {reason}'}


def record_from_structure(structure: structure_lib.Structure, source_id: str, spec: corpus.CorpusSpec,
                          test_fraction: float = 0.1, notes: list[str] = ()) -> dict:
  """The corpus record of a structure (peak list at the corpus wavelength, labels, split).

  Raises:
    ValueError: no reflection in the range.
  """
  peaks = diffraction.peak_list(structure, spec.wavelength, 0.0, spec.two_theta_max)
  tt, inten = diffraction.merge_coincident(peaks)
  hkl = diffraction.merged_hkl(peaks)
  if len(tt) == 0:
    raise ValueError(f'no reflections below {spec.two_theta_max}° 2θ')
  notes = list(notes)
  if len(tt) > spec.max_peaks:
    notes.append(f'{len(tt)} peaks, kept the strongest {spec.max_peaks}')
    keep = np.sort(np.argsort(-inten, kind='stable')[:spec.max_peaks])
    tt, inten, hkl = tt[keep], inten[keep], hkl[keep]
  n = len(tt)
  pad = lambda x, dtype: np.pad(x.astype(dtype), [(0, spec.max_peaks - n)] + [(0, 0)] * (x.ndim - 1))
  sg = structure.space_group
  rec = {
      'two_theta': pad(tt, np.float32), 'intensity': pad(inten / inten.max(), np.float32),
      'hkl': pad(hkl, np.int16), 'num_peaks': np.int32(n),
      'crystal_system': spacegroups.crystal_system_index(sg), 'extinction_group': spacegroups.extinction_group(sg),
      'space_group': np.int32(sg), 'cell': np.array(structure.cell, dtype=np.float32),
      'formula': structure.formula, 'source_id': source_id,
      'split': corpus.split_of(structure.formula, sg, test_fraction),
  }
  if notes:
    rec['notes'] = notes
  return rec


def _work(args):
  return make_record(*args)


def _crashed(job: tuple, reason: str) -> dict:
  """The row of a file whose worker died (a native crash, the memory cap) or overran its time."""
  path, root = job[0], job[1]
  return _error_row(path, os.path.relpath(path, root), reason)


SECONDS_PER_FILE = 600  # a worker still busy with one CIF after this is stopped and the file skipped


def check_output(out: str) -> None:
  """Creates `out` if needed; raises ValueError unless it is a folder we can write (checked before any work)."""
  checks = cli.Checks()
  if not checks.output_dir('out', out):
    raise ValueError(checks.errors[0])


def build(cif_root: str, out: str, spec: corpus.CorpusSpec = corpus.CorpusSpec(), workers: int | None = None,
          default_b: float = 0.0, on_mismatch: str = 'skip', test_fraction: float = 0.1,
          progress: bool = True, memory_limit: int | None = workers_lib.DEFAULT_MEMORY_LIMIT) -> dict:
  """Builds the corpus; returns the report (also written to OUT/build_report.json).

  Each CIF is read in a worker process (workers_lib.imap) with `memory_limit` bytes: a file that crashes gemmi or
  spglib, needs more memory or hangs is skipped with its reason, and the others go on.
  """
  check_output(out)
  paths = corpus.find_cifs(cif_root)
  if not paths:
    raise FileNotFoundError(f'{cif_root}: no .cif or .cif.gz files')
  workers = workers or os.cpu_count() or 1
  jobs = [(p, cif_root, spec, default_b, on_mismatch, test_fraction) for p in paths]
  start = time.time()
  bar = tqdm.tqdm(total=len(jobs), desc='structures', unit='cif', file=sys.stderr, disable=not progress)
  results = []
  for rec in workers_lib.imap(_work, jobs, min(workers, len(jobs)), on_failure=_crashed,
                              memory_limit=memory_limit, timeout=SECONDS_PER_FILE):
    results.append(rec)
    bar.update()
  bar.close()
  return write_corpus(results, out, spec, {'cif_root': os.path.abspath(cif_root), 'files': len(paths)},
                      time.time() - start)


def write_corpus(results: list[dict], out: str, spec: corpus.CorpusSpec, source: dict, elapsed: float,
                 extra_skipped: list[dict] = ()) -> dict:
  """Writes make_record-style results (records or {'source_id', 'error'}) as the corpus under out.

  Returns the report (also written to OUT/build_report.json): `source` describes where the structures came from.
  """
  records = {s: [] for s in corpus.SPLITS}
  skipped, notes = list(extra_skipped), []
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
      **source, 'dataset': dataset_dir,
      'written': {s: len(v) for s, v in records.items()}, 'skipped': skipped, 'notes': notes,
      'seconds': round(elapsed, 2), 'structures_per_second': round(len(results) / max(elapsed, 1e-9), 1),
      'spec': {'wavelength': spec.wavelength, 'two_theta_max': spec.two_theta_max, 'max_peaks': spec.max_peaks},
  }
  with cli.atomic_write(os.path.join(out, 'build_report.json')) as f:
    json.dump(report, f, indent=1)
  return report

def _synthetic_record(outcome: synthetic.Outcome, spec: corpus.CorpusSpec, test_fraction: float) -> tuple:
  """(record or {'source_id', 'error'}, failed draws) of one synthetic structure; runs in a worker."""
  c = outcome.crystal
  if c is None:
    sg, reason = outcome.failures[-1]
    return {'source_id': f'index {outcome.index}', 'error': f'no structure (last: space group {sg}, {reason})'}, \
        outcome.failures
  try:
    return record_from_structure(c.structure, c.structure.name, spec, test_fraction), outcome.failures
  except ValueError as e:
    return {'source_id': c.structure.name, 'error': f'{c.structure.name}: {e}'}, outcome.failures


def build_synthetic(count: int, out: str, seed: int = 0, prior: str = 'realistic',
                    spec: corpus.CorpusSpec = corpus.CorpusSpec(), workers: int | None = None,
                    test_fraction: float = 0.1, max_atoms: int = synthetic.MAX_ATOMS, progress: bool = True) -> dict:
  """Builds a corpus of `count` synthetic structures (difcon_jax.data.synthetic) without writing CIFs.

  The same (count, seed, prior) gives the same corpus whatever the number of workers; the report lists the
  failed draws per space group.
  """
  start = time.time()
  finish = functools.partial(_synthetic_record, spec=spec, test_fraction=test_fraction)
  results, failures = [], []
  for rec, fails in synthetic.stream(count, seed, prior, workers, finish, max_atoms, progress=progress):
    results.append(rec)
    failures += fails
  source = {'synthetic': {'count': count, 'seed': seed, 'prior': prior, 'max_atoms': max_atoms,
                          'failed_draws': synthetic.failure_summary(failures)}, 'files': count}
  return write_corpus(results, out, spec, source, time.time() - start)


FLAGS = flags.FLAGS


def define_flags():
  """Command-line flags; defined only when run as a program, so that importing this module defines none."""
  flags.DEFINE_string('cifs', None, 'Folder of CIFs (searched recursively for .cif and .cif.gz).')
  flags.DEFINE_integer('synthetic', None, 'Instead of --cifs: this many synthetic structures '
                       '(difcon_jax.data.synthetic), straight into the corpus.', lower_bound=1)
  flags.DEFINE_string('prior', 'realistic', 'With --synthetic: space-group prior, realistic, uniform or mixed:W.')
  flags.DEFINE_integer('seed', 0, 'With --synthetic: random seed.')
  flags.DEFINE_integer('max_atoms', synthetic.MAX_ATOMS, 'With --synthetic: most atoms per conventional cell.',
                       lower_bound=1)
  flags.DEFINE_string('out', None, 'Output folder.')
  flags.DEFINE_integer('workers', None, 'Processes (default: all CPU cores).')
  flags.DEFINE_integer('max_peaks', 512, 'Peaks kept per structure (the strongest).')
  flags.DEFINE_float('wavelength', grid_lib.WAVELENGTH, 'Wavelength of the peak lists, Å (the training wavelength).')
  flags.DEFINE_float('two_theta_max', grid_lib.TWO_THETA_MAX, 'Highest 2θ, degrees.')
  flags.DEFINE_float('test_fraction', 0.1, 'Share of compounds in the test split.')
  flags.DEFINE_float('default_b', 0.0, 'Isotropic B (Å²) for sites without displacement parameters.')
  flags.DEFINE_enum('on_mismatch', 'skip', ['skip', 'keep'],
                    'What to do with a CIF whose declared space group disagrees with its atoms.')
  flags.DEFINE_float('memory_gb', workers_lib.DEFAULT_MEMORY_LIMIT / 2**30, 'Memory cap per worker, GiB.')


def check_flags() -> bool:
  """Prints one line per bad flag (what is allowed); True when all are fine. Nothing is read or written before."""
  checks = cli.Checks()
  if FLAGS.cifs is not None:
    checks.require(os.path.isdir(FLAGS.cifs), 'cifs', FLAGS.cifs, 'a folder that exists')
  checks.output_dir('out', FLAGS.out)
  checks.number('workers', FLAGS.workers, 1, integer=True, allow_none=True)
  checks.number('max_peaks', FLAGS.max_peaks, 1, integer=True)
  checks.wavelength(FLAGS.wavelength, None)
  checks.number('two_theta_max', FLAGS.two_theta_max, 0, 180, lo_open=True, hi_open=True)
  checks.number('test_fraction', FLAGS.test_fraction, 0, 1)
  checks.number('default_b', FLAGS.default_b, 0, 100)
  checks.number('memory_gb', FLAGS.memory_gb, 0, lo_open=True)
  if FLAGS.synthetic:
    try:
      synthetic.prior_weights(FLAGS.prior)
    except ValueError as e:
      checks.require(False, 'prior', FLAGS.prior, str(e))
  return not checks.report('build')


def main(argv):
  del argv
  if not FLAGS.out or (FLAGS.cifs is None) == (FLAGS.synthetic is None):
    raise app.UsageError('--out and one of --cifs or --synthetic are required')
  if not check_flags():
    return cli.USAGE_ERROR
  spec = corpus.CorpusSpec(max_peaks=FLAGS.max_peaks, wavelength=FLAGS.wavelength,
                           two_theta_max=FLAGS.two_theta_max)
  try:
    if FLAGS.synthetic:
      report = build_synthetic(FLAGS.synthetic, FLAGS.out, FLAGS.seed, FLAGS.prior, spec, FLAGS.workers,
                               FLAGS.test_fraction, FLAGS.max_atoms)
    else:
      report = build(FLAGS.cifs, FLAGS.out, spec, FLAGS.workers, FLAGS.default_b, FLAGS.on_mismatch,
                     FLAGS.test_fraction, memory_limit=int(FLAGS.memory_gb * 2**30))
  except (FileNotFoundError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  for item in report['skipped']:
    print(f"skipped {item['reason']}", file=sys.stderr)
  what = 'synthetic structures' if FLAGS.synthetic else 'CIFs'
  print(f"{report['files']} {what} -> train {report['written']['train']}, test {report['written']['test']}, "
        f"skipped {len(report['skipped'])} ({report['structures_per_second']} structures/s); "
        f"dataset {report['dataset']}; report {os.path.join(FLAGS.out, 'build_report.json')}")
  return 1 if report['skipped'] else 0


if __name__ == '__main__':
  define_flags()
  app.run(main)
