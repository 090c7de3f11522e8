"""Random symmetric crystals for every space group (pyxtal), written as CIFs.

  python -m difcon_jax.data.synthetic --out DIR --per_group 3 --seed 0 [--groups 1-230]

These stand in for a real structure database during development, in the tests and for the embedded sample. They
are chemically naive (random elements on random Wyckoff positions at pyxtal's default density) but have exactly
the symmetry their label says, which is what a symmetry classifier must learn to see.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Sequence

import numpy as np
from absl import app
from absl import flags
from absl import logging
import tqdm

# Elements that occur in inorganic crystals, weighted towards the common ones by listing them.
ELEMENTS = ('O', 'O', 'O', 'Si', 'Al', 'Mg', 'Ca', 'Na', 'K', 'Fe', 'Ti', 'Mn', 'Zn', 'Cu', 'Ni', 'Co', 'Cr', 'S',
            'P', 'Cl', 'F', 'N', 'C', 'Li', 'Ba', 'Sr', 'Zr', 'Nb', 'Mo', 'Sn', 'Sb', 'Bi', 'Pb', 'La', 'Ce', 'Nd',
            'Y', 'Ga', 'Ge', 'As', 'Se', 'Br', 'I', 'Te', 'Cd', 'In', 'Ag', 'Pd', 'W', 'V', 'B', 'Be', 'Rb', 'Cs')


def random_crystal(space_group: int, rng: np.random.Generator, max_atoms: int = 96, attempts: int = 60):
  """A pyxtal crystal with 1-3 random elements whose atoms have exactly this space group, or None."""
  from pyxtal import pyxtal  # pylint: disable=g-import-not-at-top  (optional dependency)
  from pyxtal.symmetry import Group  # pylint: disable=g-import-not-at-top
  group = Group(space_group)
  mults = sorted({w.multiplicity for w in group})
  for _ in range(attempts):
    n_species = int(rng.integers(1, 4))
    species = [str(s) for s in rng.choice(sorted(set(ELEMENTS)), size=n_species, replace=False)]
    nums = [int(rng.choice(mults)) * int(rng.integers(1, 3)) for _ in species]
    if sum(nums) > max_atoms:
      continue
    crystal = pyxtal()
    try:
      with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        crystal.from_random(3, space_group, species, nums, random_state=int(rng.integers(2**31)))
    except Exception:  # pylint: disable=broad-except  (pyxtal raises many kinds for incompatible compositions)
      continue
    if crystal.valid and _symmetry_of(crystal) == space_group:
      return crystal
  return None


def _symmetry_of(crystal) -> int:
  """Space group spglib finds in a pyxtal crystal (random sites often land on higher symmetry)."""
  import spglib  # pylint: disable=g-import-not-at-top
  s = crystal.to_pymatgen()
  cell = (s.lattice.matrix, s.frac_coords, [site.specie.Z for site in s])
  dataset = spglib.get_symmetry_dataset(cell, symprec=0.1)
  return dataset.number if dataset is not None else 0


def write_synthetic(out: str, groups: Sequence[int], per_group: int, seed: int) -> list[str]:
  """Writes per_group CIFs for each space group into out; returns the paths written."""
  os.makedirs(out, exist_ok=True)
  written = []
  for sg in tqdm.tqdm(groups, desc='space groups', unit='sg', file=sys.stderr):
    rng = np.random.default_rng([seed, sg])  # each group reproducible on its own
    for k in range(per_group):
      crystal = random_crystal(sg, rng)
      if crystal is None:
        logging.warning('pyxtal made no crystal for space group %d', sg)
        continue
      path = os.path.join(out, f'sg{sg:03d}_{k}.cif')
      with open(path, 'w') as f:
        f.write(crystal.to_file())
      written.append(path)
  return written


def parse_groups(spec: str) -> list[int]:
  """'1-230', '14,62,225' or '1-10,225' -> sorted space-group numbers."""
  out = set()
  for part in spec.split(','):
    lo, _, hi = part.strip().partition('-')
    out.update(range(int(lo), int(hi or lo) + 1))
  if not out or min(out) < 1 or max(out) > 230:
    raise ValueError(f'bad space-group list {spec!r}')
  return sorted(out)



FLAGS = flags.FLAGS


def define_flags():
  """Command-line flags; defined only when run as a program, so that importing this module defines none."""
  flags.DEFINE_string('out', None, 'Folder for the CIFs.', required=True)
  flags.DEFINE_integer('per_group', 3, 'Structures per space group.')
  flags.DEFINE_integer('seed', 0, 'Random seed.')
  flags.DEFINE_string('groups', '1-230', 'Space groups, e.g. 1-230 or 14,62,225.')


def main(argv):
  del argv
  paths = write_synthetic(FLAGS.out, parse_groups(FLAGS.groups), FLAGS.per_group, FLAGS.seed)
  print(f'wrote {len(paths)} CIFs to {FLAGS.out}')


if __name__ == '__main__':
  define_flags()
  app.run(main)
