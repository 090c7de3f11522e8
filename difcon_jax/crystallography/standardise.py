"""Atoms written in P1 -> the conventional cell of the space group they have (spglib).

The Materials Project, OQMD and AFLOW export every structure in P1 (all atoms listed, no symmetry given). Its space
group is the one spglib finds at `symprec` (0.1 Å by default, the Materials Project's own tolerance), and the
structure is rewritten in spglib's standardised conventional cell of that group (the ITA default setting: unique
axis b, hexagonal axes for rhombohedral groups, the lattice idealised to its exact metric), so that hkl, the cell
and the orientation- and strain-dependent effects of the augmentation are in the setting the labels speak of.
Functions of arrays only: crystallography/structure.py turns the result into a Structure.
"""

from __future__ import annotations

import dataclasses
import math

import gemmi
import numpy as np
import spglib


@dataclasses.dataclass(frozen=True)
class Conventional:
  """The standardised cell of some atoms."""
  space_group: int  # ITA number
  cell: tuple[float, float, float, float, float, float]  # Å, degrees
  fract: np.ndarray  # [m, 3] fractional coordinates in [0, 1)
  source: np.ndarray  # [m] index of the input atom each comes from (an image of it under the group)


def lattice_rows(cell: tuple[float, ...]) -> np.ndarray:
  """[3, 3] Cartesian lattice vectors as rows (gemmi's orthogonalisation: a along x, b in the xy plane)."""
  return np.array(gemmi.UnitCell(*cell).orth.mat.tolist()).T


def cell_of(lattice: np.ndarray) -> tuple[float, float, float, float, float, float]:
  """(a, b, c, alpha, beta, gamma) of lattice vectors as rows [3, 3] (Å, degrees)."""
  a, b, c = (float(np.linalg.norm(v)) for v in lattice)
  def angle(u, v):
    return math.degrees(math.acos(float(np.clip(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)), -1, 1))))
  return a, b, c, angle(lattice[1], lattice[2]), angle(lattice[0], lattice[2]), angle(lattice[0], lattice[1])


def conventional(cell: tuple[float, ...], fract: np.ndarray, types: np.ndarray, symprec: float = 0.1
                 ) -> Conventional | None:
  """The conventional cell of the space group spglib finds for atoms `fract` [n, 3] of kinds `types` [n] in `cell`
  at `symprec` Å, or None when spglib finds none (atoms on top of each other, a degenerate cell)."""
  try:
    dataset = spglib.get_symmetry_dataset((lattice_rows(cell), fract, types), symprec=symprec)
  except Exception:  # pylint: disable=broad-except  (spglib 2.5+ may raise SpglibError where it returned None)
    return None
  if dataset is None:
    return None
  # A standardised atom and the input atom it comes from map to the same atom of the primitive cell.
  first = {}
  for i, p in enumerate(dataset.mapping_to_primitive):
    first.setdefault(int(p), i)
  source = np.array([first[int(p)] for p in dataset.std_mapping_to_primitive])
  return Conventional(space_group=int(dataset.number), cell=cell_of(np.asarray(dataset.std_lattice)),
                      fract=np.asarray(dataset.std_positions, dtype=float) % 1.0, source=source)


def isotropic_b(cell: tuple[float, ...], beta: np.ndarray) -> np.ndarray:
  """Equivalent isotropic B (Å²) [n] of Debye-Waller tensors beta [n, 3, 3]: 8π² U_eq, U_eq a third of the trace
  of the Cartesian U."""
  orth = np.array(gemmi.UnitCell(*cell).orth.mat.tolist())  # Cartesian = orth @ fractional
  # h^T beta h = 2π² q^T U q with q = frac^T h the Cartesian reciprocal vector: U = orth beta orth^T / 2π².
  u_cart = orth @ beta @ orth.T / (2 * math.pi**2)
  return 8 * math.pi**2 * np.trace(u_cart, axis1=1, axis2=2) / 3


def beta_isotropic(b_iso: np.ndarray, cell: tuple[float, ...]) -> np.ndarray:
  """Debye-Waller tensors [n, 3, 3] of isotropic B values [n] (Å²): T(h) = exp(-B s²), s² = h^T G* h / 4."""
  frac = np.array(gemmi.UnitCell(*cell).frac.mat.tolist())
  recip = frac @ frac.T  # G*
  return np.asarray(b_iso, dtype=float)[:, None, None] / 4 * recip[None]
