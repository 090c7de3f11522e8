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
from difcon_jax.crystallography import standardise


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
  notes: tuple[str, ...] = ()  # what the reader did that the user should know (e.g. data blocks not read)
  symmetry_found: bool = False  # the CIF was in P1 and space_group is what spglib found (standardise.py)

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


SYMPREC = 0.1  # Å: spglib's tolerance for checking a declared space group and finding a P1 structure's (the MP's)

# Cells outside these bounds are typing errors or not crystals (a protein or a zeolite supercell is far inside).
MAX_CELL_LENGTH = 1000.0  # Å
MIN_CELL_VOLUME = 1.0  # Å³: an atom takes about 10
MIN_VOLUME_RATIO = 1e-3  # V / (abc): angles so close to a sum of 360° that the cell is flat
CELL_TAGS = ('_cell_length_a', '_cell_length_b', '_cell_length_c',
             '_cell_angle_alpha', '_cell_angle_beta', '_cell_angle_gamma')


def _cif_blocks(path: str, text: str | bytes | None = None) -> list[gemmi.cif.Block]:
  """The data blocks of a CIF that hold atom coordinates (at least one); from `text` when given (a member of an
  archive), `path` then only naming it."""
  try:
    if text is None:
      doc = gemmi.cif.read(str(path))  # .cif.gz is read transparently
    else:
      if isinstance(text, bytes):
        text = text.decode('utf-8', errors='replace')
      doc = gemmi.cif.read_string(text)
  except (RuntimeError, ValueError, OSError) as e:
    raise StructureError(f'{path}: not a readable CIF ({e})') from None
  blocks = [b for b in doc if b.find_loop('_atom_site_fract_x') or b.find_value('_atom_site_fract_x') is not None]
  if not blocks:
    raise StructureError(f'{path}: no data block with a cell and _atom_site_fract_x coordinates')
  return blocks


def cell_from_block(block: gemmi.cif.Block, path: str) -> tuple[float, ...]:
  """The six cell parameters as the CIF gives them, validated (gemmi replaces a missing or '?' one by a unit cube).

  Raises:
    StructureError: a parameter is missing, not a number, out of range, or the cell is (nearly) flat.
  """
  values = []
  for tag in CELL_TAGS:
    raw = block.find_value(tag)
    if raw is None:
      raise StructureError(f'{path}: invalid unit cell: {tag} is missing')
    v = gemmi.cif.as_number(raw)  # '5.43(2)' -> 5.43; '?', '.', text, overflow -> NaN
    if not math.isfinite(v):
      raise StructureError(f'{path}: invalid unit cell: {tag} is {raw!r}, not a number')
    values.append(v)
  lengths, angles = values[:3], values[3:]
  if not all(0 < x <= MAX_CELL_LENGTH for x in lengths):
    raise StructureError(f'{path}: invalid unit cell: lengths {lengths} Å (allowed: above 0, up to '
                         f'{MAX_CELL_LENGTH:g})')
  if not all(0 < x < 180 for x in angles):
    raise StructureError(f'{path}: invalid unit cell: angles {angles}° (allowed: between 0 and 180)')
  check_cell(tuple(values), path)
  return tuple(values)


def check_cell(cell: tuple[float, ...], path: str) -> None:
  """Raises StructureError unless (a, b, c, alpha, beta, gamma) is a finite cell of non-negligible volume."""
  a, b, c, al, be, ga = cell
  if not all(math.isfinite(x) for x in cell) or min(a, b, c) <= 0 or max(a, b, c) > MAX_CELL_LENGTH:
    raise StructureError(f'{path}: invalid unit cell {tuple(cell)}')
  cos = [math.cos(math.radians(x)) for x in (al, be, ga)]
  ratio2 = 1 - sum(x * x for x in cos) + 2 * cos[0] * cos[1] * cos[2]  # (V / abc)²
  volume = a * b * c * math.sqrt(max(ratio2, 0.0))
  if ratio2 <= MIN_VOLUME_RATIO**2 or volume < MIN_CELL_VOLUME:
    raise StructureError(f'{path}: invalid unit cell {tuple(cell)}: volume {volume:.3g} Å³ '
                         f'(the angles make it flat or it is too small)')


def validate(structure: 'Structure', path: str = '') -> None:
  """Checks every number that gemmi and spglib will see: they crash (segfault) or loop on NaN and infinities.

  Raises:
    StructureError: the cell is not a cell, or a coordinate, occupancy or displacement is not a finite number.
  """
  path = path or structure.name
  check_cell(tuple(structure.cell), path)
  n = len(structure.fract)
  if n == 0:
    raise StructureError(f'{path}: no atom sites')
  for name, arr in (('coordinate', structure.fract), ('occupancy', structure.occupancy),
                    ('displacement parameter', structure.beta)):
    bad = ~np.isfinite(np.asarray(arr, dtype=float).reshape(n, -1)).all(axis=1)
    if bad.any():
      raise StructureError(f'{path}: atom {int(np.argmax(bad)) + 1} has a {name} that is not a finite number')


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


def read_structure(path: str | os.PathLike, default_b: float = 0.0, symprec: float = SYMPREC,
                   check_symmetry: bool = True, text: str | bytes | None = None,
                   find_p1_symmetry: bool = True) -> tuple[Structure, str | None]:
  """Reads a CIF (or .cif.gz) into a Structure with every atom of its cell.

  A CIF in P1 with only the identity operation (as the Materials Project, OQMD and AFLOW export structures) does not
  give its symmetry: with `find_p1_symmetry` its space group is the one spglib finds at `symprec` and the structure
  comes back in that group's conventional cell (standardise.standardise; `symmetry_found` is then True).

  Args:
    path: CIF file (or the name of `text`).
    default_b: isotropic B (Å²) for sites that give no displacement parameter.
    symprec: spglib distance tolerance (Å) for the symmetry check and the search of a P1 structure's group.
    check_symmetry: run spglib on the expanded atoms.
    text: the CIF's contents, when it is not a file of its own (a member of an archive).
    find_p1_symmetry: find the space group of a P1 CIF (False: keep it as P1).

  Returns:
    (structure, warning): warning says how the declared space group disagrees with the atoms, else None.

  Raises:
    StructureError: the file is not a usable crystal structure; the message names the file.
  """
  path = str(path)
  blocks = _cif_blocks(path, text)
  block = blocks[0]
  notes = ()
  if len(blocks) > 1:
    notes = (f'{path}: {len(blocks)} data blocks hold structures '
             f'({", ".join(b.name for b in blocks[:5])}{", ..." if len(blocks) > 5 else ""}); read only the first, '
             f'{block.name!r}',)
  cell_values = cell_from_block(block, path)
  try:
    small = gemmi.make_small_structure_from_block(block)
  except (RuntimeError, ValueError) as e:
    raise StructureError(f'{path}: {e}') from None
  cell = small.cell
  if not np.allclose(cell.parameters, cell_values, rtol=1e-6):
    raise StructureError(f'{path}: invalid unit cell: gemmi read {cell.parameters}, the CIF says {cell_values}')
  if not small.sites:
    raise StructureError(f'{path}: no atom sites')
  for site in small.sites:  # before anything native sees them: NaN coordinates crash spglib
    raw = [site.fract.x, site.fract.y, site.fract.z, site.occ, site.u_iso, site.aniso.u11, site.aniso.u22,
           site.aniso.u33, site.aniso.u12, site.aniso.u13, site.aniso.u23]
    if not all(math.isfinite(v) for v in raw[:3]):
      raise StructureError(f'{path}: site {site.label!r} has a coordinate that is not a finite number '
                           f'({site.fract.x}, {site.fract.y}, {site.fract.z})')
    if not all(math.isfinite(v) for v in raw[3:]):
      raise StructureError(f'{path}: site {site.label!r} has an occupancy or displacement that is not a finite number')
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
      space_group=number, symmetry_ops=len(rots), notes=notes)
  validate(structure, path)
  if find_p1_symmetry and structure.space_group == 1 and structure.symmetry_ops == 1:
    return with_found_symmetry(structure, symprec, path), None
  warning = check_space_group(structure, symprec) if check_symmetry else None
  if warning:
    warning = f'{path}: {warning}'
  return structure, warning


def species(structure: Structure) -> np.ndarray:
  """spglib's atom kinds [n]: one per (element, occupancy), so that a disordered site is not taken for an ordered
  one of the same element."""
  kinds: dict = {}
  return np.array([kinds.setdefault((int(z), round(float(o), 3)), len(kinds))
                   for z, o in zip(structure.atomic_number, structure.occupancy)])


def with_found_symmetry(structure: Structure, symprec: float = SYMPREC, path: str = '') -> Structure:
  """A structure given in P1, in the conventional cell of the space group spglib finds at `symprec` Å.

  Each atom of the new cell keeps the element, occupancy and isotropic-equivalent displacement of the atom it is an
  image of; an anisotropic tensor is not carried over (P1 exports have none; a note says so where one had).

  Raises:
    StructureError: spglib finds no symmetry in the atoms.
  """
  path = path or structure.name
  validate(structure, path)
  found = standardise.conventional(structure.cell, structure.fract, species(structure), symprec)
  if found is None:
    raise StructureError(f'{path}: spglib could not determine the symmetry of the atoms (given in P1)')
  b_iso = standardise.isotropic_b(structure.cell, structure.beta)
  notes = list(structure.notes)
  if not np.allclose(structure.beta, standardise.beta_isotropic(b_iso, structure.cell), rtol=1e-6, atol=1e-12):
    notes.append(f'{path}: anisotropic displacements replaced by their isotropic equivalents in the standardised '
                 f'cell')
  return Structure(
      name=structure.name, cell=found.cell, fract=found.fract, atomic_number=structure.atomic_number[found.source],
      occupancy=structure.occupancy[found.source], beta=standardise.beta_isotropic(b_iso[found.source], found.cell),
      space_group=found.space_group, symmetry_ops=len(gemmi.find_spacegroup_by_number(found.space_group).operations()),
      notes=tuple(notes), symmetry_found=True)


def check_space_group(structure: Structure, symprec: float = SYMPREC) -> str | None:
  """Compares the declared space group with the one spglib finds in the atoms; None when they agree.

  Sites of one element with different occupancies count as different species, so a disordered structure whose
  ordering lowers the symmetry is flagged too.
  """
  validate(structure)
  lattice = standardise.lattice_rows(structure.cell)
  dataset = spglib.get_symmetry_dataset((lattice, structure.fract, species(structure)), symprec=symprec)
  if dataset is None:
    return 'spglib could not determine the symmetry of the atoms'
  if dataset.number != structure.space_group:
    return (f'declared space group {structure.space_group} ({spacegroups.symbol(structure.space_group)}) '
            f'but the atoms have {dataset.number} ({spacegroups.symbol(dataset.number)}) at {symprec} Å')
  return None
