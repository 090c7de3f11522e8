"""Bragg peak lists: every reflection family in a 2θ range with d, hkl, multiplicity and M·|F|²·LP.

The structure factor uses neutral-atom X-ray form factors (International Tables Vol. C, the 4-Gaussian fits that
gemmi ships as IT92), site occupancies and isotropic or anisotropic Debye-Waller factors. Reflections are grouped
into families of the Laue class (Friedel's law holds without anomalous scattering), so multiplicity is the
family size. Everything is vectorised over reflections and atoms.
"""

from __future__ import annotations

import dataclasses
import functools

import gemmi
import numpy as np

from difcon_jax.crystallography import structure as structure_lib
from difcon_jax.crystallography import wavelength as wavelength_lib


@dataclasses.dataclass(frozen=True)
class PeakList:
  """Reflection families sorted by 2θ (degrees). intensity = M·|F|²·LP, unscaled."""
  two_theta: np.ndarray  # [p] degrees
  d: np.ndarray  # [p] Å
  hkl: np.ndarray  # [p, 3] int, a representative of each family
  multiplicity: np.ndarray  # [p] int
  f_squared: np.ndarray  # [p] |F|² per reflection, electrons²
  intensity: np.ndarray  # [p]

  def __len__(self) -> int:
    return len(self.two_theta)

  def scaled(self, top: float = 100.0) -> np.ndarray:
    """Intensities scaled so that the strongest peak is `top`."""
    m = self.intensity.max() if len(self) else 1.0
    return self.intensity * (top / m)


def lorentz_polarisation(two_theta: np.ndarray) -> np.ndarray:
  """Unpolarised-beam Lorentz-polarisation factor (1 + cos²2θ) / (sin²θ cos θ), 2θ in degrees."""
  t = np.deg2rad(two_theta)
  return (1 + np.cos(t) ** 2) / (np.sin(t / 2) ** 2 * np.cos(t / 2))


@functools.cache
def _it92(z: int) -> tuple[np.ndarray, np.ndarray, float]:
  c = gemmi.Element(z).it92
  if c is None:
    raise ValueError(f'no X-ray form factor for element {gemmi.Element(z).name}')
  return np.array(c.a), np.array(c.b), float(c.c)


def form_factor(z: int, stol2: np.ndarray) -> np.ndarray:
  """f(sinθ/λ) of a neutral atom: sum a_i exp(-b_i s²) + c, with s² = (sinθ/λ)² in Å⁻²."""
  a, b, c = _it92(int(z))
  return np.exp(-np.multiply.outer(stol2, b)) @ a + c


def _laue_rotations(structure: structure_lib.Structure) -> np.ndarray:
  """Integer rotations [r, 3, 3] of the Laue group of the declared space group (acting on row vectors hkl)."""
  return _laue_rotations_of(structure.space_group)


@functools.cache
def _laue_rotations_of(space_group: int) -> np.ndarray:
  ops = gemmi.find_spacegroup_by_number(space_group).operations()
  rots = {tuple(np.array(op.rot).flatten() // op.DEN) for op in ops.sym_ops}
  rots |= {tuple(-np.array(r)) for r in rots}
  return np.array(sorted(rots)).reshape(-1, 3, 3)


def _hkl_sphere(recip: np.ndarray, cell: tuple, d_min: float) -> np.ndarray:
  """All hkl != 0 with d >= d_min."""
  hmax = [int(np.floor(x / d_min)) for x in cell[:3]]
  grids = [np.arange(-m, m + 1) for m in hmax]
  hkl = np.stack(np.meshgrid(*grids, indexing='ij'), -1).reshape(-1, 3)
  q2 = ((hkl @ recip) * hkl).sum(1)  # 1/d²
  keep = (q2 > 0) & (q2 <= 1.0 / d_min**2 * (1 + 1e-12))
  return hkl[keep]


def _families(hkl: np.ndarray, rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Representative hkl and size of each Laue-equivalence family (representative = largest in lex order)."""
  span = int(np.abs(hkl).max()) + 1
  base = 2 * span + 1
  # h' = h . R for row vectors (gemmi's rot acts on fractional coordinates as columns).
  images = np.matmul(hkl[None], rotations)  # [r, n, 3]
  codes = ((images[..., 0] + span) * base + (images[..., 1] + span)) * base + (images[..., 2] + span)
  canon = codes.max(axis=0)
  uniq, counts = np.unique(canon, return_counts=True)
  rep = np.stack([uniq // base**2 - span, (uniq // base) % base - span, uniq % base - span], -1)
  return rep, counts


# The work of a peak list grows with the cell volume (reflections) times the atoms: bounded so that one huge cell
# gives a clear error instead of asking for gigabytes. 10⁶ reflections is a 55 Å cubic cell to 120° at Cu Kα.
MAX_REFLECTIONS = 1_000_000
_STRUCTURE_FACTOR_CHUNK = 2_000_000  # reflections x atoms per block of the structure-factor sum


def structure_factor_squared(structure: structure_lib.Structure, hkl: np.ndarray, stol2: np.ndarray) -> np.ndarray:
  """|F(hkl)|² [n] for reflections hkl [n, 3] with (sinθ/λ)² = stol2 [n] (in blocks of reflections, so that the
  [reflections, atoms] temporaries stay small)."""
  step = max(1, _STRUCTURE_FACTOR_CHUNK // max(len(structure.atomic_number), 1))
  if len(hkl) > step:
    return np.concatenate([structure_factor_squared(structure, hkl[i:i + step], stol2[i:i + step])
                           for i in range(0, len(hkl), step)])
  if len(hkl) == 0 or len(structure.fract) == 0:
    return np.zeros(len(hkl))
  # Atoms of one kind (element, occupancy, displacement) share their scattering factor: the phases are summed per
  # kind first, then weighted, so form factors and Debye-Waller factors are computed once per kind.
  kinds = np.concatenate([structure.atomic_number[:, None].astype(float), structure.occupancy[:, None],
                          structure.beta.reshape(-1, 9)], 1)
  kinds, kind_of = np.unique(kinds, axis=0, return_inverse=True)
  outer = (hkl[:, :, None] * hkl[:, None, :]).reshape(len(hkl), 9).astype(float)
  weight = (np.stack([form_factor(int(z), stol2) for z in kinds[:, 0]], -1) * kinds[:, 1]
            * np.exp(-outer @ kinds[:, 2:].T))  # [n, kinds]: f occupancy exp(-h^T beta h)
  # exp(2πi h·x) = exp(2πi h x) exp(2πi k y) exp(2πi l z): three small tables and two products instead of an
  # exponential per reflection and atom.
  top = np.abs(hkl).max(0)
  tables = [np.exp(2j * np.pi * np.arange(-top[i], top[i] + 1)[:, None] * structure.fract[None, :, i])
            for i in range(3)]  # [2 top + 1, atoms]
  phase = tables[0][hkl[:, 0] + top[0]]
  phase *= tables[1][hkl[:, 1] + top[1]]
  phase *= tables[2][hkl[:, 2] + top[2]]  # [n, atoms]
  kind_of = kind_of.reshape(-1)
  amp = sum(phase[:, kind_of == k].sum(1) * weight[:, k] for k in range(len(kinds)))
  return amp.real**2 + amp.imag**2


def peak_list(structure: structure_lib.Structure, wavelength: float = wavelength_lib.CU_KA1,
              two_theta_min: float = 0.0, two_theta_max: float = 90.0,
              min_relative_intensity: float = 1e-5) -> PeakList:
  """Bragg reflection families of a structure between two_theta_min and two_theta_max (degrees).

  Args:
    structure: the crystal.
    wavelength: X-ray wavelength in Å.
    two_theta_min, two_theta_max: range in degrees 2θ (two_theta_max < 180).
    min_relative_intensity: drop families weaker than this fraction of the strongest (systematic absences
      come out as |F|² ~ 1e-25 and are dropped too).
  """
  if not 0 <= two_theta_min < two_theta_max < 180:
    raise ValueError(f'bad 2θ range {two_theta_min}-{two_theta_max}')
  cell = gemmi.UnitCell(*structure.cell)
  frac = np.array(cell.frac.mat.tolist())
  recip = frac @ frac.T
  d_min = wavelength / (2 * np.sin(np.deg2rad(two_theta_max) / 2))
  estimate = 4 / 3 * np.pi * cell.volume / d_min**3  # reflections in the sphere
  box = np.prod([2 * np.floor(x / d_min) + 1 for x in structure.cell[:3]])
  if estimate > MAX_REFLECTIONS or box > 8 * MAX_REFLECTIONS:
    raise ValueError(f'cell of {cell.volume:.4g} Å³ has about {estimate:.3g} reflections up to {two_theta_max}° 2θ '
                     f'at {wavelength} Å; at most {MAX_REFLECTIONS:,} are computed')
  hkl = _hkl_sphere(recip, structure.cell, d_min)
  if len(hkl) == 0:
    return _empty()
  rep, mult = _families(hkl, _laue_rotations(structure))
  q2 = ((rep @ recip) * rep).sum(1)
  d = 1.0 / np.sqrt(q2)
  tt = wavelength_lib.d_to_two_theta(d, wavelength)
  keep = (tt >= two_theta_min) & (tt <= two_theta_max)
  rep, mult, d, tt, q2 = rep[keep], mult[keep], d[keep], tt[keep], q2[keep]
  if len(rep) == 0:
    return _empty()
  f2 = structure_factor_squared(structure, rep, q2 / 4.0)
  intensity = mult * f2 * lorentz_polarisation(tt)
  keep = intensity > min_relative_intensity * intensity.max()
  order = np.argsort(tt[keep], kind='stable')
  pick = lambda x: x[keep][order]
  return PeakList(two_theta=pick(tt), d=pick(d), hkl=pick(rep), multiplicity=pick(mult),
                  f_squared=pick(f2), intensity=pick(intensity))


def _empty() -> PeakList:
  z = np.zeros(0)
  return PeakList(z, z, np.zeros((0, 3), dtype=int), np.zeros(0, dtype=int), z, z)


def _coincident_groups(two_theta: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
  """Group index [p] of each sorted position (neighbours closer than tolerance share one) and the first of each."""
  new = np.concatenate([[True], np.diff(two_theta) > tolerance])
  return np.cumsum(new) - 1, new


def merge_coincident(peaks: PeakList, tolerance: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
  """Positions and summed intensities of the peaks that one measurement sees: families closer than
  `tolerance` degrees (e.g. cubic 333 and 511) become one peak. Returns (two_theta [q], intensity [q])."""
  if len(peaks) == 0:
    return np.zeros(0), np.zeros(0)
  group, first = _coincident_groups(peaks.two_theta, tolerance)
  intensity = np.bincount(group, weights=peaks.intensity)
  return peaks.two_theta[first], intensity


def merged_hkl(peaks: PeakList, tolerance: float = 1e-4) -> np.ndarray:
  """[q, 3] the hkl of the strongest family in each peak of merge_coincident (same grouping)."""
  if len(peaks) == 0:
    return np.zeros((0, 3), dtype=int)
  group, _ = _coincident_groups(peaks.two_theta, tolerance)
  # Sort by (group, -intensity): the first row of each group is its strongest family.
  order = np.lexsort((-peaks.intensity, group))
  starts = np.concatenate([[True], np.diff(group[order]) > 0])
  return peaks.hkl[order[starts]]
