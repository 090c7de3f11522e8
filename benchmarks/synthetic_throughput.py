r"""Synthetic-structure throughput: the realistic generator on all cores against the earlier generator, one run.

  python benchmarks/synthetic_throughput.py [--count 2000] [--baseline_count 60] [--workers N] [--json]

Both sides make a structure and its corpus record (peak list at Cu Kα to 120°, merged, strongest 512 kept):
- ours: `difcon_jax.data.synthetic.stream` with the realistic prior, a process pool over every core;
- baseline: the generator this project had before (pyxtal's `from_random` with 1-3 random elements on random
  Wyckoff multiplicities, per-group retries, one process), on the same space-group mix (the groups of our first
  `baseline_count` structures, in order).
The last line (with --json) is {"structures_per_s", "baseline_structures_per_s", "ratio", ...}.
"""

import functools
import json
import os
import platform
import time
import warnings

from absl import app
from absl import flags
import numpy as np

_COUNT = flags.DEFINE_integer('count', 2000, 'Structures for the new generator.')
_BASELINE_COUNT = flags.DEFINE_integer('baseline_count', 60, 'Structures for the baseline (it is slow).')
_WORKERS = flags.DEFINE_integer('workers', None, 'Processes for the new generator (default: all cores).')
_SEED = flags.DEFINE_integer('seed', 11, 'Seed.')
_JSON = flags.DEFINE_bool('json', False, 'Print one JSON line at the end.')

# The earlier generator (difcon_jax.data.synthetic before the realistic one), kept here as the baseline.
_LEGACY_ELEMENTS = ('O', 'Si', 'Al', 'Mg', 'Ca', 'Na', 'K', 'Fe', 'Ti', 'Mn', 'Zn', 'Cu', 'Ni', 'Co', 'Cr', 'S',
                    'P', 'Cl', 'F', 'N', 'C', 'Li', 'Ba', 'Sr', 'Zr', 'Nb', 'Mo', 'Sn', 'Sb', 'Bi', 'Pb', 'La',
                    'Ce', 'Nd', 'Y', 'Ga', 'Ge', 'As', 'Se', 'Br', 'I', 'Te', 'Cd', 'In', 'Ag', 'Pd', 'W', 'V',
                    'B', 'Be', 'Rb', 'Cs')


def legacy_structure(space_group, rng, max_atoms=96, attempts=60):
  """pyxtal from_random, 1-3 elements on random multiplicities, checked with spglib; a Structure or None."""
  import spglib
  from pyxtal import pyxtal
  from pyxtal.symmetry import Group
  from difcon_jax.crystallography import structure as structure_lib
  group = Group(space_group)
  mults = sorted({w.multiplicity for w in group})
  for _ in range(attempts):
    species = [str(s) for s in rng.choice(_LEGACY_ELEMENTS, size=int(rng.integers(1, 4)), replace=False)]
    nums = [int(rng.choice(mults)) * int(rng.integers(1, 3)) for _ in species]
    if sum(nums) > max_atoms:
      continue
    crystal = pyxtal()
    try:
      with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        crystal.from_random(3, space_group, species, nums, random_state=int(rng.integers(2**31)))
    except Exception:  # pylint: disable=broad-except
      continue
    if not crystal.valid:
      continue
    s = crystal.to_pymatgen()
    z = np.array([site.specie.Z for site in s])
    dataset = spglib.get_symmetry_dataset((s.lattice.matrix, s.frac_coords, z), symprec=0.1)
    if dataset is None or dataset.number != space_group:
      continue
    return structure_lib.Structure(
        name='legacy', cell=tuple(s.lattice.abc) + tuple(s.lattice.angles), fract=s.frac_coords % 1.0,
        atomic_number=z.astype(np.int32), occupancy=np.ones(len(z)), beta=np.zeros((len(z), 3, 3)),
        space_group=space_group, symmetry_ops=len(group[0].ops))
  return None


def main(argv):
  del argv
  from difcon_jax.data import build
  from difcon_jax.data import corpus
  from difcon_jax.data import synthetic
  spec = corpus.CorpusSpec()
  finish = functools.partial(build._synthetic_record, spec=spec, test_fraction=0.1)  # pylint: disable=protected-access
  workers = _WORKERS.value or os.cpu_count()
  list(synthetic.stream(2 * workers, _SEED.value + 1, 'realistic', workers, finish, progress=False))  # warm up
  t = time.perf_counter()
  recs = [r for r, _ in synthetic.stream(_COUNT.value, _SEED.value, 'realistic', workers, finish, progress=False)]
  ours = len(recs) / (time.perf_counter() - t)
  ok = [r for r in recs if 'error' not in r]

  groups = [int(r['space_group']) for r in ok[:_BASELINE_COUNT.value]]
  legacy_structure(groups[0], np.random.default_rng(0))  # imports warm
  t = time.perf_counter()
  made = 0
  for i, sg in enumerate(groups):
    s = legacy_structure(sg, np.random.default_rng([_SEED.value, i]))
    if s is not None:
      build.record_from_structure(s, 'legacy', spec)
      made += 1
  base = len(groups) / (time.perf_counter() - t)

  result = {'structures_per_s': ours, 'baseline_structures_per_s': base, 'ratio': ours / base,
            'count': _COUNT.value, 'ok': len(ok), 'distinct_space_groups': len({int(r['space_group']) for r in ok}),
            'baseline_count': len(groups), 'baseline_made': made, 'workers': workers,
            'machine': f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores'}
  print(f'realistic generator + peak lists: {ours:.1f} structures/s on {workers} processes; earlier generator '
        f'{base:.2f} structures/s on one ({made}/{len(groups)} made); ratio {ours / base:.1f}x')
  if _JSON.value:
    print(json.dumps(result))


if __name__ == '__main__':
  app.run(main)
