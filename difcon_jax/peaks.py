r"""Bragg peak lists of CIF files.

  python -m difcon_jax.peaks FILE.cif [FILE.cif ...] [--wavelength=1.5406 | --anode=Cu] --two_theta_min=5 \
      --two_theta_max=90 [--format=table|jsonl] [--workers=N]

jsonl prints one object per file: {"file", "formula", "space_group", "crystal_system", "extinction_group",
"peaks": [{"two_theta", "d", "hkl", "multiplicity", "intensity"}]}, intensity scaled so the strongest peak is 100.
A file that fails gives {"file", "error"} (in the table: a line "# FILE: error: ...", also on stderr when the
output goes to a file or a pipe) and the others still come out; the exit status is 1 if any failed. Each file is read in a worker process with a memory cap, so a file that
crashes a native library or needs too much memory is that file's error, not the end of the run.
"""

from __future__ import annotations

import json
import sys
from typing import Sequence

from absl import app
from absl import flags

from difcon_jax.io import cli
from difcon_jax.crystallography import diffraction
from difcon_jax.crystallography import spacegroups
from difcon_jax.crystallography import structure as structure_lib
from difcon_jax.crystallography import wavelength as wavelength_lib
from difcon_jax.data import workers as workers_lib

FLAGS = flags.FLAGS
SECONDS_PER_FILE = 600  # a worker still busy with one file after this is stopped and the file reported


def define_flags():
  """Command-line flags; defined only when run as a program, so that importing this module defines none."""
  flags.DEFINE_float('wavelength', wavelength_lib.CU_KA1, 'X-ray wavelength in Å.')
  flags.DEFINE_string('anode', None, 'Anode (Cu, Mo, Co, Fe, Cr, Ag), instead of --wavelength.')
  flags.DEFINE_float('two_theta_min', 5.0, 'Lowest 2θ, degrees.')
  flags.DEFINE_float('two_theta_max', 90.0, 'Highest 2θ, degrees.')
  flags.DEFINE_enum('format', 'table', ['table', 'jsonl'], 'Output format.')
  flags.DEFINE_float('default_b', 0.0, 'Isotropic B (Å²) for sites without displacement parameters.')
  flags.DEFINE_float('min_intensity', 1e-3, 'Leave out peaks below this (strongest = 100).')
  flags.DEFINE_integer('workers', 1, 'Processes reading the files.')
  flags.DEFINE_float('memory_gb', workers_lib.DEFAULT_MEMORY_LIMIT / 2**30, 'Memory cap per worker, GiB.')


def describe(path: str, wavelength: float, two_theta_min: float, two_theta_max: float,
             default_b: float = 0.0, min_intensity: float = 1e-3) -> dict:
  """One file's record for the jsonl output; raises StructureError for a bad file."""
  structure, warning = structure_lib.read_structure(path, default_b=default_b)
  warning = '; '.join([*structure.notes, *([warning] if warning else [])])
  peaks = diffraction.peak_list(structure, wavelength, two_theta_min, two_theta_max)
  scaled = peaks.scaled(100.0)
  eg = structure.extinction_group
  record = {
      'file': path,
      'formula': structure.formula,
      'space_group': structure.space_group,
      'space_group_symbol': spacegroups.symbol(structure.space_group),
      'crystal_system': structure.crystal_system,
      'extinction_group': eg,
      'extinction_group_label': spacegroups.extinction_group_label(eg),
      'wavelength': wavelength,
      'peaks': [{'two_theta': round(float(t), 5), 'd': round(float(d), 6), 'hkl': [int(x) for x in h],
                 'multiplicity': int(m), 'intensity': round(float(i), 4)}
                for t, d, h, m, i in zip(peaks.two_theta, peaks.d, peaks.hkl, peaks.multiplicity, scaled)
                if i >= min_intensity],
  }
  if warning:
    record['warning'] = warning
  return record


def _table(record: dict) -> str:
  lines = [f"# {record['file']}: {record['formula']}, {record['space_group_symbol']} ({record['space_group']}), "
           f"{record['crystal_system']}, extinction group {record['extinction_group']} "
           f"({record['extinction_group_label']}), λ = {record['wavelength']} Å"]
  if 'warning' in record:
    lines.append(f"# warning: {record['warning']}")
  lines.append(f"{'2theta':>10} {'d':>9} {'h':>4}{'k':>4}{'l':>4} {'mult':>5} {'I':>9}")
  for p in record['peaks']:
    h, k, l = p['hkl']
    lines.append(f"{p['two_theta']:10.4f} {p['d']:9.5f} {h:4d}{k:4d}{l:4d} {p['multiplicity']:5d} "
                 f"{p['intensity']:9.3f}")
  return '\n'.join(lines)


def _error(path: str, reason: str) -> dict:
  return {'file': path, 'error': reason if reason.startswith(path) else f'{path}: {reason}'}


def _describe_job(args: tuple) -> dict:
  """describe() in a worker: a record, or {'file', 'error'} for a bad file (never raises for one)."""
  path = args[0]
  try:
    return describe(*args)
  except (structure_lib.StructureError, ValueError, RuntimeError, MemoryError, FloatingPointError) as e:
    return _error(path, str(e) or type(e).__name__)


def check_flags() -> float | None:
  """The wavelength, or None after printing what is wrong with the flags."""
  checks = cli.Checks()
  wl = checks.wavelength(FLAGS.wavelength, FLAGS.anode, wavelength_given=FLAGS['wavelength'].present)
  if checks.number('two_theta_min', FLAGS.two_theta_min, 0, 180, hi_open=True):
    checks.number('two_theta_max', FLAGS.two_theta_max, FLAGS.two_theta_min, 180, lo_open=True, hi_open=True)
  checks.number('default_b', FLAGS.default_b, 0, 100)
  checks.number('min_intensity', FLAGS.min_intensity, 0, 100)
  checks.number('workers', FLAGS.workers, 1, integer=True)
  checks.number('memory_gb', FLAGS.memory_gb, 0, lo_open=True)
  return None if checks.report('peaks') else wl


def main(argv: Sequence[str]) -> int:
  files = argv[1:]
  if not files:
    raise app.UsageError('give one or more CIF files')
  wl = check_flags()
  if wl is None:
    return cli.USAGE_ERROR
  jobs = [(path, wl, FLAGS.two_theta_min, FLAGS.two_theta_max, FLAGS.default_b, FLAGS.min_intensity)
          for path in files]
  results = workers_lib.imap(_describe_job, jobs, min(FLAGS.workers, len(jobs)),
                             on_failure=lambda job, reason: _error(job[0], reason),
                             memory_limit=int(FLAGS.memory_gb * 2**30), timeout=SECONDS_PER_FILE)
  failed = 0
  try:
    for record in results:
      if 'error' in record:
        failed += 1
        print(json.dumps(record) if FLAGS.format == 'jsonl' else f"# error: {record['error'].replace(chr(10), ' ')}",
              flush=True)
        if not sys.stdout.isatty():  # on a terminal the line above is already before the user's eyes
          print(f"error: {record['error']}", file=sys.stderr, flush=True)
        continue
      print(json.dumps(record) if FLAGS.format == 'jsonl' else _table(record) + '\n', flush=True)
  except BrokenPipeError:  # the reader went away (| head): stop quietly
    results.close()
    cli.quiet_broken_pipe()
    return 1
  return 1 if failed else 0


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
