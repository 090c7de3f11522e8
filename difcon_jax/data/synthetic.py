r"""Synthetic crystals whose statistics follow real inorganic crystals, made fast in a process pool.

  python -m difcon_jax.data.synthetic --count 300 --prior realistic --seed 5 --out DIR [--workers N]

writes gzipped CIFs named ``sgNNN_IIIIII.cif.gz`` (space group, structure index); ``python -m difcon_jax.data.build
--synthetic N --prior realistic --seed S --out DIR`` puts the same structures straight into a corpus.

How one structure is made (`random_structure`):
1. the space group is drawn from a prior: `realistic` (how often each group occurs among the Materials Project
   structures counted in pyxtal's database), `uniform` (1/230 each) or `mixed:w` (w realistic, 1 - w uniform);
2. the occupied Wyckoff positions are one of the combinations that real structures of that group use, drawn by
   how often they occur (pyxtal's `spg_num_wps_mp.csv`; groups without an entry get a random combination);
3. sites are shared out among 1-4 species; the species with the most atoms become anions (O, S, F, Cl, N, ...),
   the others cations, or all are metals (an intermetallic), elements drawn by their frequency
   (`difcon_jax.data.elements`);
4. the lattice shape is drawn for the crystal system; sites are placed one by one by best-candidate sampling
   (`_place`: of PLACEMENT_CANDIDATES uniform draws of the free coordinates, expanded with the Wyckoff position's
   operations from pyxtal's tables, the one farthest from the atoms already placed); the whole cell is then
   scaled so that the closest contact sits just above the distance the two species allow (ionic radii); a cell
   left too sparse is rejected;
5. spglib must find exactly the drawn space group in the atoms (random coordinates can land on higher symmetry).

A draw that fails is retried with new coordinates, then with a new Wyckoff combination; a space group that fails
every try is reported and another group is drawn, so `count` structures always come out. Structure i depends
only on (seed, i): the output does not depend on the number of workers. Each structure is made in a worker process
(`difcon_jax.data.workers`): one that kills its worker (a crash in a native library, the memory cap) or overruns
SECONDS_PER_STRUCTURE is reported as a failure of that index (space group unknown), and the others still come out.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import gzip
import math
import os
import sys
from typing import Callable, Iterator, NamedTuple, Sequence

import gemmi
import numpy as np
import spglib
import tqdm

from difcon_jax.io import cli
from difcon_jax.crystallography import spacegroups
from difcon_jax.crystallography import structure as structure_lib
from difcon_jax.data import elements as elements_lib
from difcon_jax.data import workers as workers_lib
from difcon_jax.io import outputs

MAX_ATOMS = 96  # atoms in the conventional cell
SYMPREC = 0.1  # Å, as the CIF reader checks
# Scale the cell so that the closest contact is this many times the allowed distance.
CONTACT_SLACK = (1.0, 1.08)
# Packing fraction (ionic or covalent spheres / cell volume) below which a cell is too sparse to be a crystal.
MIN_PACKING = 0.25
COORDINATE_TRIES = 2  # placements tried for one Wyckoff combination
PLACEMENT_CANDIDATES = 24  # coordinates drawn for each site (the best spread is kept)
COMBINATION_TRIES = 8  # Wyckoff combinations for one space group
GROUP_TRIES = 5  # space groups for one structure index
B_ISO = (0.3, 1.5)  # isotropic displacement parameter B, Å²
# Species count for a multi-site structure, and the share of intermetallics (no anion).
SPECIES_P = {1: 0.05, 2: 0.35, 3: 0.4, 4: 0.2}
INTERMETALLIC_P = 0.12
SECOND_ANION_P = 0.15


class DrawError(Exception):
  """One draw did not give a structure; the message says why (counted per space group in reports)."""


def pyxtal_available() -> bool:
  """Whether pyxtal (the source of the Wyckoff tables) is installed."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  return importlib.util.find_spec('pyxtal') is not None


# -- the tables -----------------------------------------------------------------------------------------------


@functools.cache
def _wyckoff_table() -> dict[int, tuple[list[tuple[int, ...]], np.ndarray, np.ndarray]]:
  """space group -> (Wyckoff index combinations, their counts, their atom counts) from pyxtal's MP statistics."""
  import importlib.resources  # pylint: disable=g-import-not-at-top
  path = importlib.resources.files('pyxtal') / 'database' / 'spg_num_wps_mp.csv'
  rows: dict[int, list] = {}
  with path.open() as f:
    for r in csv.DictReader(f):
      rows.setdefault(int(r['spg']), []).append(
          (tuple(int(i) for i in r['wps'].split('-')), int(r['count']), int(r['n_atoms'])))
  return {sg: ([w for w, _, _ in v], np.array([c for _, c, _ in v], float), np.array([n for _, _, n in v]))
          for sg, v in rows.items()}


def realistic_weights() -> np.ndarray:
  """[231] share of each space group among the Materials Project structures in pyxtal's table (index 0 unused)."""
  w = np.zeros(231)
  for sg, (_, counts, _) in _wyckoff_table().items():
    w[sg] = counts.sum()
  return w / w.sum()


def prior_weights(prior: str) -> np.ndarray:
  """[231] probabilities of space groups 1-230 for 'realistic', 'uniform' or 'mixed:w' (w in [0, 1])."""
  uniform = np.r_[0.0, np.full(230, 1 / 230)]
  if prior == 'realistic':
    return realistic_weights()
  if prior == 'uniform':
    return uniform
  if prior.startswith('mixed:'):
    try:
      w = float(prior.split(':', 1)[1])
    except ValueError:
      w = -1.0
    if 0.0 <= w <= 1.0:
      return w * realistic_weights() + (1 - w) * uniform
  raise ValueError(f'unknown prior {prior!r}: realistic, uniform or mixed:W with W in [0, 1]')


@dataclasses.dataclass(frozen=True)
class _Wyckoff:
  rot: np.ndarray  # [m, 3, 3]: the m positions of the orbit are rot @ xyz + trans for any xyz
  trans: np.ndarray  # [m, 3]
  dof: int  # free coordinates (0: a fixed point, usable once)
  label: str  # e.g. '4e'


@functools.cache
def _group(sg: int) -> tuple[tuple[_Wyckoff, ...], tuple[str, ...]]:
  """The Wyckoff positions of a space group (pyxtal's order: general position first) and its operations as xyz."""
  from pyxtal.symmetry import Group  # pylint: disable=g-import-not-at-top  (optional dependency)
  group = Group(sg)
  wps = []
  for wp in group.Wyckoff_positions:
    m = np.array([op.affine_matrix for op in wp.ops])
    wps.append(_Wyckoff(m[:, :3, :3], m[:, :3, 3], int(wp.get_dof()), f'{wp.multiplicity}{wp.letter}'))
  general = tuple(op.as_xyz_str() for op in group.Wyckoff_positions[0].ops)
  return tuple(wps), general


# -- one structure ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Synthetic:
  """A synthetic crystal: the P1 structure and its asymmetric unit (one site per Wyckoff position)."""
  structure: structure_lib.Structure
  site_elements: tuple[str, ...]
  site_roles: tuple[str, ...]  # 'anion', 'cation' or 'metal' (an element's role sets its radius)
  site_wyckoff: tuple[str, ...]
  site_xyz: np.ndarray  # [sites, 3] fractional
  site_b: np.ndarray  # [sites] Å²
  operations: tuple[str, ...]  # the group's operations, x,y,z form

  def to_cif(self) -> str:
    s = self.structure
    a, b, c, al, be, ga = s.cell
    lines = [f'data_{s.name}', f"_symmetry_space_group_name_H-M  '{spacegroups.symbol(s.space_group)}'",
             f'_symmetry_Int_Tables_number  {s.space_group}',
             f'_cell_length_a  {a:.5f}', f'_cell_length_b  {b:.5f}', f'_cell_length_c  {c:.5f}',
             f'_cell_angle_alpha  {al:.4f}', f'_cell_angle_beta  {be:.4f}', f'_cell_angle_gamma  {ga:.4f}',
             'loop_', '_symmetry_equiv_pos_as_xyz']
    lines += [f"'{op}'" for op in self.operations]
    lines += ['loop_', '_atom_site_label', '_atom_site_type_symbol', '_atom_site_Wyckoff_symbol',
              '_atom_site_fract_x', '_atom_site_fract_y', '_atom_site_fract_z', '_atom_site_occupancy',
              '_atom_site_U_iso_or_equiv']
    for k, (el, wy, xyz, bb) in enumerate(zip(self.site_elements, self.site_wyckoff, self.site_xyz, self.site_b)):
      lines.append(f'{el}{k + 1} {el} {wy} {xyz[0]:.6f} {xyz[1]:.6f} {xyz[2]:.6f} 1 {bb / (8 * math.pi**2):.5f}')
    return '\n'.join(lines) + '\n'


def _draw_combination(sg: int, rng: np.random.Generator, max_atoms: int) -> tuple[int, ...]:
  """Indices of the occupied Wyckoff positions (a position may repeat if it has free coordinates)."""
  table = _wyckoff_table().get(sg)
  if table is not None:
    combos, counts, n_atoms = table
    ok = n_atoms <= max_atoms
    if ok.any():
      p = np.where(ok, counts, 0.0)
      return combos[rng.choice(len(combos), p=p / p.sum())]
  wps, _ = _group(sg)
  mult = np.array([len(w.trans) for w in wps])
  for _ in range(50):  # a random combination: 1-4 sites, fixed points used once
    picks, used = [], set()
    for _ in range(int(rng.integers(1, 5))):
      i = 0 if rng.random() < 0.3 else int(rng.integers(len(wps)))
      if wps[i].dof == 0 and i in used:
        continue
      used.add(i)
      picks.append(i)
    if picks and mult[picks].sum() <= max_atoms:
      return tuple(sorted(picks))
  raise DrawError('no Wyckoff combination within the atom limit')


def _assign_species(sites: Sequence[int], multiplicities: np.ndarray, rng: np.random.Generator):
  """Species index of each site, and each species' element and role ('anion', 'cation' or 'metal')."""
  n = len(sites)
  ks = np.array(list(SPECIES_P))
  p = np.array([SPECIES_P[k] for k in ks])
  p = np.where(ks <= n, p, 0.0)
  k = int(rng.choice(ks, p=p / p.sum()))
  order = rng.permutation(n)
  species = np.empty(n, int)
  species[order[:k]] = np.arange(k)
  species[order[k:]] = rng.integers(0, k, n - k)
  atoms = np.bincount(species, weights=multiplicities, minlength=k)
  if k == 1 or rng.random() < INTERMETALLIC_P:
    roles = ['metal'] * k
    names = elements_lib.draw(rng, 'cation', k)
  else:
    n_anion = 2 if (k >= 3 and rng.random() < SECOND_ANION_P) else 1
    by_atoms = np.argsort(-atoms + rng.random(k) * 1e-3)  # most atoms first, ties broken at random
    anion_ids = set(by_atoms[:n_anion].tolist())
    roles = ['anion' if s in anion_ids else 'cation' for s in range(k)]
    anions = elements_lib.draw(rng, 'anion', n_anion)
    cations = elements_lib.draw(rng, 'cation', k - n_anion, exclude=tuple(anions))
    names, ai, ci = [], iter(anions), iter(cations)
    for role in roles:
      names.append(next(ai) if role == 'anion' else next(ci))
  return species, names, roles


def _lattice_shape(system: str, rng: np.random.Generator) -> tuple[float, ...]:
  """Cell parameters with a = 1 (lengths relative, angles in degrees) for a crystal system."""
  r = lambda: float(np.exp(rng.uniform(-math.log(2.2), math.log(2.2))))
  if system == 'cubic':
    return (1, 1, 1, 90, 90, 90)
  if system == 'tetragonal':
    c = r()
    return (1, 1, c, 90, 90, 90)
  if system in ('trigonal', 'hexagonal'):  # hexagonal axes (R groups too)
    c = r()
    return (1, 1, c, 90, 90, 120)
  if system == 'orthorhombic':
    return (1, r(), r(), 90, 90, 90)
  if system == 'monoclinic':  # b unique
    return (1, r(), r(), 90, float(rng.uniform(90, 120)), 90)
  while True:  # triclinic: angles that make a valid cell
    al, be, ga = rng.uniform(70, 110, 3)
    ca, cb, cg = np.cos(np.deg2rad([al, be, ga]))
    if 1 - ca**2 - cb**2 - cg**2 + 2 * ca * cb * cg > 0.05:
      return (1, r(), r(), float(al), float(be), float(ga))


def _orthogonal(cells: np.ndarray) -> np.ndarray:
  """[k, 3, 3] lattice vectors as rows (a along x, b in the xy plane) of cells [k, 6] (Å, degrees)."""
  a, b, c = cells[:, 0], cells[:, 1], cells[:, 2]
  al, be, ga = np.deg2rad(cells[:, 3]), np.deg2rad(cells[:, 4]), np.deg2rad(cells[:, 5])
  cx = c * np.cos(be)
  cy = c * (np.cos(al) - np.cos(be) * np.cos(ga)) / np.sin(ga)
  cz = np.sqrt(np.maximum(c**2 - cx**2 - cy**2, 0.0))
  z = np.zeros_like(a)
  return np.stack([np.stack([a, z, z], -1), np.stack([b * np.cos(ga), b * np.sin(ga), z], -1),
                   np.stack([cx, cy, cz], -1)], 1)


_SHIFTS = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], float)  # [27, 3]


def _nearest_exact(first: np.ndarray, frac: np.ndarray, lattice: np.ndarray) -> np.ndarray:
  """[r, n] shortest distance (Å) over the 27 nearest cells from atoms `first` [r] to all atoms frac [n, 3]."""
  diff = (frac[None] - frac[first][:, None] + 0.5) % 1.0 - 0.5  # [r, n, 3]
  cart = (diff[:, :, None, :] + _SHIFTS) @ lattice  # [r, n, 27, 3]
  d2 = (cart**2).sum(-1)
  d2[np.arange(len(first)), first, 13] = np.inf  # shift (0, 0, 0) from an atom to itself
  return np.sqrt(d2.min(-1))


def _screen_distances(origin: np.ndarray, targets: np.ndarray, metric: np.ndarray) -> np.ndarray:
  """[c, t] distance (Å) from origin [c, 3] to targets [c, t, 3] (fractional), a quick screen.

  Per axis the two images nearest in fractional coordinates are tried (8 images instead of 27): never shorter
  than the true distance, and equal to it in almost every cell drawn here (`_nearest_exact` checks the
  structure that is kept). Zero distances (an atom and itself) come out as inf.
  """
  diff = (targets - origin[:, None] + 0.5) % 1.0 - 0.5  # [c, t, 3] in [-0.5, 0.5)
  other = diff - np.where(diff >= 0, 1.0, -1.0)  # the image on the other side
  v = [np.stack([diff[..., i], other[..., i]], -1).reshape(diff.shape[:2] + tuple(2 if j == i else 1
                                                                                 for j in range(3)))
       for i in range(3)]  # v[i]: [c, t, 2, 2, 2] (broadcast) the i-th fractional component of the 8 images
  g = metric
  # d² = v G vᵀ written out: elementwise, much faster than a batched 3 x 3 product.
  d2 = (g[0, 0] * v[0]**2 + g[1, 1] * v[1]**2 + g[2, 2] * v[2]**2
        + 2 * (g[0, 1] * v[0] * v[1] + g[0, 2] * v[0] * v[2] + g[1, 2] * v[1] * v[2]))
  d2 = d2.reshape(diff.shape[:2] + (8,)).min(-1)
  d2[d2 < 1e-10] = np.inf
  return np.sqrt(d2)


def _place(sites, wps, species, required, unit, rng, candidates: int):
  """Fractional coordinates [atoms, 3] of the sites' orbits (in the order of `sites`), spread out.

  Sites are placed one by one (fixed points first, then the largest orbits); for each, `candidates` free
  coordinates are drawn and the one whose closest contact (relative to the allowed distance) is largest is
  kept: best-candidate sampling, so that the closest pair does not leave the rest of the cell empty once the
  cell is scaled to it. One orbit member suffices: symmetry maps every pair onto one from that member.
  """
  metric = unit @ unit.T
  order = sorted(range(len(sites)), key=lambda s: (wps[sites[s]].dof > 0, -len(wps[sites[s]].trans)))
  placed, placed_species = np.zeros((0, 3)), np.zeros(0, int)
  orbits = [None] * len(sites)
  for s in order:
    wp = wps[sites[s]]
    n = 1 if wp.dof == 0 else candidates
    xyz = rng.random((n, 3))
    orbit = (np.einsum('mij,cj->cmi', wp.rot, xyz) + wp.trans) % 1.0  # [c, m, 3]
    targets = np.concatenate([np.broadcast_to(placed, (n,) + placed.shape), orbit], 1)
    d = _screen_distances(orbit[:, 0], targets, metric)  # [c, placed + m]
    req = required[species[s], np.r_[placed_species, np.full(orbit.shape[1], species[s])]]
    best = int(np.argmax((d / req).min(1)))
    orbits[s] = orbit[best]
    placed = np.concatenate([placed, orbit[best]])
    placed_species = np.r_[placed_species, np.full(orbit.shape[1], species[s])]
  return np.concatenate(orbits)


def random_structure(sg: int, rng: np.random.Generator, max_atoms: int = MAX_ATOMS,
                     name: str = 'synthetic') -> Synthetic:
  """One crystal whose atoms have exactly space group sg.

  Raises:
    DrawError: no structure after COMBINATION_TRIES x COORDINATE_TRIES draws; the message says what failed last.
  """
  wps, operations = _group(sg)
  system = spacegroups.crystal_system(sg)
  reason = 'no draw'
  for _ in range(COMBINATION_TRIES):
    sites = _draw_combination(sg, rng, max_atoms)
    mult = np.array([len(wps[i].trans) for i in sites])
    species, names, roles = _assign_species(sites, mult, rng)
    required = elements_lib.required_distances(names, roles)  # [k, k]
    radii = np.array([elements_lib.radius(e, ro) for e, ro in zip(names, roles)])
    atom_species = np.repeat(species, mult)
    first = np.cumsum(np.r_[0, mult[:-1]])  # the representative atom of each site
    atom_volume = (4 / 3 * math.pi * radii[atom_species] ** 3).sum()
    for _ in range(COORDINATE_TRIES):
      cell = _lattice_shape(system, rng)  # a = 1
      unit = _orthogonal(np.array([cell], float))[0]
      frac = _place(sites, wps, species, required, unit, rng, PLACEMENT_CANDIDATES)
      worst = (_nearest_exact(first, frac, unit) / required[species[:, None], atom_species[None, :]]).min()
      if not worst > 1e-3:
        reason = 'atoms of one site coincide'
        continue
      scale = rng.uniform(*CONTACT_SLACK) / worst
      packing = atom_volume / (gemmi.UnitCell(*cell).volume * scale**3)
      if packing < MIN_PACKING:
        reason = f'cell too sparse (packing {packing:.2f})'
        continue
      cell = (cell[0] * scale, cell[1] * scale, cell[2] * scale) + tuple(cell[3:])
      lattice = unit * scale
      dataset = spglib.get_symmetry_dataset((lattice, frac, atom_species + 1), symprec=SYMPREC)
      found = dataset.number if dataset is not None else 0
      if found != sg:
        reason = f'atoms have space group {found}'
        continue
      b_species = rng.uniform(*B_ISO, len(names))
      b_atoms = b_species[atom_species]
      recip = np.array(gemmi.UnitCell(*cell).frac.mat.tolist())
      recip = recip @ recip.T  # G*
      structure = structure_lib.Structure(
          name=name, cell=tuple(float(x) for x in cell), fract=frac,
          atomic_number=np.array([elements_lib.atomic_number(names[s]) for s in atom_species], np.int32),
          occupancy=np.ones(len(frac)), beta=b_atoms[:, None, None] / 4 * recip[None],
          space_group=sg, symmetry_ops=len(operations))
      return Synthetic(structure, tuple(names[s] for s in species), tuple(roles[s] for s in species),
                       tuple(wps[i].label for i in sites),
                       frac[first], b_species[species], operations)
  raise DrawError(reason)


@dataclasses.dataclass
class Outcome:
  """What index i gave: a structure (or None when every group failed) and the failures on the way."""
  index: int
  crystal: Synthetic | None
  failures: list[tuple[int, str]]  # (space group, reason)


def make(index: int, seed: int, weights: np.ndarray, max_atoms: int = MAX_ATOMS) -> Outcome:
  """Structure `index` of the stream of `seed`: a pure function of (seed, index, prior)."""
  rng = np.random.default_rng([seed, index])
  failures = []
  for _ in range(GROUP_TRIES):
    sg = int(rng.choice(231, p=weights))
    try:
      return Outcome(index, random_structure(sg, rng, max_atoms, name=f'sg{sg:03d}_{index:06d}'), failures)
    except DrawError as e:
      failures.append((sg, str(e)))
  return Outcome(index, None, failures)


# -- many structures in a process pool -------------------------------------------------------------------------


SECONDS_PER_STRUCTURE = 300  # a worker still busy with one structure after this is stopped, the index reported
# This many indices in a row whose worker died, overran or raised: the fault is in every worker (a crash on start,
# a memory cap too small), not in one structure, so the stream stops instead of spawning a worker per index.
LOST_IN_A_ROW = 8
UNKNOWN_GROUP = 0  # the space group of a failure that took its worker with it: which group it was drawing is lost


class WorkersLost(RuntimeError):
  """LOST_IN_A_ROW structures in a row failed in their worker process; the message says how the last one did."""


class _Lost(NamedTuple):
  """An index whose worker died, overran SECONDS_PER_STRUCTURE or raised (workers_lib.imap's on_failure)."""
  index: int
  reason: str


def _identity(outcome: Outcome) -> Outcome:
  return outcome


def _make_and_finish(index: int, seed: int, weights: np.ndarray, max_atoms: int, finish) -> object:
  return finish(make(index, seed, weights, max_atoms))


def stream(count: int, seed: int, prior: str = 'realistic', workers: int | None = None,
           finish: Callable[[Outcome], object] | None = None, max_atoms: int = MAX_ATOMS,
           progress: bool = True) -> Iterator:
  """finish(make(i)) for i = 0..count-1, in order, computed by `workers` processes with a progress bar.

  `finish` runs in the worker (e.g. the peak list of the structure) and must be picklable (a module-level
  function or functools.partial of one). Each index goes to a worker of `workers_lib.imap`: one whose worker dies
  (a crash in spglib or gemmi, the memory cap), overruns SECONDS_PER_STRUCTURE or raises becomes, in this process,
  finish(Outcome(i, None, [(UNKNOWN_GROUP, reason)])), the failure of that index alone, and the rest go on.
  workers=1 runs everything in this process instead (no worker to lose: for tests and debugging; a crash there
  ends the caller); the default, None, is one worker process per CPU core.

  Raises:
    WorkersLost: LOST_IN_A_ROW indices in a row failed in their workers (every worker dies, not one structure).
  """
  weights = prior_weights(prior)
  finish = finish or _identity
  job = functools.partial(_make_and_finish, seed=seed, weights=weights, max_atoms=max_atoms, finish=finish)
  if workers == 1:
    results = map(job, range(count))
  else:
    n = max(1, min(workers or os.cpu_count() or 1, count))
    results = workers_lib.imap(job, range(count), n, on_failure=_Lost, timeout=SECONDS_PER_STRUCTURE)
  bar = tqdm.tqdm(total=count, desc='structures', unit='st', file=sys.stderr, disable=not progress, smoothing=0.05)
  lost = 0  # indices in a row (in output order) that failed in their worker
  try:
    for result in results:
      if isinstance(result, _Lost):
        lost += 1
        if lost >= LOST_IN_A_ROW:
          raise WorkersLost(f'structures {result.index - lost + 1}-{result.index} (seed {seed}) all failed in their '
                            f'worker processes, the last: {result.reason}; stopped, since every worker fails')
        result = finish(Outcome(result.index, None, [(UNKNOWN_GROUP, result.reason)]))
      else:
        lost = 0
      bar.update()
      yield result
  finally:
    bar.close()
    if hasattr(results, 'close'):
      results.close()  # stops the workers now, not when the generator is collected


def failure_summary(failures: Sequence[tuple[int, str]]) -> dict[str, dict]:
  """{space group: {'failures': n, 'last_reason': ...}} for reports."""
  out: dict[str, dict] = {}
  for sg, reason in failures:
    symbol = 'unknown' if sg == UNKNOWN_GROUP else spacegroups.symbol(sg)
    row = out.setdefault(str(sg), {'symbol': symbol, 'failures': 0})
    row['failures'] += 1
    row['last_reason'] = reason
  return dict(sorted(out.items(), key=lambda kv: int(kv[0])))


def _cif_text(outcome: Outcome) -> tuple[int, str | None, str | None, list]:
  c = outcome.crystal
  return (outcome.index, c.structure.name if c else None, c.to_cif() if c else None, outcome.failures)


def write_synthetic(out: str, count: int, seed: int, prior: str = 'realistic', workers: int | None = None,
                    max_atoms: int = MAX_ATOMS, progress: bool = True) -> tuple[list[str], list]:
  """Writes `count` gzipped CIFs into out; returns (paths written, failures [(space group, reason)])."""
  os.makedirs(out, exist_ok=True)
  paths, failures = [], []
  for _, name, text, fails in stream(count, seed, prior, workers, _cif_text, max_atoms, progress=progress):
    failures += fails
    if text is None:
      continue
    path = os.path.join(out, f'{name}.cif.gz')
    with outputs.write(path, 'wb') as f:  # a kill leaves whole CIFs only
      f.write(gzip.compress(text.encode()))
    paths.append(path)
  return paths, failures


def check_out(out: str) -> list[str]:
  """The problems of --out (one line each, '' none): a folder that can be created and written, and empty: the
  file names (sgNNN_INDEX.cif.gz) are the same for every seed and prior, so CIFs of another run there would be
  overwritten in part and mixed with these. Nothing is created."""
  checks = cli.Checks()
  if checks.output_dir('out', out) and os.path.isdir(out):
    held = sorted(n for n in os.listdir(out) if not n.startswith('.'))
    checks.require(not held, 'out', out, f'a new or empty folder (it holds {", ".join(held[:3])}'
                   f'{", ..." if len(held) > 3 else ""}, which CIFs of the same names would overwrite; remove them '
                   'or give another folder)')
  return checks.errors


def main(argv):
  del argv
  from absl import flags  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  errors = check_out(f.out)
  for e in errors:
    print(f'synthetic: error: {e}', file=sys.stderr)
  if errors:
    return cli.USAGE_ERROR
  try:
    paths, failures = write_synthetic(f.out, f.count, f.seed, f.prior, f.workers, f.max_atoms)
  except (WorkersLost, OSError) as e:  # OSError: io.outputs.OutputError, a full disk (names the file)
    print(f'error: {e}', file=sys.stderr)
    return 1
  report = failure_summary(failures)
  for sg, row in report.items():
    print(f"space group {sg} ({row['symbol']}): {row['failures']} failed draws, last: {row['last_reason']}",
          file=sys.stderr)
  print(f'wrote {len(paths)} CIFs to {f.out} ({len(failures)} failed draws over {len(report)} space groups)')
  return 0 if len(paths) == f.count else 1


def define_flags():
  """Command-line flags; defined only when run as a program, so that importing this module defines none."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string('out', None, 'Folder for the CIFs (gzipped).', required=True)
  flags.DEFINE_integer('count', 300, 'Number of structures.', lower_bound=1)
  flags.DEFINE_string('prior', 'realistic', 'Space-group prior: realistic, uniform or mixed:W (W realistic).')
  flags.DEFINE_integer('seed', 0, 'Random seed (structure i depends only on seed and i).')
  flags.DEFINE_integer('workers', None, 'Processes (default: all CPU cores).', lower_bound=1)
  flags.DEFINE_integer('max_atoms', MAX_ATOMS, 'Most atoms in the conventional cell.', lower_bound=1)
  flags.register_validator('prior', _valid_prior, message='--prior: realistic, uniform or mixed:W with W in [0, 1]')


def _valid_prior(value: str) -> bool:
  try:
    prior_weights(value)
  except ValueError:
    return False
  return True


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
