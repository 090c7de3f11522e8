"""CIF -> crystal structure: symmetry-expanded sites with occupancies and displacement parameters.

gemmi reads the CIF and gives the symmetry operations; we expand the asymmetric unit ourselves because
anisotropic displacement tensors must be rotated with each operation (beta' = R beta R^T). spglib checks the
declared space group against the expanded atoms.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os

import gemmi
import numpy as np
import spglib

from difcon_jax.crystallography import spacegroups


class StructureError(ValueError):
  """A CIF that cannot be turned into a structure; the message names the file and the problem."""


@dataclasses.dataclass(frozen=True)
class Structure:
  """A crystal in P1: every atom of the unit cell.

  Attributes:
    name: data block name.
    cell: (a, b, c) in Å and (alpha, beta, gamma) in degrees.
    fract: [n, 3] fractional coordinates in [0, 1).
    atomic_number: [n] int.
    occupancy: [n] site occupancy.
    beta: [n, 3, 3] anisotropic Debye-Waller tensors: T(h) = exp(-h^T beta h), h in reciprocal-lattice units.
    space_group: declared ITA number (1-230).
    symmetry_ops: number of operations of the declared group (centring included).
  """
  name: str
  cell: tuple[float, float, float, float, float, float]
  fract: np.ndarray
  atomic_number: np.ndarray
  occupancy: np.ndarray
  beta: np.ndarray
  space_group: int
  symmetry_ops: int

  @property
  def formula(self) -> str:
    """Reduced sum formula in Hill order, occupancies included (e.g. 'Cl Na', 'O2 Si', 'Fe0.9 O')."""
    counts: dict[str, float] = {}
    for z, occ in zip(self.atomic_number, self.occupancy):
      el = gemmi.Element(int(z)).name
      counts[el] = counts.get(el, 0.0) + float(occ)
    if all(abs(n - round(n)) < 1e-3 for n in counts.values()):
      g = math.gcd(*(round(n) for n in counts.values()))
    else:  # partial occupancies: per the least abundant element
      g = min(counts.values())
    def order(el):
      if 'C' in counts:
        return (0 if el == 'C' else 1 if el == 'H' else 2, el)
      return (2, el)
    parts = []
    for el in sorted(counts, key=order):
      n = round(counts[el] / g, 3)
      parts.append(el if n == 1 else f'{el}{n:g}')
    return ' '.join(parts)

  @property
  def crystal_system(self) -> str:
    return spacegroups.crystal_system(self.space_group)

  @property
  def extinction_group(self) -> int:
    return spacegroups.extinction_group(self.space_group)


def _cif_block(path: str) -> gemmi.cif.Block:
  try:
    doc = gemmi.cif.read(str(path))  # .cif.gz is read transparently
  except (RuntimeError, ValueError, OSError) as e:
    raise StructureError(f'{path}: not a readable CIF ({e})') from None
  for block in doc:
    if block.find_value('_cell_length_a') is not None and block.find_loop('_atom_site_fract_x'):
      return block
  raise StructureError(f'{path}: no data block with a cell and _atom_site_fract_x coordinates')


def _group_ops(small: gemmi.SmallStructure, path: str) -> tuple[np.ndarray, np.ndarray, int]:
  """Rotations [o, 3, 3] and translations [o, 3] of every operation, and the declared space-group number."""
  if small.symops:
    key = tuple(small.symops)
  elif small.spacegroup is not None:
    key = small.spacegroup.xhm()
  else:
    raise StructureError(f'{path}: no symmetry operations, Hall or Hermann-Mauguin symbol that gemmi recognises')
  try:
    return _ops_arrays(key)
  except (RuntimeError, ValueError) as e:
    raise StructureError(f'{path}: {e}') from None


@functools.lru_cache(maxsize=1024)
def _ops_arrays(key: tuple[str, ...] | str) -> tuple[np.ndarray, np.ndarray, int]:
  """Cached: CIFs of one group share their operations, and turning gemmi's into arrays dominates small files."""
  if isinstance(key, tuple):
    try:
      ops = gemmi.GroupOps([gemmi.Op(t) for t in key])
    except (RuntimeError, ValueError) as e:
      raise ValueError(f'bad symmetry operation ({e})') from None
  else:
    ops = gemmi.find_spacegroup_by_name(key).operations()
  sg = gemmi.find_spacegroup_by_ops(ops)
  if sg is None:
    raise ValueError('the symmetry operations do not form a known space group')
  all_ops = list(ops)
  rots = np.array([op.rot for op in all_ops], dtype=float) / gemmi.Op.DEN
  trans = np.array([op.tran for op in all_ops], dtype=float) / gemmi.Op.DEN
  return rots, trans, sg.number


def _beta_tensor(site: gemmi.SmallStructure.Site, recip: np.ndarray, default_b: float) -> np.ndarray:
  """beta = 2 pi^2 N U N with N = diag(a*, b*, c*); isotropic U (or default B) when no aniso."""
  a = site.aniso
  u = np.array([[a.u11, a.u12, a.u13], [a.u12, a.u22, a.u23], [a.u13, a.u23, a.u33]])
  if not np.any(u):
    u_iso = site.u_iso if site.u_iso > 0 else default_b / (8 * math.pi**2)
    # U^ij of an isotropic U in the reciprocal basis is U G*^ij / (a*_i a*_j).
    n = np.sqrt(np.diag(recip))
    u = u_iso * recip / np.outer(n, n)
  n = np.sqrt(np.diag(recip))
  return 2 * math.pi**2 * n[:, None] * u * n[None, :]


def read_structure(path: str | os.PathLike, default_b: float = 0.0, symprec: float = 0.1,
                   check_symmetry: bool = True) -> tuple[Structure, str | None]:
  """Reads a CIF (or .cif.gz) into a P1 Structure.

  Args:
    path: CIF file.
    default_b: isotropic B (Å²) for sites that give no displacement parameter.
    symprec: spglib distance tolerance (Å) for the symmetry check.
    check_symmetry: run spglib on the expanded atoms.

  Returns:
    (structure, warning): warning says how the declared space group disagrees with the atoms, else None.

  Raises:
    StructureError: the file is not a usable crystal structure; the message names the file.
  """
  path = str(path)
  block = _cif_block(path)
  try:
    small = gemmi.make_small_structure_from_block(block)
  except (RuntimeError, ValueError) as e:
    raise StructureError(f'{path}: {e}') from None
  cell = small.cell
  if not (cell.a > 0 and cell.b > 0 and cell.c > 0) or not math.isfinite(cell.volume) or cell.volume <= 0:
    raise StructureError(f'{path}: invalid unit cell {cell.parameters}')
  if not small.sites:
    raise StructureError(f'{path}: no atom sites')
  rots, trans, number = _group_ops(small, path)
  frac = np.array(cell.frac.mat.tolist())
  recip = frac @ frac.T  # reciprocal metric tensor G*
  ortho = np.array(cell.orth.mat.tolist())
  xyz, z, occ, beta = [], [], [], []
  for site in small.sites:
    if site.element.atomic_number == 0:
      raise StructureError(f'{path}: site {site.label!r} has no element we recognise ({site.type_symbol!r})')
    if not 0 < site.occ <= 1.0001:
      raise StructureError(f'{path}: site {site.label!r} has occupancy {site.occ}')
    images = (rots @ np.array(site.fract.tolist()) + trans) % 1.0  # [o, 3]
    # Images closer than 0.1 Å are one atom (a special position): keep the first of each cluster.
    diff = (images[:, None] - images[None, :] + 0.5) % 1.0 - 0.5
    close = np.linalg.norm(diff @ ortho.T, axis=-1) < 0.1
    first = np.argmax(close, axis=1) == np.arange(len(images))
    b0 = _beta_tensor(site, recip, default_b)
    xyz.append(images[first])
    z += [site.element.atomic_number] * int(first.sum())
    occ += [min(site.occ, 1.0)] * int(first.sum())
    # Reflection h sees image x' = R x + t as h R at the original site: beta' = R beta R^T.
    beta.append(rots[first] @ b0 @ np.transpose(rots[first], (0, 2, 1)))
  structure = Structure(
      name=block.name, cell=tuple(cell.parameters), fract=np.concatenate(xyz) % 1.0,
      atomic_number=np.array(z, dtype=np.int32), occupancy=np.array(occ), beta=np.concatenate(beta),
      space_group=number, symmetry_ops=len(rots))
  warning = check_space_group(structure, symprec) if check_symmetry else None
  if warning:
    warning = f'{path}: {warning}'
  return structure, warning


def check_space_group(structure: Structure, symprec: float = 0.1) -> str | None:
  """Compares the declared space group with the one spglib finds in the atoms; None when they agree.

  Sites of one element with different occupancies count as different species, so a disordered structure whose
  ordering lowers the symmetry is flagged too.
  """
  kinds = {}
  types = np.array([kinds.setdefault((int(zz), round(float(o), 3)), len(kinds))
                    for zz, o in zip(structure.atomic_number, structure.occupancy)])
  lattice = np.array(gemmi.UnitCell(*structure.cell).orth.mat.tolist()).T  # rows are a, b, c
  dataset = spglib.get_symmetry_dataset((lattice, structure.fract, types), symprec=symprec)
  if dataset is None:
    return 'spglib could not determine the symmetry of the atoms'
  if dataset.number != structure.space_group:
    return (f'declared space group {structure.space_group} ({spacegroups.symbol(structure.space_group)}) '
            f'but the atoms have {dataset.number} ({spacegroups.symbol(dataset.number)}) at {symprec} Å')
  return None
