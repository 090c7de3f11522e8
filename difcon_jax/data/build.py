r"""Corpus builder: a folder or archive of CIFs -> a TFDS dataset of Bragg peak lists with labels.

  python -m difcon_jax.data.build --cifs DIR_OR_ARCHIVE --out DIR [--workers N] [--max_peaks 512] [--symprec 0.1]

Reads every .cif and .cif.gz below --cifs, or inside an archive of them (data/sources.py: in a fixed order, so the
same input gives the same dataset), computes each peak list in a process pool with a progress bar (rate, ETA), splits
by compound (hash of reduced formula and space group: 90/10),
and writes ``OUT/difcon_corpus/1.0.0``. A file that fails is skipped and listed with its reason in
``OUT/build_report.json`` (and on stderr); so is a file whose declared space group disagrees with its atoms, unless
--on_mismatch=keep. A CIF written in P1 (as the Materials Project, OQMD and AFLOW export structures) gives no
symmetry: its space group is the one spglib finds at --symprec and its cell the conventional cell of that group
(crystallography/standardise.py); the report counts them (space_group_found). Each file is read in a worker process with a memory cap (--memory_gb): one that crashes gemmi or
spglib, needs more memory or hangs is skipped too, and the rest go on. Flags and --out are checked before any work;
the exit status is 2 for a refused command line, 1 when any file was skipped (the corpus is still written).

A rebuild into an existing --out writes the new corpus beside the old one (OUT/.building-*) and swaps it in only
when complete, so a kill leaves the old corpus and its report as they were; build_report.json, whenever it exists,
describes the corpus beside it. One build at a time per --out (OUT/.build.lock): a second is refused at once, and
the lock of a build that died is taken over.

build_report.json records a digest of the inputs (every CIF's path and bytes, or the synthetic draw's parameters)
and of the settings that shape the corpus (flags, corpus format, package version). Running the same command again
finds the corpus built from the same inputs and reuses it, saying so in one line; --rebuild builds it again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tqdm

import difcon_jax
from difcon_jax.io import cli
from difcon_jax.io import folder_lock
from difcon_jax.crystallography import pattern_grid as grid_lib
from difcon_jax.crystallography import diffraction
from difcon_jax.crystallography import spacegroups
from difcon_jax.crystallography import structure as structure_lib
from difcon_jax.data import corpus
from difcon_jax.data import sources
from difcon_jax.data import synthetic
from difcon_jax.data import workers as workers_lib
from difcon_jax.io import outputs



def make_record(path: str, root: str, spec: corpus.CorpusSpec, default_b: float = 0.0,
                on_mismatch: str = 'skip', test_fraction: float = 0.1, text: bytes | None = None,
                source_id: str | None = None, symprec: float = structure_lib.SYMPREC) -> dict:
  """One corpus record, or {'error': reason} (never raises for a bad file).

  `text` holds the CIF when it is a member of an archive (then `path` names it as ARCHIVE:MEMBER and `source_id` is
  the member's name); otherwise the file at `path` is read and its source_id is its path relative to `root`.
  """
  source_id = source_id or os.path.relpath(path, root)
  try:
    structure, warning = structure_lib.read_structure(path, default_b=default_b, text=text, symprec=symprec)
    if warning and on_mismatch == 'skip':
      return {'source_id': source_id, 'error': warning}
    rec = record_from_structure(structure, source_id, spec, test_fraction,
                                [*structure.notes, *([warning] if warning else [])])
    rec['symmetry_found'] = structure.symmetry_found
    return rec
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


def _crashed(job: tuple, reason: str) -> dict:
  """The row of a file whose worker died (a native crash, the memory cap) or overran its time."""
  item = job[0]
  return _error_row(item.path, item.source_id, reason)


SECONDS_PER_FILE = 600  # a worker still busy with one CIF after this is stopped and the file skipped
REPORT = 'build_report.json'


def input_digest(settings: dict, source: str | None = None) -> str:
  """sha256 (hex) of what a corpus is built from: `settings` (JSON-serialisable: the flags that shape records
  and splits) with the corpus format and package version, and the CIFs of `source` (a folder: each file's path
  relative to it and its bytes; an archive: its bytes)."""
  h = hashlib.sha256(json.dumps({**settings, 'corpus_version': corpus.VERSION,
                                 'package_version': difcon_jax.__version__}, sort_keys=True).encode())
  if source is not None:
    sources.digest(source, h)
  return h.hexdigest()


def _cif_settings(spec: corpus.CorpusSpec, default_b: float, on_mismatch: str, test_fraction: float,
                  symprec: float) -> dict:
  return {'spec': [spec.wavelength, spec.two_theta_max, spec.max_peaks], 'default_b': default_b,
          'on_mismatch': on_mismatch, 'test_fraction': test_fraction, 'symprec': symprec}


def cif_digest(cif_root: str, spec: corpus.CorpusSpec = corpus.CorpusSpec(), default_b: float = 0.0,
               on_mismatch: str = 'skip', test_fraction: float = 0.1, symprec: float = structure_lib.SYMPREC) -> str:
  """input_digest of a build from a CIF folder or archive with these settings (what `build` records)."""
  return input_digest(_cif_settings(spec, default_b, on_mismatch, test_fraction, symprec), cif_root)


def synthetic_digest(count: int, seed: int, prior: str, max_atoms: int, spec: corpus.CorpusSpec,
                     test_fraction: float) -> str:
  """input_digest of a synthetic build (what `build_synthetic` records)."""
  return input_digest({'synthetic': [count, seed, prior, max_atoms], 'spec': [spec.wavelength, spec.two_theta_max,
                                                                                spec.max_peaks],
                       'test_fraction': test_fraction})


def previous_build(out: str, digest: str) -> dict | None:
  """The report of the corpus in `out` when it was built from inputs with this digest and is still there, else
  None (no corpus, another input, or a report from before digests were recorded)."""
  try:
    with open(os.path.join(out, REPORT)) as f:
      report = json.load(f)
    corpus.dataset_dir(out)
  except (OSError, ValueError):
    return None
  return report if report.get('input_digest') == digest else None


def lock_output(out: str) -> folder_lock.Lock:
  """Holds OUT/.build.lock for this build (a second build into OUT is refused at once, not after its work), then
  finishes or undoes what a build killed in OUT left (`recover`).

  Raises:
    folder_lock.LockedError: another live build writes into OUT (its pid and host named).
  """
  lock = folder_lock.acquire(out, LOCK, 'a corpus build')
  recover(out)
  return lock


def check_output(out: str) -> None:
  """Creates `out` if needed; raises ValueError unless it is a folder we can write (checked before any work)."""
  checks = cli.Checks()
  if not checks.output_dir('out', out):
    raise ValueError(checks.errors[0])


def build(cif_root: str, out: str, spec: corpus.CorpusSpec = corpus.CorpusSpec(), workers: int | None = None,
          default_b: float = 0.0, on_mismatch: str = 'skip', test_fraction: float = 0.1,
          progress: bool = True, memory_limit: int | None = workers_lib.DEFAULT_MEMORY_LIMIT,
          symprec: float = structure_lib.SYMPREC) -> dict:
  """Builds the corpus from a folder or an archive of CIFs (data/sources.py); returns the report (also written to
  OUT/build_report.json).

  Each CIF is read in a worker process (workers_lib.imap) with `memory_limit` bytes: a file that crashes gemmi or
  spglib, needs more memory or hangs is skipped with its reason, and the others go on. A CIF in P1 gets the space
  group spglib finds at `symprec` Å and its conventional cell (the report counts them: `space_group_found`).

  Raises:
    FileNotFoundError: the source holds no CIF.
    sources.SourceError: the source is neither a folder nor a readable archive, or an archive is damaged (nothing
      is written then).
  """
  check_output(out)
  problem = sources.check(cif_root)
  if problem:
    raise sources.SourceError(f'{cif_root}: {problem}')
  total = sources.count(cif_root)
  if not total:
    raise FileNotFoundError(f'{cif_root}: no .cif or .cif.gz files')
  lock = lock_output(out)  # held until the corpus is written (released when this function returns)
  try:
    workers = workers or os.cpu_count() or 1
    jobs = ((item, spec, default_b, on_mismatch, test_fraction, symprec) for item in sources.items(cif_root))
    start = time.time()
    bar = tqdm.tqdm(total=total, desc='structures', unit='cif', file=sys.stderr, disable=not progress,
                    smoothing=0.05)
    results = []
    for rec in workers_lib.imap(_work_item, jobs, min(workers, total), on_failure=_crashed,
                                memory_limit=memory_limit, timeout=SECONDS_PER_FILE):
      results.append(rec)
      bar.update()
    bar.close()
    digest = input_digest(_cif_settings(spec, default_b, on_mismatch, test_fraction, symprec), cif_root)
    return write_corpus(results, out, spec, {'cif_root': os.path.abspath(cif_root), 'files': total,
                                             'input_digest': digest}, time.time() - start)
  finally:
    lock.release()


def _work_item(job: tuple) -> dict:
  item, *settings = job
  spec, default_b, on_mismatch, test_fraction, symprec = settings
  return make_record(item.path, '', spec, default_b, on_mismatch, test_fraction, item.text, item.source_id, symprec)


def write_corpus(results: list[dict], out: str, spec: corpus.CorpusSpec, source: dict, elapsed: float,
                 extra_skipped: list[dict] = ()) -> dict:
  """Writes make_record-style results (records or {'source_id', 'error'}) as the corpus under out.

  Returns the report (also written to OUT/build_report.json): `source` describes where the structures came from.
  """
  records = {s: [] for s in corpus.SPLITS}
  skipped, notes = list(extra_skipped), []
  found = 0
  for rec in results:
    if 'error' in rec:
      skipped.append({'source_id': rec['source_id'], 'reason': rec['error']})
      continue
    found += bool(rec.pop('symmetry_found', False))
    for note in rec.pop('notes', []):
      notes.append({'source_id': rec['source_id'], 'note': note})
    records[rec.pop('split')].append(rec)

  os.makedirs(out, exist_ok=True)
  recover(out)
  # Built beside the corpus it replaces and swapped in only when complete: until then the old corpus and its
  # report stay as they were, and a kill leaves them (or, during the swap itself, what `recover` puts back).
  staging = tempfile.mkdtemp(dir=out, prefix=STAGING)
  try:
    corpus.write(records, spec, staging)
    report = {
        **source, 'dataset': os.path.join(os.path.abspath(out), corpus.NAME, corpus.VERSION),
        'written': {s: len(v) for s, v in records.items()}, 'space_group_found': found,
        'skipped': skipped, 'notes': notes,
        'seconds': round(elapsed, 2), 'structures_per_second': round(len(results) / max(elapsed, 1e-9), 1),
        'spec': {'wavelength': spec.wavelength, 'two_theta_max': spec.two_theta_max, 'max_peaks': spec.max_peaks},
    }
    with outputs.write(os.path.join(staging, REPORT)) as f:
      json.dump(report, f, indent=1)
    _swap_in(staging, out)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return report


STAGING = '.building-'  # OUT/.building-XXXX: a corpus being written
PREVIOUS = '.previous'  # OUT/.previous: the corpus being replaced, during the swap
LOCK = '.build.lock'  # held by the one build writing into OUT


def _swap_in(staging: str, out: str) -> None:
  """Replaces OUT's corpus and report by staging's, in renames within OUT. The report leaves first and comes back
  last, so build_report.json, whenever it exists, describes the corpus beside it."""
  target = os.path.join(out, corpus.NAME, corpus.VERSION)
  previous = os.path.join(out, PREVIOUS)
  shutil.rmtree(previous, ignore_errors=True)
  os.makedirs(previous)
  if os.path.exists(os.path.join(out, REPORT)):
    os.replace(os.path.join(out, REPORT), os.path.join(previous, REPORT))
  if os.path.exists(target):
    os.rename(target, os.path.join(previous, 'dataset'))
  os.makedirs(os.path.dirname(target), exist_ok=True)
  os.rename(os.path.join(staging, corpus.NAME, corpus.VERSION), target)
  os.replace(os.path.join(staging, REPORT), os.path.join(out, REPORT))
  shutil.rmtree(previous)


def recover(out: str) -> None:
  """Finishes or undoes a swap that a kill interrupted, and removes what unfinished builds left in OUT: the old
  corpus comes back when the new one never arrived; a new corpus whose report was still staged gets it."""
  target = os.path.join(out, corpus.NAME, corpus.VERSION)
  previous = os.path.join(out, PREVIOUS)
  report = os.path.join(out, REPORT)
  staged = [os.path.join(out, n) for n in sorted(os.listdir(out)) if n.startswith(STAGING)]
  if os.path.isdir(previous):
    old_dataset, old_report = os.path.join(previous, 'dataset'), os.path.join(previous, REPORT)
    if not os.path.exists(target) and os.path.isdir(old_dataset):  # stopped between the two renames
      os.makedirs(os.path.dirname(target), exist_ok=True)
      os.rename(old_dataset, target)
      if os.path.exists(old_report) and not os.path.exists(report):
        os.replace(old_report, report)
      logging.warning('%s: a build was stopped while swapping its corpus in; the previous corpus is back', out)
    elif os.path.exists(target) and not os.path.exists(report):
      if os.path.isdir(old_dataset) or not os.path.exists(old_report):
        # The new corpus is in place; its report is in the staging folder its corpus has left.
        for folder in staged:
          if os.path.exists(os.path.join(folder, REPORT)) and not os.path.exists(os.path.join(folder, corpus.NAME,
                                                                                                corpus.VERSION)):
            os.replace(os.path.join(folder, REPORT), report)
            logging.warning('%s: a build was stopped after swapping its corpus in; its report is now beside it',
                            out)
            break
      else:  # stopped before the old corpus moved: it is still in place, so is its report
        os.replace(old_report, report)
    shutil.rmtree(previous, ignore_errors=True)
  for folder in staged:
    shutil.rmtree(folder, ignore_errors=True)

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
  check_output(out)
  with lock_output(out):  # held until the corpus is written, or the build fails
    start = time.time()
    finish = functools.partial(_synthetic_record, spec=spec, test_fraction=test_fraction)
    results, failures = [], []
    for rec, fails in synthetic.stream(count, seed, prior, workers, finish, max_atoms, progress=progress):
      results.append(rec)
      failures += fails
    source = {'synthetic': {'count': count, 'seed': seed, 'prior': prior, 'max_atoms': max_atoms,
                            'failed_draws': synthetic.failure_summary(failures)}, 'files': count,
              'input_digest': synthetic_digest(count, seed, prior, max_atoms, spec, test_fraction)}
    return write_corpus(results, out, spec, source, time.time() - start)


def _text(v) -> str:
  return v.decode() if isinstance(v, bytes) else str(v)


def merge_digest(paths: list[str]) -> str:
  """input_digest of a merge: the input digests of the corpora merged (from their build reports), in order."""
  digests = []
  for path in paths:
    try:
      with open(os.path.join(path, REPORT)) as f:
        digests.append(json.load(f).get('input_digest'))
    except (OSError, ValueError):
      digests.append(None)
  return input_digest({'merge': [[os.path.basename(os.path.normpath(p)), d] for p, d in zip(paths, digests)]})


def merge(paths: list[str], out: str, progress: bool = True) -> dict:
  """One corpus of every record of several built corpora (a mix of real and synthetic structures), each record
  keeping its split and its source_id prefixed with its corpus's folder name. The corpora must share their spec
  (wavelength, 2θ range, peaks per record).

  Raises:
    ValueError: fewer than two corpora, a missing or damaged one (corpus.CorpusError), or specs that differ.
  """
  check_output(out)
  if len(paths) < 2:
    raise ValueError(f'--merge: {len(paths)} corpus given; name two or more (comma-separated)')
  specs = {}
  for path in paths:
    try:
      info = corpus.metadata(path)
      corpus.splits(path)
    except FileNotFoundError:
      raise ValueError(f'{path}: no corpus there (build it first with python -m difcon_jax.data.build)') from None
    specs[path] = (info.get('wavelength'), info.get('two_theta_max'), info.get('max_peaks'))
  if len(set(specs.values())) > 1:
    raise ValueError('--merge: the corpora were built with different settings (wavelength, 2θ max, peaks): '
                     + '; '.join(f'{p}: {v}' for p, v in specs.items()))
  wavelength, two_theta_max, max_peaks = next(iter(specs.values()))
  spec = corpus.CorpusSpec(max_peaks=int(max_peaks), wavelength=float(wavelength), two_theta_max=float(two_theta_max))
  with lock_output(out):
    start = time.time()
    fields = tuple(corpus.features(spec).keys())
    results, counts = [], {}
    for path in paths:
      name = os.path.basename(os.path.normpath(path))
      sources_ = corpus.data_sources(path)
      total = sum(len(src) for src in sources_.values())
      bar = tqdm.tqdm(total=total, desc=name, unit='record', file=sys.stderr, disable=not progress)
      for split, src in sources_.items():
        for i in range(len(src)):
          r = src[i]
          rec = {k: r[k] for k in fields}
          rec['formula'], rec['source_id'] = _text(r['formula']), f"{name}/{_text(r['source_id'])}"
          rec['split'] = split
          results.append(rec)
          bar.update()
      bar.close()
      counts[path] = total
    source = {'merged': counts, 'files': sum(counts.values()), 'input_digest': merge_digest(paths)}
    return write_corpus(results, out, spec, source, time.time() - start)


FLAGS = flags.FLAGS


def define_flags():
  """Command-line flags; defined only when run as a program, so that importing this module defines none."""
  flags.DEFINE_string('cifs', None, 'Folder of CIFs (searched recursively for .cif and .cif.gz), or an archive of '
                      'them (.tar, .tar.gz, .tgz, .tar.xz, .tar.bz2, .zip), read without unpacking.')
  flags.DEFINE_float('symprec', structure_lib.SYMPREC, 'spglib tolerance, Å: the space group of a CIF given in P1 is '
                     'the one found at it (and a declared group is checked at it).')
  flags.DEFINE_list('merge', None, 'Instead of --cifs: corpora already built (comma-separated folders), merged into '
                    'one, each record keeping its split (a mix of real and synthetic structures).')
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
  flags.DEFINE_bool('rebuild', False, 'Build even when --out holds a corpus built from the same inputs and settings '
                    '(by default that one is reused).')


def check_flags() -> bool:
  """Prints one line per bad flag (what is allowed); True when all are fine. Nothing is read or written before."""
  checks = cli.Checks()
  if FLAGS.cifs is not None:
    problem = sources.check(FLAGS.cifs)
    checks.require(problem is None, 'cifs', FLAGS.cifs, f'a folder or an archive of CIFs ({problem})')
  checks.number('symprec', FLAGS.symprec, 0, 1, lo_open=True)
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
  if not FLAGS.out or sum(x is not None for x in (FLAGS.cifs, FLAGS.synthetic, FLAGS.merge)) != 1:
    raise app.UsageError('--out and one of --cifs, --synthetic or --merge are required')
  if not check_flags():
    return cli.USAGE_ERROR
  if FLAGS.merge:
    if not FLAGS.rebuild:
      report = previous_build(FLAGS.out, merge_digest(FLAGS.merge))
      if report is not None:
        print(f"{FLAGS.out}: reusing the corpus merged from the same corpora; --rebuild merges them again")
        return 0
    try:
      report = merge(FLAGS.merge, FLAGS.out)
    except (ValueError, folder_lock.LockedError) as e:
      print(f'error: {e}', file=sys.stderr)
      return 2
    print(f"merged {', '.join(f'{p} ({n})' for p, n in report['merged'].items())} -> train "
          f"{report['written']['train']}, test {report['written']['test']}; dataset {report['dataset']}")
    return 0
  spec = corpus.CorpusSpec(max_peaks=FLAGS.max_peaks, wavelength=FLAGS.wavelength,
                           two_theta_max=FLAGS.two_theta_max)
  what = 'synthetic structures' if FLAGS.synthetic else 'CIFs'
  if not FLAGS.rebuild:
    if FLAGS.synthetic:
      digest = synthetic_digest(FLAGS.synthetic, FLAGS.seed, FLAGS.prior, FLAGS.max_atoms, spec, FLAGS.test_fraction)
    else:
      digest = cif_digest(FLAGS.cifs, spec, FLAGS.default_b, FLAGS.on_mismatch, FLAGS.test_fraction, FLAGS.symprec)
    report = previous_build(FLAGS.out, digest)
    if report is not None:
      print(f"{FLAGS.out}: reusing the corpus built from the same {report['files']} {what} and settings (train "
            f"{report['written']['train']}, test {report['written']['test']}, skipped {len(report['skipped'])}; "
            f"input digest {digest[:12]} in {REPORT}); --rebuild builds it again")
      return 1 if report['skipped'] else 0
  try:
    if FLAGS.synthetic:
      report = build_synthetic(FLAGS.synthetic, FLAGS.out, FLAGS.seed, FLAGS.prior, spec, FLAGS.workers,
                               FLAGS.test_fraction, FLAGS.max_atoms)
    else:
      report = build(FLAGS.cifs, FLAGS.out, spec, FLAGS.workers, FLAGS.default_b, FLAGS.on_mismatch,
                     FLAGS.test_fraction, memory_limit=int(FLAGS.memory_gb * 2**30), symprec=FLAGS.symprec)
  except (FileNotFoundError, ValueError, folder_lock.LockedError) as e:  # sources.SourceError is a ValueError
    print(f'error: {e}', file=sys.stderr)
    return 2
  except synthetic.WorkersLost as e:  # every worker process died: nothing was written
    print(f'error: {e}', file=sys.stderr)
    return 1
  for item in report['skipped']:
    print(f"skipped {item['reason']}", file=sys.stderr)
  print(f"{report['files']} {what} -> train {report['written']['train']}, test {report['written']['test']}, "
        f"skipped {len(report['skipped'])}, space group found by spglib for {report.get('space_group_found', 0)} "
        f"given in P1 ({report['structures_per_second']} structures/s); "
        f"dataset {report['dataset']}; report {os.path.join(FLAGS.out, REPORT)}")
  return 1 if report['skipped'] else 0


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
