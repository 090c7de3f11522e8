r"""Bragg peak lists of CIF files.

  python -m difcon_jax.peaks FILE.cif [FILE.cif ...] --wavelength 1.5406 --two-theta-min 5 --two-theta-max 90 \
      --format {table,jsonl}

jsonl prints one object per file: {"file", "formula", "space_group", "crystal_system", "extinction_group",
"peaks": [{"two_theta", "d", "hkl", "multiplicity", "intensity"}]}, intensity scaled so the strongest peak is 100.
A file that fails gives {"file", "error"} and the others still come out; the exit status is 1 if any failed.
"""

from __future__ import annotations

import json
import sys
from typing import Sequence

from absl import app
from absl import flags

from difcon_jax.crystallography import diffraction
from difcon_jax.crystallography import spacegroups
from difcon_jax.crystallography import structure as structure_lib
from difcon_jax.crystallography import wavelength as wavelength_lib

_WAVELENGTH = flags.DEFINE_float('wavelength', wavelength_lib.CU_KA1, 'X-ray wavelength in Å.')
_ANODE = flags.DEFINE_string('anode', None, 'Anode (Cu, Mo, Co, Fe, Cr, Ag); overrides --wavelength.')
_TT_MIN = flags.DEFINE_float('two_theta_min', 5.0, 'Lowest 2θ, degrees.')
_TT_MAX = flags.DEFINE_float('two_theta_max', 90.0, 'Highest 2θ, degrees.')
_FORMAT = flags.DEFINE_enum('format', 'table', ['table', 'jsonl'], 'Output format.')
_DEFAULT_B = flags.DEFINE_float('default_b', 0.0, 'Isotropic B (Å²) for sites without displacement parameters.')
_MIN_I = flags.DEFINE_float('min_intensity', 1e-3, 'Leave out peaks below this (strongest = 100).')


def describe(path: str, wavelength: float, two_theta_min: float, two_theta_max: float,
             default_b: float = 0.0, min_intensity: float = 1e-3) -> dict:
  """One file's record for the jsonl output; raises StructureError for a bad file."""
  structure, warning = structure_lib.read_structure(path, default_b=default_b)
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


def main(argv: Sequence[str]) -> int:
  files = argv[1:]
  if not files:
    raise app.UsageError('give one or more CIF files')
  wl = wavelength_lib.anode_wavelength(_ANODE.value) if _ANODE.value else _WAVELENGTH.value
  failed = 0
  for path in files:
    try:
      record = describe(path, wl, _TT_MIN.value, _TT_MAX.value, _DEFAULT_B.value, _MIN_I.value)
    except (structure_lib.StructureError, ValueError) as e:
      failed += 1
      msg = str(e) if str(e).startswith(path) else f'{path}: {e}'
      if _FORMAT.value == 'jsonl':
        print(json.dumps({'file': path, 'error': msg}), flush=True)
      print(f'error: {msg}', file=sys.stderr, flush=True)
      continue
    print(json.dumps(record) if _FORMAT.value == 'jsonl' else _table(record) + '\n', flush=True)
  return 1 if failed else 0


if __name__ == '__main__':
  app.run(main)
