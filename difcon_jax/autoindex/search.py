"""Trial-and-error cell search (after TREOR/NTREOR), vectorised over trial cells with NumPy.

A cell of metric system S predicts Q(hkl) = 1/d² = s(hkl) · M_S p, linear in the parameters p of the reciprocal
metric (s = (h², k², l², 2kl, 2hl, 2hk), M_S maps p to (g11, g22, g33, g23, g13, g12)):

  cubic         Q = A (h² + k² + l²)                  A = 1/a²
  tetragonal    Q = A (h² + k²) + C l²                C = 1/c²
  hexagonal     Q = A (h² + hk + k²) + C l²           A = 4/(3a²)
  orthorhombic  Q = A h² + B k² + C l²
  monoclinic    Q = A h² + B k² + C l² + D hl         b unique; D = 2 a* c* cos β*

Search, for one system (`search_system`):
1. trial cells: p base lines (drawn from the first `base_lines` observed lines) are given p low-index forms (every
   ordered choice from a small base set) and p is solved from them: the inverses of the [p, p] form matrices do
   not depend on the pattern and are computed once. Patterns whose first lines all lie in one zone (hk0 of a short
   c axis, h0l of a short monoclinic b) cannot give the last parameter so: the zone's parameters are solved from
   zone lines first, and the last one completed from each of the first `completion_lines` lines;
2. trial cells that are not positive definite, or outside the edge and volume limits, are dropped; the rest are
   brought to one setting (orthorhombic a <= b <= c; monoclinic a, c Lagrange-reduced with β >= 90°) and
   duplicates merged;
3. a quick check counts the first `check_lines` lines that each cell indexes within `quick_tolerance`: the `keep`
   best go on (those missing at most `max_unindexed` of them first, by a rough M_N of those lines), and the
   `keep_by_hits` that index the most;
4. refinement: each line is given its nearest calculated line, and the parameters and a zero shift of 2θ are
   refined by least squares on the indexed lines (residuals in degrees 2θ), four times with the tolerance
   narrowing to `tolerance`; then M_N, F_N and the unindexed lines are computed (merit.py).

A cell is accepted with M_N >= m20_min and at most max_unindexed unindexed lines. `index` runs the systems from
the highest symmetry down (cubic; tetragonal and hexagonal; orthorhombic; monoclinic) and, as TREOR does, stops
after the first level where an accepted cell reaches M_N >= stop_m20 (a weaker one does not end the search: a
false high-symmetry cell with M20 just above 10 would hide the true lower one). The best accepted cell is the
one with the fewest unindexed lines, then the highest M_N, then the smaller volume. (The paper picked NTREOR's
cell with the highest M20, ties by volume; with unindexed lines allowed, a sub-cell that leaves a few lines
unindexed calculates fewer lines and shows a higher M20 than the true cell, so the unindexed lines come first.)
Triclinic cells are not searched: six parameters from six base lines is beyond this trial scheme in seconds.

Labels: the seven crystal systems of the project split the hexagonal metric into trigonal (143-167) and hexagonal
(168-194), which no metric tells apart. A hexagonal-metric cell is called `trigonal` when every indexed line obeys
the rhombohedral condition −h + k + l = 3n (an R lattice, which only trigonal groups have), else `hexagonal`:
trigonal structures with a primitive lattice (P3, P-3m1, P3121, ...) are therefore called hexagonal, always.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import time

import numpy as np

from difcon_jax.autoindex import merit

SYSTEMS = ('cubic', 'tetragonal', 'hexagonal', 'orthorhombic', 'monoclinic')
# Searched in this order (see `index` for when the search stops).
LEVELS = (('cubic',), ('tetragonal', 'hexagonal'), ('orthorhombic',), ('monoclinic',))

# p -> (g11, g22, g33, g23, g13, g12), the reciprocal metric; Q(hkl) = (h², k², l², 2kl, 2hl, 2hk) · g.
_METRIC = {
    'cubic': [[1, 1, 1, 0, 0, 0]],
    'tetragonal': [[1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0]],
    'hexagonal': [[1, 1, 0, 0, 0, 0.5], [0, 0, 1, 0, 0, 0]],
    'orthorhombic': [[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0]],
    'monoclinic': [[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0.5, 0]],
}
_METRIC = {k: np.array(v, np.float64) for k, v in _METRIC.items()}
# The trial forms: index limits (h, k, l) and the largest h² + k² + l² (cubic: the first lines of P, I, F and
# diamond cells; monoclinic: 20 forms, so that four base lines stay at 116,000 trial assignments).
_BASE = {'cubic': ((4, 4, 4), 20), 'tetragonal': ((3, 3, 3), 99), 'hexagonal': ((3, 3, 4), 99),
         'orthorhombic': ((2, 2, 2), 99), 'monoclinic': ((2, 2, 2), 5)}
# Dominant zones: (the zone's parameters, the parameter completed from one more line, the zone forms' limits).
_ZONE = {'tetragonal': ((0,), 1, (4, 4, 0)), 'hexagonal': ((0,), 1, (4, 4, 0)),
         'orthorhombic': ((0, 1), 2, (3, 3, 0)), 'monoclinic': ((0, 2, 3), 1, (2, 0, 2))}
_MAX_INDEX = 40  # the largest index a calculated-line table holds
_CHUNK = 20_000  # trial cells per block of the quick check


@dataclasses.dataclass(frozen=True)
class Settings:
  """What the search accepts; angles in degrees 2θ, lengths in Å."""
  lines: int = 20  # N of de Wolff's M_N: the first N observed lines are indexed
  base_lines: int = 6  # trial base lines are drawn from the first this many lines
  check_lines: int = 12  # lines of the quick check
  completion_lines: int = 12  # lines a dominant zone's missing parameter is completed from
  tolerance: float = 0.03  # a line is indexed when 2θ_obs - zero lies this close to a calculated line
  quick_tolerance: float = 0.08  # the quick check's and the first matching's tolerance (no zero shift yet)
  max_zero_shift: float = 0.2  # |zero shift| refined, at most
  m20_min: float = 10.0  # de Wolff: M20 >= 10 with at most two unindexed lines is a substantially correct cell
  max_unindexed: int = 3  # de Wolff's rule of thumb is 2; picked peaks bring spurious lines (docs/results.md)
  min_edge: float = 2.0
  max_edge: float = 30.0
  max_volume: float = 3000.0  # Å³
  keep: int = 150  # trial cells refined per system, the best by the quick check's figure of merit
  keep_by_hits: int = 150  # and these, the most lines indexed in the quick check
  stop_m20: float = 20.0  # a level whose best accepted cell reaches this M_N ends the search
  unindexed_first: bool = True  # rank by unindexed lines before M_N (else M_N alone, the paper's rule)
  min_lines: int = 6  # fewer observed lines: no search
  precision: float = 0.001  # positions are known no better: the figures of merit take errors as at least this


@dataclasses.dataclass(frozen=True)
class Solution:
  """One refined cell."""
  system: str  # the metric: cubic, tetragonal, hexagonal, orthorhombic, monoclinic
  crystal_system: str  # the project's label (hexagonal metric: trigonal when R-centred, else hexagonal)
  params: tuple[float, ...]  # reciprocal-metric parameters p, Å⁻²
  cell: tuple[float, ...]  # a, b, c (Å), alpha, beta, gamma (degrees)
  volume: float  # Å³
  zero_shift: float  # degrees 2θ, subtracted from the observed positions
  m: float  # de Wolff's M_N
  n: int  # N: lines indexed
  f: float  # Smith & Snyder's F_N
  mean_error: float  # |Δ2θ|̄ of the indexed lines, degrees
  n_possible: int  # distinct calculated lines up to the N-th observed line
  unindexed: int  # of the N lines
  hkl: np.ndarray  # [N, 3] the lines' indices (0 0 0: unindexed)

  def accepted(self, settings: Settings) -> bool:
    return self.m >= settings.m20_min and self.unindexed <= settings.max_unindexed


@dataclasses.dataclass
class Result:
  best: Solution | None  # None: no solution (no cell reached the acceptance rule)
  solutions: list[Solution]  # the best few cells of every system searched, best first
  seconds: dict[str, float]  # search time per system (the systems searched)
  lines: int  # observed lines indexed (N)
  timed_out: bool = False  # the deadline passed before every system due was searched


# ------------------------------------------------------------------------------------------ metric and forms

def coefficients(system: str, hkl: np.ndarray) -> np.ndarray:
  """[n, p] with Q(hkl) = coefficients · p, for forms hkl [n, 3]."""
  h, k, l = np.asarray(hkl, np.float64).T
  s = np.stack([h * h, k * k, l * l, 2 * k * l, 2 * h * l, 2 * h * k], -1)
  return s @ _METRIC[system].T


def reciprocal_metric(system: str, params: np.ndarray) -> np.ndarray:
  """[K, 3, 3] G* of parameters [K, p]."""
  g = np.asarray(params, np.float64) @ _METRIC[system]
  return g[:, [0, 5, 4, 5, 1, 3, 4, 3, 2]].reshape(-1, 3, 3)


def cells(system: str, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(cells [K, 6]: a, b, c in Å, alpha, beta, gamma in degrees; volumes [K] Å³) of parameters [K, p]."""
  g = np.linalg.inv(reciprocal_metric(system, params))
  edges = np.sqrt(np.einsum('kii->ki', g))
  cos = np.stack([g[:, 1, 2] / (edges[:, 1] * edges[:, 2]), g[:, 0, 2] / (edges[:, 0] * edges[:, 2]),
                  g[:, 0, 1] / (edges[:, 0] * edges[:, 1])], -1)
  angles = np.degrees(np.arccos(np.clip(cos, -1, 1)))
  return np.concatenate([edges, angles], 1), np.sqrt(np.maximum(np.linalg.det(g), 0.0))


def params_of_cell(system: str, cell) -> np.ndarray:
  """[p] parameters of a cell (a, b, c Å; alpha, beta, gamma degrees) in the system's setting (hexagonal: c unique,
  gamma 120°; monoclinic: b unique)."""
  a, b, c = cell[:3]
  ca, cb, cg = np.cos(np.deg2rad(np.asarray(cell[3:], np.float64)))
  g = np.array([[a * a, a * b * cg, a * c * cb], [a * b * cg, b * b, b * c * ca], [a * c * cb, b * c * ca, c * c]])
  gs = np.linalg.inv(g)
  return np.array({'cubic': [gs[0, 0]], 'tetragonal': [gs[0, 0], gs[2, 2]], 'hexagonal': [gs[0, 0], gs[2, 2]],
                   'orthorhombic': [gs[0, 0], gs[1, 1], gs[2, 2]],
                   'monoclinic': [gs[0, 0], gs[1, 1], gs[2, 2], 2 * gs[0, 2]]}[system])


def forms(system: str, limits: tuple[int, int, int]) -> np.ndarray:
  """[M, 3] one hkl per set of reflections that share Q in every cell of the system (the Laue class of its
  lattice), indices up to limits (h, k, l); 0 0 0 excluded."""
  hm, km, lm = (int(x) for x in limits)
  if system == 'cubic':
    km = lm = hm
  h, k, l = np.meshgrid(np.arange(-hm, hm + 1), np.arange(-km, km + 1), np.arange(-lm, lm + 1), indexing='ij')
  h, k, l = h.ravel(), k.ravel(), l.ravel()
  if system == 'cubic':
    keep = (h >= k) & (k >= l) & (l >= 0)
  elif system in ('tetragonal', 'hexagonal'):
    keep = (h >= k) & (k >= 0) & (l >= 0)
  elif system == 'orthorhombic':
    keep = (h >= 0) & (k >= 0) & (l >= 0)
  elif system == 'monoclinic':
    keep = (k >= 0) & ((l > 0) | ((l == 0) & (h >= 0)))
  else:
    raise ValueError(f'unknown system {system!r}')
  keep &= (h != 0) | (k != 0) | (l != 0)
  return np.stack([h[keep], k[keep], l[keep]], -1)


@functools.cache
def _table(system: str, limits: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
  """Forms [M, 3] up to limits and their coefficients [M, p]."""
  f = forms(system, limits)
  return f, coefficients(system, f)


def _unique_rows(coef: np.ndarray) -> np.ndarray:
  """Indices of the first of each set of equal coefficient rows (forms that give the same equations)."""
  _, first = np.unique(np.round(coef, 6), axis=0, return_index=True)
  return np.sort(first)


@functools.cache
def _base_inverses(system: str) -> np.ndarray:
  """[F, p, p] inverses of every non-singular ordered choice of p base forms' coefficient rows."""
  limits, max_s = _BASE[system]
  f = forms(system, limits)
  f = f[(f**2).sum(1) <= max_s]
  coef = coefficients(system, f)
  coef = coef[_unique_rows(coef)]
  p = coef.shape[1]
  tuples = np.array(list(itertools.permutations(range(len(coef)), p)), np.int64).reshape(-1, p)
  mats = coef[tuples]  # [F, p, p]
  ok = np.abs(np.linalg.det(mats)) > 1e-6
  return np.linalg.inv(mats[ok])


@functools.cache
def _zone_tables(system: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """The dominant-zone scheme of a system: (zone inverses [F, z, z], zone check coefficients [Mz, z],
  completion forms' zone coefficients [Mc, z], their completed coefficient [Mc])."""
  zone, last, limits = _ZONE[system]
  zf = forms(system, limits)
  zc = coefficients(system, zf)
  zc = zc[np.abs(zc[:, last]) < 1e-12][:, list(zone)]
  zc = zc[_unique_rows(zc)]
  z = len(zone)
  tuples = np.array(list(itertools.permutations(range(len(zc)), z)), np.int64).reshape(-1, z)
  mats = zc[tuples]
  ok = np.abs(np.linalg.det(mats)) > 1e-6
  check_f = forms(system, tuple(2 * x for x in limits))
  check = coefficients(system, check_f)
  check = check[np.abs(check[:, last]) < 1e-12][:, list(zone)]
  base_limits, max_s = _BASE[system]
  cf = forms(system, base_limits)
  cf = cf[(cf**2).sum(1) <= max(max_s, 6)]
  cc = coefficients(system, cf)
  cc = cc[np.abs(cc[:, last]) > 1e-12]
  cc = cc[_unique_rows(cc)]
  return np.linalg.inv(mats[ok]), check, cc[:, list(zone)], cc[:, last]


# ------------------------------------------------------------------------------------------------ trial cells

def _plausible(system: str, params: np.ndarray, s: Settings) -> np.ndarray:
  """[K] bool: positive definite, edges and volume within the limits."""
  ok = np.all(params[:, :3 if system in ('orthorhombic', 'monoclinic') else params.shape[1]] > 0, axis=1)
  if system == 'monoclinic':
    ok &= 4 * params[:, 0] * params[:, 2] > params[:, 3] ** 2
  out = np.zeros(len(params), bool)
  if ok.any():
    c, v = cells(system, params[ok])
    out[ok] = ((c[:, :3] >= s.min_edge).all(1) & (c[:, :3] <= s.max_edge).all(1) & (v <= s.max_volume))
  return out


def _reduce_monoclinic(params: np.ndarray) -> np.ndarray:
  """Monoclinic parameters [K, 4] of the same lattices with a and c Lagrange-reduced (|a·c| <= a²/2, a <= c) and
  β >= 90°: one setting per lattice, so that duplicates can be merged."""
  A, B, C, D = params.T
  det = A * C - D * D / 4
  gaa, gcc, gac = C / det, A / det, -D / 2 / det  # the direct a, c block: inverse of [[A, D/2], [D/2, C]]
  for _ in range(30):
    swap = gaa > gcc
    gaa, gcc = np.where(swap, gcc, gaa), np.where(swap, gaa, gcc)
    m = np.round(gac / gaa)
    if not np.any(m) and not np.any(swap):
      break
    gcc, gac = gcc - 2 * m * gac + m * m * gaa, gac - m * gaa
  gac = -np.abs(gac)  # β >= 90°
  det = gaa * gcc - gac * gac
  return np.stack([gcc / det, B, gaa / det, -2 * gac / det], -1)


def canonical(system: str, params: np.ndarray) -> np.ndarray:
  """Parameters [K, p] brought to one setting per lattice (orthorhombic: a <= b <= c; monoclinic: reduced,
  β >= 90°)."""
  if system == 'orthorhombic':
    return -np.sort(-params, axis=1)
  if system == 'monoclinic':
    return _reduce_monoclinic(params)
  return params


def _dedupe(params: np.ndarray) -> np.ndarray:
  """Parameters [K, p] with near-equal rows (0.05% of the largest) merged."""
  if len(params) == 0:
    return params
  top = np.abs(params).max(axis=1, keepdims=True)
  key = np.concatenate([np.round(np.log(top) * 2000), np.round(params / top * 2000)], 1)
  _, first = np.unique(key, axis=0, return_index=True)
  return params[np.sort(first)]


def trial_cells(system: str, q: np.ndarray, s: Settings = Settings()) -> np.ndarray:
  """Plausible, deduplicated trial parameters [K, p] of one system from observed Q [n] (ascending, Å⁻²)."""
  inv = _base_inverses(system)
  p = inv.shape[1]
  nb = min(s.base_lines, len(q))
  found = []
  for lines in itertools.combinations(range(nb), p):
    trial = inv @ q[list(lines)]  # [F, p]
    trial = trial[_plausible(system, trial, s)]
    found.append(canonical(system, trial))
  if system in _ZONE:
    found.append(_zone_trials(system, q, s))
  if not found:
    return np.zeros((0, p))
  return _dedupe(np.concatenate(found))


def _zone_trials(system: str, q: np.ndarray, s: Settings) -> np.ndarray:
  """Trial parameters from a dominant zone: zone parameters from zone lines, the last one from one more line."""
  zone, last, _ = _ZONE[system]
  inv, check, comp_zone, comp_last = _zone_tables(system)
  z = inv.shape[1]
  p = len(_METRIC[system])
  nb = min(s.base_lines, len(q))
  nc = min(s.check_lines, len(q))
  zones = []
  for lines in itertools.combinations(range(nb), z):
    t = inv @ q[list(lines)]
    zones.append(t[np.all(t[:, :min(z, 2)] > 0, axis=1)])
  zones = np.concatenate(zones) if zones else np.zeros((0, z))
  if system == 'monoclinic' and len(zones):
    zones = zones[4 * zones[:, 0] * zones[:, 1] > zones[:, 2] ** 2]
  if len(zones) == 0:
    return np.zeros((0, p))
  zones = _dedupe(zones)
  # The zone must index some of the first lines beyond its own: keep the zones indexing the most.
  rel = 2e-3  # relative Q tolerance of this coarse check (about 0.06° at 30°)
  qc = zones @ check.T  # [Z, Mz]
  hits = np.zeros((len(zones), nc), bool)
  for j in range(nc):
    hits[:, j] = (np.abs(qc - q[j]) <= rel * q[j]).any(1)
  count = hits.sum(1)
  order = np.argsort(-count, kind='stable')[:200]
  order = order[count[order] >= z + 2]
  zones, hits = zones[order], hits[order]
  if len(zones) == 0:
    return np.zeros((0, p))
  # Complete the last parameter from each line the zone leaves unindexed.
  ncomp = min(s.completion_lines, len(q))
  qz = zones @ comp_zone.T  # [Z, Mc]
  last_value = (q[None, :ncomp, None] - qz[:, None, :]) / comp_last[None, None, :]  # [Z, lines, Mc]
  free = np.ones((len(zones), ncomp), bool)
  shared = min(ncomp, hits.shape[1])
  free[:, :shared] = ~hits[:, :shared]  # lines the zone indexes are not completion lines
  usable = free[:, :, None] & (last_value > 0)
  zi = np.nonzero(usable)[0]
  full = np.zeros((len(zi), p))
  full[:, list(zone)] = zones[zi]
  full[:, last] = last_value[usable]
  full = full[_plausible(system, full, s)]
  return canonical(system, full)


# ---------------------------------------------------------------------------------------------- quick check

def _index_limits(system: str, params: np.ndarray, q_max: float) -> np.ndarray:
  """[K, 3] the largest |h|, |k|, |l| of a line with Q <= q_max (|h| <= a sqrt(Q))."""
  c, _ = cells(system, params)
  return np.minimum(np.ceil(c[:, :3] * np.sqrt(q_max)).astype(np.int64), _MAX_INDEX)


_BUCKETS = np.array([2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40])


def _bucketed(system: str, params: np.ndarray, q_max: float):
  """Yields (indices into params, forms [M, 3], coefficients [M, p]): cells grouped by the index limits
  (rounded up to a few sizes) that their lines up to q_max need, so each group is scored on a table no larger
  than it needs."""
  need = _index_limits(system, params, q_max)
  need = _BUCKETS[np.searchsorted(_BUCKETS, need)]
  keys, inverse = np.unique(need, axis=0, return_inverse=True)
  for g, key in enumerate(keys):
    idx = np.nonzero(inverse.ravel() == g)[0]
    f, coef = _table(system, tuple(int(x) for x in key))
    yield idx, f, coef


def quick_scores(system: str, params: np.ndarray, q: np.ndarray, tol_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """For cells [K, p] and lines q [n] (Å⁻², ascending): (how many lines each cell indexes within tol_q [n],
  a rough de Wolff figure Q_n / (2 ε̄ N) with ε̄ the mean distance of the indexed lines to their nearest
  calculated line and N the calculated lines (forms) up to q[-1])."""
  hits = np.zeros(len(params), np.int64)
  figure = np.zeros(len(params))
  if len(params) == 0:
    return hits, figure
  for idx, _, coef in _bucketed(system, params, float(q[-1] + tol_q[-1])):
    coef32 = coef.astype(np.float32)
    for start in range(0, len(idx), _CHUNK):
      part = idx[start:start + _CHUNK]
      qc = params[part].astype(np.float32) @ coef32.T  # [c, M]
      err_sum = np.zeros(len(part))
      for j in range(len(q)):
        err = np.abs(qc - np.float32(q[j])).min(1)
        hit = err <= tol_q[j]
        hits[part] += hit
        err_sum += np.where(hit, err, 0.0)
      n_calc = (qc <= np.float32(q[-1] + tol_q[-1])).sum(1)
      eps = err_sum / np.maximum(hits[part], 1) + 1e-3 * tol_q.mean()  # a floor: exact lines are not infinitely good
      figure[part] = q[-1] / (2 * eps * np.maximum(n_calc, 1))
  return hits, figure


# ------------------------------------------------------------------------------------------------ refinement

def _nearest(q_sorted: np.ndarray, q_obs: np.ndarray) -> np.ndarray:
  """[K, N] column of the nearest value in each row of q_sorted [K, M] (ascending, finite) to q_obs [K, N]."""
  k, m = q_sorted.shape
  span = float(max(q_sorted.max(), q_obs.max())) * 2 + 1.0
  offset = np.arange(k)[:, None] * span
  flat = (q_sorted + offset).ravel()
  pos = np.searchsorted(flat, (q_obs + offset).ravel()).reshape(q_obs.shape) - np.arange(k)[:, None] * m
  hi = np.clip(pos, 0, m - 1)
  lo = np.clip(pos - 1, 0, m - 1)
  rows = np.arange(k)[:, None]
  take_lo = np.abs(q_sorted[rows, lo] - q_obs) <= np.abs(q_sorted[rows, hi] - q_obs)
  return np.where(take_lo, lo, hi)


def refine(system: str, params: np.ndarray, two_theta: np.ndarray, wavelength: float, s: Settings = Settings()):
  """Refines cells [K, p] and a zero shift each on the lines two_theta [N] (degrees, ascending) and scores them.

  Returns a dict of arrays: params [K, p], zero [K], m [K], f [K], mean_error [K], n_possible [K],
  unindexed [K], hkl [K, N, 3].
  """
  params = np.asarray(params, np.float64)
  n = len(two_theta)
  p = params.shape[1]
  out = {'params': params.copy(), 'zero': np.zeros(len(params)), 'm': np.zeros(len(params)),
         'f': np.zeros(len(params)), 'mean_error': np.zeros(len(params)), 'n_possible': np.zeros(len(params), int),
         'unindexed': np.full(len(params), n), 'hkl': np.zeros((len(params), n, 3), int)}
  if len(params) == 0:
    return out
  q_max = float(merit.q_of_two_theta(two_theta[-1] + s.max_zero_shift + s.quick_tolerance, wavelength))
  # Residuals are in degrees; the zero shift gets a weak prior (about a line's weight at max_zero_shift / 2).
  prior = (s.tolerance / (s.max_zero_shift / 2)) ** 2
  for idx, f, coef in _bucketed(system, params, q_max):
    pr, z = params[idx], np.zeros(len(idx))
    steps = (s.quick_tolerance, s.tolerance * 2, s.tolerance, s.tolerance, s.tolerance)
    for it, tol in enumerate(steps):
      tt = two_theta[None, :] - z[:, None]  # [k, N]
      qo = merit.q_of_two_theta(tt, wavelength)
      g = merit.dq_dtwo_theta(tt, wavelength)
      qc = pr @ coef.T  # [k, M]
      order = np.argsort(qc, axis=1)
      qs = np.take_along_axis(qc, order, 1)
      near = _nearest(qs, qo)
      form = np.take_along_axis(order, near, 1)  # [k, N] index into the table
      err = qo - np.take_along_axis(qs, near, 1)
      ok = np.abs(err) <= g * tol
      if it == len(steps) - 1:
        break
      # Gauss-Newton step (dp, dz) of q(2θ - z) = c·p: q(2θ - z) - c·p = c·dp + dz·g, residuals divided by g
      # (degrees), over the indexed lines; a tiny ridge keeps a parameter that no indexed line fixes where it is.
      x = np.concatenate([coef[form], g[..., None]], -1) / g[..., None]  # [k, N, p + 1]
      r = (qo - np.einsum('knp,kp->kn', coef[form], pr)) / g
      w = ok.astype(np.float64)
      xtx = np.einsum('kn,kni,knj->kij', w, x, x)
      xty = np.einsum('kn,kni,kn->ki', w, x, r)
      xtx += np.eye(p + 1) * (1e-9 * np.einsum('kii->k', xtx)[:, None, None] + 1e-300)
      xtx[:, p, p] += prior
      xty[:, p] -= prior * z  # the prior is on the total zero shift z + dz
      enough = ok.sum(1) >= p + 2
      xtx[~enough] = np.eye(p + 1)
      xty[~enough] = 0.0
      step = np.linalg.solve(xtx, xty[..., None])[..., 0]
      good = enough & np.all(np.isfinite(step), 1)
      pr = np.where(good[:, None], pr + step[:, :p], pr)
      z = np.where(good, np.clip(z + step[:, p], -s.max_zero_shift, s.max_zero_shift), z)
    n_calc = merit.count_distinct(qs, qo[:, -1])
    m = merit.de_wolff(qo, err, ok, n_calc, g[:, -1] * s.precision)
    f_n, mean = merit.smith_snyder(err / g, ok, n_calc, s.precision)
    out['params'][idx], out['zero'][idx], out['m'][idx], out['f'][idx] = pr, z, m, f_n
    out['mean_error'][idx], out['n_possible'][idx] = mean, n_calc
    out['unindexed'][idx] = n - ok.sum(1)
    out['hkl'][idx] = np.where(ok[..., None], f[form], 0)
  return out


# ------------------------------------------------------------------------------------------- the R lattice

def _hexagonal_family(hkl: np.ndarray) -> np.ndarray:
  """[n, 24, 3] the reflections of each hexagonal form under 6/mmm (i = -h - k)."""
  h, k, l = hkl[:, 0], hkl[:, 1], hkl[:, 2]
  i = -h - k
  planar = [(h, k), (k, i), (i, h), (k, h), (h, i), (i, k)]
  out = []
  for a, b in planar:
    for sign in (1, -1):
      for ls in (1, -1):
        out.append(np.stack([sign * a, sign * b, ls * l], -1))
  return np.stack(out, 1)


def rhombohedral(hkl: np.ndarray) -> bool:
  """Whether every indexed line (hkl [N, 3] on hexagonal axes, 0 0 0 = unindexed) has a reflection in its 6/mmm
  family with −h + k + l = 3n: the lines of an R lattice (obverse setting), found only in trigonal groups."""
  lines = hkl[np.any(hkl != 0, axis=1)]
  if len(lines) < 3:
    return False
  fam = _hexagonal_family(lines)
  allowed = ((-fam[..., 0] + fam[..., 1] + fam[..., 2]) % 3 == 0).any(1)
  return bool(allowed.all())


# ----------------------------------------------------------------------------------------------- the search

def _solutions(system: str, scored: dict, s: Settings, limit: int = 3) -> list[Solution]:
  """The best `limit` distinct cells of a refined set, best first: the accepted ones (Solution.accepted) as
  `rank_key` orders them, then the others with the fewest unindexed lines beyond s.max_unindexed, then by M_N."""
  if len(scored['m']) == 0:
    return []
  c, v = cells(system, scored['params'])
  accepted = (scored['m'] >= s.m20_min) & (scored['unindexed'] <= s.max_unindexed)
  unindexed = scored['unindexed'] if s.unindexed_first else np.zeros_like(scored['unindexed'])
  order = np.lexsort((v, -scored['m'], np.where(accepted, unindexed, 0),
                      np.maximum(scored['unindexed'] - s.max_unindexed, 0), ~accepted))
  out, seen = [], []
  for i in order:
    key = np.round(np.r_[c[i, :3] * 100, c[i, 3:] * 10])
    if any(np.array_equal(key, k) for k in seen):
      continue
    seen.append(key)
    hkl = scored['hkl'][i]
    label = system
    if system == 'hexagonal' and rhombohedral(hkl):
      label = 'trigonal'
    out.append(Solution(system, label, tuple(float(x) for x in scored['params'][i]),
                        tuple(float(x) for x in c[i]), float(v[i]), float(scored['zero'][i]), float(scored['m'][i]),
                        hkl.shape[0], float(scored['f'][i]), float(scored['mean_error'][i]),
                        int(scored['n_possible'][i]), int(scored['unindexed'][i]), hkl))
    if len(out) == limit:
      break
  return out


def search_system(system: str, two_theta: np.ndarray, wavelength: float, s: Settings = Settings()) -> list[Solution]:
  """The best few cells of one system for observed lines two_theta [n] (degrees at wavelength Å, ascending):
  the first s.lines are indexed."""
  tt = np.sort(np.asarray(two_theta, np.float64))[:s.lines]
  if len(tt) < s.min_lines:
    return []
  q = merit.q_of_two_theta(tt, wavelength)
  trials = trial_cells(system, q, s)
  if len(trials) == 0:
    return []
  nc = min(s.check_lines, len(q))
  tol = merit.dq_dtwo_theta(tt[:nc], wavelength) * s.quick_tolerance
  hits, figure = quick_scores(system, trials, q[:nc], tol)
  # Cells that miss at most max_unindexed check lines first, by their rough figure of merit (a supercell indexes
  # as many lines as its cell, and more spurious ones, with more calculated lines), then the others by hits.
  good = hits >= nc - s.max_unindexed
  by_figure = np.lexsort((-figure, -np.where(good, nc, hits)))[:s.keep]
  by_hits = np.lexsort((-figure, -hits))[:s.keep_by_hits]
  order = np.concatenate([by_figure, by_hits[~np.isin(by_hits, by_figure)]])
  scored = refine(system, trials[order], tt, wavelength, s)
  return _solutions(system, scored, s)


def index(two_theta: np.ndarray, wavelength: float, s: Settings = Settings(),
          systems: tuple[str, ...] = SYSTEMS, stop_at_first: bool = True, deadline: float | None = None) -> Result:
  """Indexes observed lines two_theta [n] (degrees at wavelength Å): the systems of LEVELS in turn, stopping after
  the first level with an accepted cell when stop_at_first. deadline (this process's CPU time, time.process_time()
  seconds: a busy machine does not shorten the search): no system is started after it (one already running
  finishes); the result then says timed_out."""
  tt = np.sort(np.asarray(two_theta, np.float64))
  tt = tt[np.isfinite(tt) & (tt > 0)]
  solutions, seconds, timed_out = [], {}, False
  for level in LEVELS:
    found = []
    for system in level:
      if system not in systems:
        continue
      if deadline is not None and time.process_time() > deadline:
        timed_out = True
        break
      start = time.perf_counter()
      found += search_system(system, tt, wavelength, s)
      seconds[system] = time.perf_counter() - start
    solutions += found
    if timed_out or (stop_at_first and any(x.accepted(s) and x.m >= s.stop_m20 for x in found)):
      break
  solutions.sort(key=lambda x: (not x.accepted(s),) + rank_key(x, s))
  best = solutions[0] if solutions and solutions[0].accepted(s) else None
  return Result(best, solutions, seconds, min(len(tt), s.lines), timed_out)


def rank_key(x: Solution, s: Settings) -> tuple:
  """Sort key of accepted cells, best first: the highest M_N, then the smaller volume (the paper's choice among
  NTREOR's cells); with s.unindexed_first, the fewest unindexed lines before that."""
  return ((x.unindexed,) if s.unindexed_first else ()) + (-x.m, x.volume)


# The metric a crystal-system label is checked with (triclinic: not searched).
METRIC_OF = {'cubic': 'cubic', 'tetragonal': 'tetragonal', 'trigonal': 'hexagonal', 'hexagonal': 'hexagonal',
             'orthorhombic': 'orthorhombic', 'monoclinic': 'monoclinic'}


def check_system(two_theta: np.ndarray, crystal_system: str, wavelength: float,
                 s: Settings = Settings()) -> Solution | None:
  """The best cell of the metric of `crystal_system` (one of the seven labels) for observed lines two_theta
  (degrees at wavelength Å), or None when that system is not searched (triclinic) or no cell is found. Its `m`
  says how well a cell of that system indexes the lines (M_N >= s.m20_min: it does)."""
  system = METRIC_OF.get(crystal_system)
  if system is None:
    return None
  found = search_system(system, np.asarray(two_theta, np.float64), wavelength, s)
  return found[0] if found else None
