"""The augmentation kernel: padded Bragg peak arrays + random draws -> a full pattern, in JAX.

Randomness is drawn first, for a whole batch (`sample_draws`: Latin-hypercube U, V, W, p across the batch), and
the operations below are deterministic functions of (peaks, draws), so the NumPy reference (`reference.py`) can
be fed the same draws. `augment_batch(key, two_theta, intensity, cfg)` does both, jit- and vmap-friendly.

Operations, in the order of the paper's Table 1: zero shift and per-peak jitter, peak cropping, intensity
noise, impurity peaks, binning (peak positions snap to bin centres), the profile, background noise, cropping,
normalisation.

The profile is a split pseudo-Voigt: Gaussian and Lorentzian of one FWHM mixed by η, with the low- and
high-angle halves widened/narrowed by the asymmetry ρ (H_left = H (1 + ρ/2), H_right = H (1 − ρ/2), each
clipped to [0.005, 0.05]°) and scaled so that the area is the peak's intensity. Each bin gets the exact integral
of the profile over the bin (differences of the closed-form CDF at the bin edges), so a peak narrower than a
bin keeps its integrated intensity. Every peak is evaluated on its own window: ±32·FWHM_max for the Lorentzian
part (tail mass outside < 1%) and ±3·FWHM_max for the Gaussian part, and scatter-added into the pattern.

`render_batch` renders a batch in a loop of chunks (8 patterns on a CPU, where a chunk's windows stay in cache;
the whole batch on accelerators) and, given a device mesh, each device its own share of the batch.

The `lab` distribution (params.py) adds a laboratory diffractometer's effects, each an operation below:
March-Dollase preferred orientation (`march_dollase`, from each peak's hkl and the cell when the caller has them),
lattice strain (`strain_positions`: a relaxed or measured cell is not the cell of the sample; from hkl and cell too),
sample displacement (`displace`), instrument + crystallite-size + microstrain widths (`lab_fwhm`), peaks up to 0.3°
wide (a mid zone of each window, `profile_masses`), the Cu Kα2 line (`add_kalpha2`), a measured-looking background
(`measured_background`) under the counting noise. Profile limits and windows are a property of the distribution
(`cfg.profile`): train, invariance_test, invariance_nuisance and ideal keep Table 1's ([0.005, 0.05]°, the windows
above).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from difcon_jax.crystallography import pattern_grid as grid_lib
from difcon_jax.augment import params as params_lib

Draws = dict[str, jax.Array]

_LN2 = math.log(2.0)
_GAUSS_AREA = math.sqrt(math.pi / (4 * _LN2))  # ∫ exp(-4 ln2 u²) du, FWHM 1
_LORENTZ_AREA = math.pi / 2  # ∫ 1 / (1 + 4u²) du, FWHM 1


def _limits(profile: ml_collections.ConfigDict | None) -> ml_collections.ConfigDict:
  """A distribution's profile limits (params.profile_limits); None: Table 1's."""
  return profile if profile is not None else params_lib.profile_limits('train')


def window_bins(grid: ml_collections.ConfigDict, profile: ml_collections.ConfigDict | None = None) -> tuple[int, int]:
  """Half-widths (bins) of every peak's window and of its core (where the Gaussian part lives).

  The core is at least the near zone (_NEAR_BINS); wider peaks (lab) get a mid zone out to
  gauss_window_fwhm·FWHM_max, where the Gaussian has fallen below 4e-8 of its height (2.5 FWHM) and from where the
  far series of the Lorentzian converges (2x/h > 5 at the widest peak).
  """
  p = _limits(profile)
  w = grid_lib.bin_width(grid)
  ceil = lambda x: int(math.ceil(round(x, 9)))  # 10 · 0.3 / 0.01 is 300, not 300.00000000000006
  k = ceil(p.lorentz_window_fwhm * p.fwhm_max / w)
  core = max(_NEAR_BINS, ceil(p.gauss_window_fwhm * p.fwhm_max / w - 0.5))
  if k <= core:
    raise ValueError(f'a window of {k} bins does not reach past the core of {core} bins')
  return k, core


# ----------------------------------------------------------------------------------------------- random draws

# Scalar quantities drawn per pattern; symmetric ones get a random sign, integer ones are rounded down.
_SCALARS = ('zero_shift', 'jitter', 'peak_crop_low', 'peak_crop_high', 'intensity_noise', 'impurities', 'eta',
            'asymmetry', 'background', 'dilation', 'counting_noise', 'crop_low', 'crop_high')
_SIGNED = ('zero_shift', 'asymmetry')
_INTEGER = ('impurities', 'dilation')


def _latin_hypercube(key, batch: int, dims: int) -> jax.Array:
  """[batch, dims] in [0, 1): each dimension has exactly one draw in each of `batch` equal strata."""
  kp, ku = jax.random.split(key)
  strata = jnp.argsort(jax.random.uniform(kp, (batch, dims)), axis=0)  # a random permutation per column
  return (strata + jax.random.uniform(ku, (batch, dims))) / batch


def sample_draws(key: jax.Array, cfg: ml_collections.ConfigDict, batch: int, num_peaks: int) -> Draws:
  """Every random quantity for `batch` patterns of `num_peaks` peaks (leading axis: batch).

  A handful of large draws sliced up, rather than one draw per quantity: each draw is a threefry instance that
  XLA compiles separately.
  """
  d, g = cfg.dist, cfg.grid
  n, m = g.num_bins, cfg.max_impurities
  k_lhs, k_scalar, k_sign, k_peaks, k_imp, k_noise = jax.random.split(key, 6)
  out = {}
  lhs = _latin_hypercube(k_lhs, batch, 4)
  for i, name in enumerate('UVWp'):
    out[name] = d[name][0] + lhs[:, i] * (d[name][1] - d[name][0])
  u = jax.random.uniform(k_scalar, (len(_SCALARS), batch))
  sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, (len(_SIGNED), batch)), 1.0, -1.0)
  for i, name in enumerate(_SCALARS):
    lo, hi = d[name]
    if name in _INTEGER:
      out[name] = jnp.minimum(jnp.floor(lo + u[i] * (hi - lo + 1)), hi).astype(jnp.int32)
    else:
      out[name] = lo + u[i] * (hi - lo)
    if name in _SIGNED:
      out[name] = out[name] * sign[_SIGNED.index(name)]
  per_peak = jax.random.uniform(k_peaks, (2, batch, num_peaks), minval=-1.0, maxval=1.0)
  out['jitter'] = out['jitter'][:, None] * per_peak[0]
  out['intensity_noise'] = out['intensity_noise'][:, None] * per_peak[1]
  imp = jax.random.uniform(k_imp, (2, batch, m))
  lo, hi = d.impurity_intensity
  out['impurity_two_theta'] = g.two_theta_min + 1.0 + imp[0] * (g.two_theta_max - g.two_theta_min - 2.0)
  out['impurity_intensity'] = (lo + imp[1] * (hi - lo)) * (jnp.arange(m)[None, :] < out.pop('impurities')[:, None])
  out['white'], out['gauss'] = _per_bin_noise(k_noise, (batch, n))
  if cfg.get('lab_effects'):
    out.update(_sample_lab(jax.random.fold_in(key, _LAB_STREAM), d, batch))
  return out


# The lab draws come from a stream of their own (fold_in), so that the Table 1 draws of a key are the same random
# numbers in every distribution, with or without lab effects.
_LAB_STREAM = 1
_STRAIN_STREAM = 1  # within the lab stream
_LAB_UNIFORM = ('microstrain', 'kalpha2_ratio', 'displacement', 'march_dollase_log_r', 'background_level',
                'hump_amplitude', 'hump_centre', 'hump_fwhm', 'low_angle_amplitude', 'low_angle_decay')
_LAB_LOG_UNIFORM = ('crystallite_size',)
_LAB_SWITCHES = ('kalpha2', 'preferred_orientation', 'hump')  # effects on with a probability
# Preferred-orientation directions: the normals of low-index planes, one of each ± pair (platelets lie on, and
# needles grow along, low-index planes and axes).
PREFERRED_DIRECTIONS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, -1, 0], [1, 0, 1], [1, 0, -1],
                                 [0, 1, 1], [0, 1, -1], [1, 1, 1], [-1, 1, 1], [1, -1, 1], [1, 1, -1]])


def _sample_strain(key, d, batch: int) -> Draws:
  """Lattice strain of `batch` patterns: an isotropic relative change of the cell (|ε| ~ U(lattice_strain), random
  sign) and six relative changes of a, b, c, α, β, γ (each |δ| ~ U(lattice_strain_free), random sign), of which
  `strain_cell` uses the ones the lattice's metric leaves free."""
  k_mag, k_sign = jax.random.split(key)
  u = jax.random.uniform(k_mag, (batch, 7))
  sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, (batch, 7)), 1.0, -1.0)
  (lo, hi), (flo, fhi) = d.lattice_strain, d.lattice_strain_free
  return {'lattice_strain': sign[:, 0] * (lo + u[:, 0] * (hi - lo)),
          'lattice_strain_free': sign[:, 1:] * (flo + u[:, 1:] * (fhi - flo))}


def _sample_lab(key, d, batch: int) -> Draws:
  """The lab distribution's instrument, sample and background quantities for `batch` patterns."""
  k_u, k_cheb, k_dir = jax.random.split(key, 3)
  names = _LAB_UNIFORM + _LAB_LOG_UNIFORM
  u = jax.random.uniform(k_u, (len(names) + len(_LAB_SWITCHES) + 2, batch))
  out = {}
  for i, name in enumerate(names):
    lo, hi = d[name]
    if name in _LAB_LOG_UNIFORM:
      out[name] = jnp.exp(math.log(lo) + u[i] * (math.log(hi) - math.log(lo)))
    else:
      out[name] = lo + u[i] * (hi - lo)
  on = {name: u[len(names) + i] < d[name] for i, name in enumerate(_LAB_SWITCHES)}
  sign = jnp.where(u[-2:] < 0.5, 1.0, -1.0)
  out['kalpha2_ratio'] = jnp.where(on['kalpha2'], out['kalpha2_ratio'], 0.0)
  out['displacement'] = out['displacement'] * sign[0]
  out['march_dollase_r'] = jnp.where(on['preferred_orientation'], jnp.exp(sign[1] * out.pop('march_dollase_log_r')),
                                     1.0)
  directions = jnp.asarray(PREFERRED_DIRECTIONS, jnp.float32)
  out['preferred_direction'] = directions[jax.random.randint(k_dir, (batch,), 0, len(PREFERRED_DIRECTIONS))]
  out['hump_amplitude'] = jnp.where(on['hump'], out['hump_amplitude'], 0.0)
  lo, hi = d.background_chebyshev
  out['background_chebyshev'] = jax.random.uniform(k_cheb, (batch, params_lib.CHEBYSHEV_TERMS), minval=lo, maxval=hi)
  # From a stream of its own, so that adding the strain left every other lab draw of a key as it was.
  out.update(_sample_strain(jax.random.fold_in(key, _STRAIN_STREAM), d, batch))
  return out


# Draw values that switch every lab effect and every Table 1 perturbation off, leaving a lone Gaussian of FWHM
# 0.02° per peak: the baseline of pictures and tests that show one effect at a time (`override_draws`).
LAB_EFFECTS_OFF = dict(
    zero_shift=0.0, jitter=0.0, peak_crop_low=0.0, peak_crop_high=180.0, intensity_noise=0.0,
    impurity_intensity=0.0, background=0.0, counting_noise=0.0, dilation=1, crop_low=0.0, crop_high=180.0,
    U=0.0, V=0.0, W=4e-4, eta=0.0, asymmetry=0.0, crystallite_size=1e9, microstrain=0.0, kalpha2_ratio=0.0,
    displacement=0.0, march_dollase_r=1.0, background_level=0.0, background_chebyshev=0.0, hump_amplitude=0.0,
    low_angle_amplitude=0.0, lattice_strain=0.0, lattice_strain_free=0.0)


def override_draws(draws: Draws, **values) -> Draws:
  """A copy of `draws` (arrays with a leading batch axis) with some quantities set to fixed values, broadcast
  over the batch (and over the peaks or bins where a quantity has them)."""
  out = dict(draws)
  for name, value in values.items():
    a = np.asarray(draws[name])
    out[name] = np.broadcast_to(np.asarray(value, a.dtype), a.shape).copy()
  return out


def _mix32(x):
  """A bijective 32-bit integer mixer (Wellons' `lowbias32`): every output bit depends on every input bit."""
  x = x ^ (x >> 16)
  x = x * jnp.uint32(0x7FEB352D)
  x = x ^ (x >> 15)
  x = x * jnp.uint32(0x846CA68B)
  return x ^ (x >> 16)


def _per_bin_noise(key, shape):
  """White noise U(-1, 1) and standard normal noise, one value of each per bin.

  The generator is counter-based: 32 bits for bin i of pattern b are mix(mix(i + s0_b) ^ s1_b), with the two
  seeds s_b drawn from `key` (threefry); the halves of the 32 bits give the two values (65,536 levels each; the
  normal tails end at 4.3σ). Threefry for all 12,000 bins of every pattern was half of the kernel's time on a
  CPU (docs/benchmarks.md); this is elementwise integer arithmetic, so it also partitions over devices freely.
  """
  *batch, n = shape
  seeds = jax.random.bits(key, (*batch, 2), jnp.uint32)
  counter = jnp.arange(n, dtype=jnp.uint32)
  bits = _mix32(_mix32(counter + seeds[..., :1]) ^ seeds[..., 1:])
  to_unit = lambda b: (b.astype(jnp.float32) + 0.5) * (2.0 / 65536) - 1.0  # centres of 65,536 cells of (-1, 1)
  white = to_unit(bits >> 16)
  gauss = math.sqrt(2.0) * jax.scipy.special.erfinv(to_unit(bits & 0xFFFF))
  return white, gauss


# ------------------------------------------------------------------------------------------------- operations
# Each takes one pattern's arrays (no batch axis); vmap adds the batch.

def shift_positions(two_theta, zero_shift, jitter):
  """Zero shift (scalar) and per-peak x-axis white noise [p], degrees."""
  return two_theta + zero_shift + jitter


def displace(two_theta, displacement):
  """Sample displacement: 2θ + D cos θ (degrees). A flat sample s mm off the goniometer axis of a Bragg-Brentano
  instrument of radius R mm shifts every peak by -(2s/R) cos θ radians (Klug & Alexander 1974): D = -(360/π) s/R.
  Unlike the zero shift, it shrinks towards high angles."""
  return two_theta + displacement * jnp.cos(jnp.deg2rad(two_theta) / 2)


def reciprocal_vectors(hkl, cell):
  """Cartesian reciprocal-lattice vectors h a* + k b* + l c* (Å⁻¹, no 2π) of hkl [..., 3] in a cell [6] (a, b, c
  in Å; α, β, γ in degrees): a along x, b in the xy plane, and a* = (b × c) / V, b* = (c × a) / V,
  c* = (a × b) / V."""
  a, b, c = cell[0], cell[1], cell[2]
  cos_al, cos_be, cos_ga = (jnp.cos(jnp.deg2rad(cell[i])) for i in (3, 4, 5))
  sin_ga = jnp.sin(jnp.deg2rad(cell[5]))
  cy = (cos_al - cos_be * cos_ga) / sin_ga
  cz = jnp.sqrt(jnp.maximum(1 - cos_be ** 2 - cy ** 2, 0.0))
  zero = jnp.zeros_like(a)
  va = jnp.stack([a, zero, zero])
  vb = jnp.stack([b * cos_ga, b * sin_ga, zero])
  vc = jnp.stack([c * cos_be, c * cy, c * cz])
  volume = jnp.dot(va, jnp.cross(vb, vc))
  reciprocal = jnp.stack([jnp.cross(vb, vc), jnp.cross(vc, va), jnp.cross(va, vb)]) / volume
  return hkl @ reciprocal


def _same(x, y, rel=1e-4):
  return jnp.abs(x - y) <= rel * jnp.abs(y)


def strain_cell(cell, isotropic, free):
  """The cell [6] (a, b, c in Å; α, β, γ in degrees) under a strain that keeps its lattice's symmetry: every length
  scaled by 1 + `isotropic`, then the parameters the metric leaves free changed by the relative amounts `free` [6]
  (for a, b, c, α, β, γ):
  - lengths: a's change is the isotropic one alone; b and c get theirs unless equal to a length before them
    (tetragonal and hexagonal a = b, cubic a = b = c: then they follow it);
  - angles: one of 90° or 120° stays; the others get theirs unless equal to an angle before them (rhombohedral
    α = β = γ follow α).
  So a cubic cell only scales, a tetragonal or hexagonal one also changes c/a, an orthorhombic one b/a and c/a, a
  monoclinic one b/a, c/a and β, a triclinic one all five shape parameters."""
  a, b, c, al, be, ga = (cell[i] for i in range(6))
  db = jnp.where(_same(b, a), 0.0, free[1])
  dc = jnp.where(_same(c, a), 0.0, jnp.where(_same(c, b), db, free[2]))
  special = lambda x: _same(x, 90.0) | _same(x, 120.0)
  dal = free[3]
  dbe = jnp.where(_same(be, al), dal, free[4])
  dga = jnp.where(_same(ga, al), dal, jnp.where(_same(ga, be), dbe, free[5]))
  angle = lambda x, d: x * (1 + jnp.where(special(x), 0.0, d))
  scale = 1 + isotropic
  return jnp.stack([a * scale, b * scale * (1 + db), c * scale * (1 + dc), angle(al, dal), angle(be, dbe),
                    angle(ga, dga)])


def strain_positions(two_theta, intensity, hkl, cell, isotropic, free):
  """Peak positions (degrees) and intensities [p] of a strained crystal (`strain_cell`): each peak's d scaled by
  |q(hkl, cell)| / |q(hkl, strained cell)| (q the reciprocal vector of its hkl), 2θ from sin θ' = sin θ · d / d'.
  Peaks without an hkl (padding) keep their place; one whose new sin θ' reaches 1 leaves the pattern (intensity
  0). The ratio of d's does not need the wavelength."""
  strained = strain_cell(cell, isotropic, free)
  h = hkl.astype(jnp.float32)
  q0 = jnp.sum(reciprocal_vectors(h, cell) ** 2, -1)
  q1 = jnp.sum(reciprocal_vectors(h, strained) ** 2, -1)
  valid = (q0 > 0) & (q1 > 0) & jnp.isfinite(q0) & jnp.isfinite(q1)
  ratio = jnp.where(valid, jnp.sqrt(jnp.where(valid, q1 / jnp.where(valid, q0, 1.0), 1.0)), 1.0)  # d / d'
  sin = jnp.sin(jnp.deg2rad(two_theta) / 2) * ratio
  inside = sin < 1
  moved = 2 * jnp.rad2deg(jnp.arcsin(jnp.where(inside, sin, 0.0)))
  return jnp.where(valid & inside, moved, two_theta), jnp.where(inside, intensity, 0.0)


def march_dollase(hkl, cell, direction, r):
  """Preferred-orientation factor [p] of each peak (Dollase 1986, J. Appl. Cryst. 19, 267):
  (r² cos²α + sin²α / r)^(-3/2), α the angle between the peak's reciprocal vector (hkl [p, 3]) and the preferred
  direction (the reciprocal vector of a plane's hkl [3]), r the March-Dollase parameter (1: none; < 1 platelets
  on that plane; > 1 needles). Averaged over all directions the factor is 1. Padding (hkl 0) and cells without a
  volume get 1.

  One representative hkl per peak (the corpus keeps the strongest family's of each merged peak) stands for its
  family. The exact factor averages over the family's symmetry-equivalent hkl, up to 48, which the corpus would
  have to keep for every peak (and the kernel evaluate). The representative is close in low symmetry (families of
  2-4 members, ± pairs) and overstates or even inverts the factor in high symmetry (cubic {100} along [001]: two
  members parallel, four perpendicular). It is kept because the augmentation needs the hkl-correlated intensity
  changes that preferred orientation makes, not a refinement's correction of them.
  """
  q = reciprocal_vectors(hkl.astype(jnp.float32), cell)  # [p, 3]
  n = reciprocal_vectors(direction, cell)  # [3]
  qq, nn = jnp.sum(q * q, -1), jnp.sum(n * n)
  valid = (qq > 0) & (nn > 0) & jnp.isfinite(qq) & jnp.isfinite(nn)
  cos2 = jnp.where(valid, jnp.sum(q * n, -1) ** 2 / jnp.where(valid, qq * nn, 1.0), 1.0)
  factor = (r * r * cos2 + (1 - cos2) / r) ** -1.5
  return jnp.where(valid, factor, 1.0)


def crop_peaks(two_theta, intensity, low, high):
  """Removes (zeroes) the peaks below `low` or above `high` degrees."""
  return jnp.where((two_theta >= low) & (two_theta <= high), intensity, 0.0)


def scale_intensities(intensity, noise):
  """y <- y (1 + δ) per peak."""
  return intensity * (1.0 + noise)


def add_impurities(two_theta, intensity, impurity_two_theta, impurity_intensity):
  """Appends impurity peaks whose intensity is relative to the strongest peak."""
  top = jnp.max(intensity, initial=0.0)
  return (jnp.concatenate([two_theta, impurity_two_theta]),
          jnp.concatenate([intensity, impurity_intensity * top]))


def bin_positions(two_theta, grid):
  """Bin index (may fall outside [0, num_bins)) and bin-centre position of each peak."""
  w = grid_lib.bin_width(grid)
  # Multiply by 1/w rather than divide: XLA may turn the division into this anyway, and the reference must
  # put a peak that sits on a bin edge into the same bin.
  index = jnp.floor((two_theta - grid.two_theta_min) * jnp.float32(1 / w)).astype(jnp.int32)
  return index, grid_lib.bin_centre(grid, index)


def caglioti_fwhm(two_theta, U, V, W, p, profile=None):
  """FWHM (degrees) = sqrt(U tan²θ + V tanθ + W + p / cos²θ), clipped to the profile limits ([0.005, 0.05])."""
  lim = _limits(profile)
  theta = jnp.deg2rad(two_theta) / 2
  t = jnp.tan(theta)
  h2 = U * t * t + V * t + W + p / jnp.cos(theta) ** 2
  return jnp.clip(jnp.sqrt(jnp.maximum(h2, 0.0)), lim.fwhm_min, lim.fwhm_max)


def lab_fwhm(two_theta, U, V, W, size, strain, profile=None):
  """FWHM (degrees) of an instrument and a sample: the Caglioti instrument width and the sample's crystallite-size
  and microstrain broadening added in quadrature,

    FWHM² = U tan²θ + V tanθ + W + (K λ / (L cos θ))² + (4 ε tan θ)²   (the last two in radians -> degrees²),

  with L = `size` (nm), ε = `strain`, K = params.SCHERRER_K and λ the grid wavelength. Quadrature is exact for
  Gaussian components and an approximation for the Lorentzian part of a sample's profile (which the shape
  mixing η of Table 1 covers); clipped to the profile limits.
  """
  lim = _limits(profile)
  theta = jnp.deg2rad(two_theta) / 2
  t = jnp.tan(theta)
  size_broadening = jnp.rad2deg(params_lib.SCHERRER_K * grid_lib.WAVELENGTH / (10.0 * size * jnp.cos(theta)))
  strain_broadening = jnp.rad2deg(4.0 * strain * t)
  h2 = U * t * t + V * t + W + size_broadening ** 2 + strain_broadening ** 2
  return jnp.clip(jnp.sqrt(jnp.maximum(h2, 0.0)), lim.fwhm_min, lim.fwhm_max)


def side_widths(fwhm, asymmetry, profile=None):
  """Low- and high-angle half widths of the split profile."""
  lim = _limits(profile)
  clip = lambda h: jnp.clip(h, lim.fwhm_min, lim.fwhm_max)
  return clip(fwhm * (1 + asymmetry / 2)), clip(fwhm * (1 - asymmetry / 2))


def _half_cdf_gauss(x, h):
  """∫_0^x exp(-4 ln2 u²/h²) du (odd in x)."""
  return 0.5 * h * _GAUSS_AREA * jax.scipy.special.erf(2 * math.sqrt(_LN2) * x / h)


def _atan(x):
  """arctan to float32 accuracy (absolute error < 2e-7) in plain arithmetic: Cephes' atanf (reduction to
  |t| <= tan(π/8) and a degree-9 odd polynomial). XLA's CPU arctan is a scalar call per element, five times
  slower here, and the Lorentzian CDF evaluates one per bin edge of every peak."""
  a = jnp.abs(x)
  big = a > 2.414213562373095  # tan(3π/8)
  mid = a > 0.41421356237309503  # tan(π/8)
  t = jnp.where(big, -1 / jnp.where(big, a, 1), jnp.where(mid, (a - 1) / (a + 1), a))
  offset = jnp.where(big, math.pi / 2, jnp.where(mid, math.pi / 4, 0.0))
  z = t * t
  poly = (((8.05374449538e-2 * z - 1.38776856032e-1) * z + 1.99777106478e-1) * z - 3.33329491539e-1) * z * t + t
  return jnp.sign(x) * (offset + poly)


def _half_cdf_lorentz(x, h):
  """∫_0^x 1 / (1 + 4u²/h²) du (odd in x)."""
  return 0.5 * h * _atan(2 * x / h)


# Offsets up to this many bins from the peak's bin get the closed-form CDF (atan, erf); beyond it the Lorentzian
# bin masses come from the asymptotic series of atan, exact to float32 there (see _far_coefficients).
_NEAR_BINS = 16


def _far_coefficients(k: int, w: float, start: int = _NEAR_BINS) -> np.ndarray:
  """[4, k - start] constants c_n(o) such that the unit-height Lorentzian mass of the bin at offset o > start is
  sum_n h^(2n+2) c_n(o), from atan(z) = π/2 - 1/z + 1/(3z³) - 1/(5z⁵) + 1/(7z⁷) - ... with z = 2x/h.

  At o > 16 bins z > 6.6 (h <= 0.05°, bins of 0.01°), and the first omitted term is below 1e-7 of the mass; past
  the core of the lab windows (75 bins, h <= 0.3°) z > 5 and it is below 3e-6.
  """
  o = np.arange(start + 1, k + 1, dtype=np.float64)
  x1, x2 = (o - 0.5) * w, (o + 0.5) * w
  terms = [(1 / 4, 1), (-1 / 48, 3), (1 / 320, 5), (-1 / 1792, 7)]
  return np.stack([c * (x1**-n - x2**-n) for c, n in terms]).astype(np.float32)


def _mid_masses(h, x, eta, inv_area, w):
  """[p, m] masses of the bins centred at distances x [m] (degrees, beyond the near zone) from the peak: the
  midpoint rule with its curvature term, w·f + w³·f''/24, for the Gaussian and the Lorentzian parts. 16 bins or
  more from the centre of a peak of FWHM 0.005-0.3°, the first omitted term, w⁵·f⁗/1920, is below 1e-8 of the
  peak's area (1e-6 of the Lorentzian's mass there), and the rule needs neither erf nor atan."""
  q = (1.0 / (h * h))[:, None]
  u = 4 * x * x * q  # (2x/h)²
  lorentz = 1 / (1 + u)
  lorentz2 = 8 * q * (3 * u - 1) * lorentz ** 3  # d²/dx² of 1 / (1 + 4x²/h²)
  a = 4 * _LN2 * q
  gauss = jnp.exp(-a * x * x)
  gauss2 = (4 * a * a * x * x - 2 * a) * gauss
  c = w * w / 24
  return w * (eta * (lorentz + c * lorentz2) + (1 - eta) * (gauss + c * gauss2)) * inv_area


def profile_masses(h_left, h_right, eta, grid, profile=None):
  """Integral over each bin of the window of every peak's unit-area split pseudo-Voigt.

  Args:
    h_left, h_right: [p] half-profile FWHMs (degrees).
    eta: Lorentzian fraction (scalar).
    profile: the distribution's profile limits (None: Table 1's).
  Returns:
    A list of (offset, masses [p, m]): the masses of the bins at offsets offset..offset+m-1 from the peak's bin
    (the peak sits at its bin centre). Near zone |o| <= NEAR: the closed-form CDF at the bin edges; mid zone
    NEAR < |o| <= core (only where the Gaussian part reaches past NEAR, as in lab): `_mid_masses`; far zone
    core < |o| <= k: the Lorentzian tail by its asymptotic series. Pieces rather than one array because XLA on
    the CPU does not fuse a concatenation into the elementwise work.
  """
  w = grid_lib.bin_width(grid)
  k, core = window_bins(grid, profile)
  near = _NEAR_BINS
  inv_area = 1 / (0.5 * (h_left + h_right) * ((1 - eta) * _GAUSS_AREA + eta * _LORENTZ_AREA))[:, None]

  def near_cdf(edges):
    h = jnp.where(edges < 0, h_left[:, None], h_right[:, None])
    return eta * _half_cdf_lorentz(edges, h) + (1 - eta) * _half_cdf_gauss(edges, h)

  edges = (jnp.arange(-near, near + 2, dtype=h_left.dtype)[None, :] - 0.5) * w  # relative to the bin centre
  centre = (near_cdf(edges[:, 1:]) - near_cdf(edges[:, :-1])) * inv_area
  coef = _far_coefficients(k, w, core)

  def far(h, c):  # Horner in h²: h²(c1 + h²(c3 + h²(c5 + h² c7)))
    c1, c3, c5, c7 = (jnp.asarray(x)[None, :] for x in c)
    h2 = (h * h)[:, None]
    return eta * h2 * (c1 + h2 * (c3 + h2 * (c5 + h2 * c7))) * inv_area

  if core == near:
    return [(-k, far(h_left, coef[:, ::-1])), (-near, centre), (near + 1, far(h_right, coef))]
  x = jnp.arange(near + 1, core + 1, dtype=h_left.dtype) * w
  return [(-k, far(h_left, coef[:, ::-1])), (-core, _mid_masses(h_left, x[::-1], eta, inv_area, w)),
          (-near, centre), (near + 1, _mid_masses(h_right, x, eta, inv_area, w)),
          (core + 1, far(h_right, coef))]


def _add_windows(padded, first, rows):
  """padded[first_i + j] += rows[i, j]: a scatter whose updates are whole contiguous windows."""
  dnums = jax.lax.ScatterDimensionNumbers(update_window_dims=(1,), inserted_window_dims=(),
                                          scatter_dims_to_operand_dims=(0,))
  return jax.lax.scatter_add(padded, first[:, None], rows, dnums, mode='clip')


def render_profile(index, intensity, fwhm, eta, asymmetry, grid, profile=None):
  """Pattern [num_bins]: each peak's split pseudo-Voigt integrated over the bins of its window.

  Each window is added to the pattern as contiguous slices (scatters whose updates are whole windows).

  Args:
    index: [p] bin of each peak (binned positions: the peak sits at its bin centre).
    intensity: [p] integrated intensities (0 for padding).
    fwhm: [p] FWHM in degrees.
    eta: Lorentzian fraction (scalar).
    asymmetry: ρ in [-1, 1] (scalar).
    profile: the distribution's profile limits (None: Table 1's).
  """
  n = grid.num_bins
  k, _ = window_bins(grid, profile)
  h_left, h_right = side_widths(fwhm, asymmetry, profile)
  # Peaks whose window lies wholly outside the pattern contribute nothing; the padding takes partial windows.
  inside = (index > -(k + 1)) & (index < n + k)
  weight = jnp.where(inside, intensity, 0.0)[:, None]
  # Padded position q holds bin q - pad; a peak's own bin is at clip(index) + pad.
  pad = 2 * k + 1
  padded = jnp.zeros(n + 2 * pad, intensity.dtype)
  own_bin = jnp.clip(index, -k - 1, n + k) + pad
  for offset, masses in profile_masses(h_left, h_right, eta, grid, profile):
    padded = _add_windows(padded, own_bin + offset, weight * masses)
  return jax.lax.dynamic_slice_in_dim(padded, pad, n)


def add_background(pattern, white, dilation, amplitude, gauss, counting, max_dilation: int):
  """White noise of `amplitude` (relative to the strongest point) smoothed over `dilation` bins, plus
  intensity-dependent (counting) noise of relative size `counting`·sqrt(y).

  The smoothing is the mean of white[j : j + dilation] (shorter at the end), summed as `max_dilation` masked
  shifted copies: XLA's CPU cumulative sum over 12,000 bins costs three times as much.
  """
  top = jnp.max(pattern)
  n = white.shape[0]
  padded = jnp.concatenate([white, jnp.zeros(max_dilation, white.dtype)])
  box = sum(jnp.where(d < dilation, padded[d:d + n], 0.0) for d in range(max_dilation))
  smooth = box / jnp.minimum(dilation, n - jnp.arange(n))
  counting_noise = counting * jnp.sqrt(jnp.maximum(pattern, 0.0) * top) * gauss
  return pattern + amplitude * top * smooth + counting_noise


@functools.cache
def _kalpha2_map(num_bins: int, two_theta_min: float, two_theta_max: float):
  """For each bin j of the Kα2 pattern, the Kα1 bins a_j and a_j + 1 that its interval maps back to by Bragg's
  law (sin θ1 = (λ1 / λ2) sin θ2, same d), and the fractions f_a, f_b of a bin width of each that it covers.
  The mapped interval is shorter than a bin (dθ1/dθ2 < 1), so two bins always hold it."""
  grid = grid_lib.config(num_bins, two_theta_min, two_theta_max)
  w, edges = grid_lib.bin_width(grid), grid_lib.bin_edges(grid)
  mapped = 2 * np.rad2deg(np.arcsin(np.sin(np.deg2rad(edges) / 2) * params_lib.CU_KALPHA1 / params_lib.CU_KALPHA2))
  first = np.clip(np.floor((mapped[:-1] - two_theta_min) / w).astype(np.int64), 0, num_bins - 1)
  split = np.minimum(mapped[1:], edges[first + 1])
  f_a = (split - mapped[:-1]) / w
  f_b = (mapped[1:] - split) / w
  return first.astype(np.int32), f_a.astype(np.float32), f_b.astype(np.float32)


def add_kalpha2(pattern, ratio, grid):
  """Adds the Cu Kα2 line of every peak, `ratio` times as strong as its Kα1 line: the Kα1 pattern (the corpus
  positions are Kα1 positions) mapped to Kα2 by Bragg's law from the same d and re-binned,
  x2[j] = ratio · (f_a x[a_j] + f_b x[a_j + 1]) (`_kalpha2_map`).

  The re-binning keeps each line's integrated intensity and centroid, so the split 2θ2 - 2θ1 grows with angle
  (0.08° at 30°, 0.29° at 90°); the Kα2 line's width grows with the dispersion dθ2/dθ1, and the re-binning
  spreads it by at most a quarter of a bin² in variance (under 8% of the FWHM of the narrowest lab peaks, 0.025°).
  """
  a, f_a, f_b = _kalpha2_map(grid.num_bins, grid.two_theta_min, grid.two_theta_max)
  b = np.minimum(a + 1, grid.num_bins - 1)
  return pattern + ratio * (f_a * pattern[a] + f_b * pattern[b])


def measured_background(grid, level, chebyshev, hump_amplitude, hump_centre, hump_fwhm, low_amplitude, low_decay):
  """A measured pattern's background [num_bins], relative to the strongest peak:

    level · (1 + Σ_k c_k T_k(t))  +  A_h exp(-4 ln2 (2θ - c)² / f²)  +  A_l exp(-2θ / τ),

  a Chebyshev polynomial (T_k of the first kind, t the 2θ range mapped onto [-1, 1]; chebyshev = c_1..c_n,
  non-negative while Σ|c_k| <= 1), an amorphous hump of height A_h, centre c and FWHM f degrees, and a low-angle
  rise of height A_l at 0° decaying over τ degrees.
  """
  x = grid_lib.bin_centres(grid, jnp, jnp.float32)
  t = 2 * (x - grid.two_theta_min) / (grid.two_theta_max - grid.two_theta_min) - 1
  t_prev, t_k = jnp.ones_like(t), t
  poly = 1 + chebyshev[0] * t_k
  for k in range(1, chebyshev.shape[0]):
    t_prev, t_k = t_k, 2 * t * t_k - t_prev  # T_{k+1} = 2t T_k - T_{k-1}
    poly = poly + chebyshev[k] * t_k
  hump = hump_amplitude * jnp.exp(-4 * _LN2 * ((x - hump_centre) / hump_fwhm) ** 2)
  return level * poly + hump + low_amplitude * jnp.exp(-x / low_decay)


def crop_pattern(pattern, low, high, grid):
  """Zeroes the bins whose centre is below `low` or above `high` degrees (the paper's cropping and padding)."""
  centres = grid_lib.bin_centres(grid, jnp)
  return jnp.where((centres >= low) & (centres <= high), pattern, 0.0)


def normalise(pattern):
  """Scales the strongest point to 1 (an all-zero pattern stays zero)."""
  top = jnp.max(jnp.abs(pattern))
  return pattern / jnp.where(top > 0, top, 1.0)


# ------------------------------------------------------------------------------------------------ the chain

def render(two_theta, intensity, draws: Draws, cfg: ml_collections.ConfigDict, hkl=None, cell=None):
  """One pattern [num_bins] from one padded peak list ([p] each; padding has intensity 0) and its draws.

  hkl [p, 3] and cell [6], when given, let the lab distribution apply preferred orientation and lattice strain;
  without them (or with other distributions) they are not used.
  """
  g, prof, lab = cfg.grid, cfg.get('profile'), cfg.get('lab_effects', False)
  intensity = jnp.where(jnp.isfinite(intensity) & jnp.isfinite(two_theta), intensity, 0.0)
  two_theta = jnp.where(intensity > 0, two_theta, g.two_theta_min)
  if lab and hkl is not None and cell is not None:
    intensity = intensity * march_dollase(hkl, cell, draws['preferred_direction'], draws['march_dollase_r'])
    two_theta, intensity = strain_positions(two_theta, intensity, hkl, cell, draws['lattice_strain'],
                                            draws['lattice_strain_free'])
  tt = displace(two_theta, draws['displacement']) if lab else two_theta
  tt = shift_positions(tt, draws['zero_shift'], draws['jitter'])
  y = crop_peaks(tt, intensity, draws['peak_crop_low'], draws['peak_crop_high'])
  y = scale_intensities(y, draws['intensity_noise'])
  tt, y = add_impurities(tt, y, draws['impurity_two_theta'], draws['impurity_intensity'])
  index, centre = bin_positions(tt, g)
  if lab:
    fwhm = lab_fwhm(centre, draws['U'], draws['V'], draws['W'], draws['crystallite_size'], draws['microstrain'],
                    prof)
  else:
    fwhm = caglioti_fwhm(centre, draws['U'], draws['V'], draws['W'], draws['p'], prof)
  pattern = render_profile(index, y, fwhm, draws['eta'], draws['asymmetry'], g, prof)
  if lab:
    pattern = add_kalpha2(pattern, draws['kalpha2_ratio'], g)
  pattern = normalise(pattern)
  if lab:  # the counting noise below then scales with peaks + background
    pattern = pattern + measured_background(g, draws['background_level'], draws['background_chebyshev'],
                                            draws['hump_amplitude'], draws['hump_centre'], draws['hump_fwhm'],
                                            draws['low_angle_amplitude'], draws['low_angle_decay'])
  pattern = add_background(pattern, draws['white'], draws['dilation'], draws['background'], draws['gauss'],
                           draws['counting_noise'], int(cfg.dist.dilation[1]))
  pattern = crop_pattern(pattern, draws['crop_low'], draws['crop_high'], g)
  return normalise(pattern)


def render_chunk(cfg: ml_collections.ConfigDict, batch: int) -> int:
  """Patterns rendered together by one vmapped call, in a sequential loop over the batch. On a CPU, chunks of
  8 are fastest (a chunk's profile windows stay in cache; the whole batch at once is half as fast: see
  docs/benchmarks.md); on accelerators, the whole batch at once."""
  chunk = cfg.get('render_chunk')
  if chunk is None:
    chunk = 8 if jax.default_backend() == 'cpu' else batch
  return max(1, min(int(chunk), batch))


def render_batch(two_theta: jax.Array, intensity: jax.Array, draws: Draws, cfg: ml_collections.ConfigDict,
                 mesh: jax.sharding.Mesh | None = None, hkl: jax.Array | None = None,
                 cell: jax.Array | None = None) -> jax.Array:
  """Patterns [batch, num_bins] from padded peak arrays [batch, p] and their draws, `render_chunk` at a time.

  hkl [batch, p, 3] and cell [batch, 6] are optional (see `render`). With a `mesh` whose devices split the batch,
  each device renders its own share (shard_map): the sequential loop of the CPU path must not run over a sharded
  axis.
  """
  def local(t, y, d, h, c):
    one = lambda a: render(*a[:3], cfg, hkl=a[3], cell=a[4])
    chunk = render_chunk(cfg, t.shape[0])
    if chunk >= t.shape[0]:
      return jax.vmap(one)((t, y, d, h, c))
    return jax.lax.map(one, (t, y, d, h, c), batch_size=chunk)

  if mesh is not None and mesh.size > 1:
    spec = jax.sharding.PartitionSpec(mesh.axis_names)
    local = jax.shard_map(local, mesh=mesh, in_specs=spec, out_specs=spec)
  return local(two_theta, intensity, draws, hkl, cell)


def augment_batch(key: jax.Array, two_theta: jax.Array, intensity: jax.Array, cfg: ml_collections.ConfigDict,
                  mesh: jax.sharding.Mesh | None = None, hkl: jax.Array | None = None,
                  cell: jax.Array | None = None) -> jax.Array:
  """Patterns [batch, num_bins] from padded peak arrays [batch, p] (and, optionally, each peak's hkl
  [batch, p, 3] and the cells [batch, 6], for preferred orientation).

  The draws are made for the whole batch, so that a pattern does not depend on how many devices share it.
  """
  draws = sample_draws(key, cfg, two_theta.shape[0], two_theta.shape[1])
  return render_batch(two_theta, intensity, draws, cfg, mesh, hkl, cell)


def augment_examples(key: jax.Array, index: jax.Array, two_theta: jax.Array, intensity: jax.Array,
                     cfg: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None,
                     hkl: jax.Array | None = None, cell: jax.Array | None = None) -> jax.Array:
  """Like augment_batch, but each example's draws come from fold_in(key, its dataset index [batch]): an example
  looks the same whatever batch it is in and whatever the batch size (fixed evaluation sets, CNNstatic)."""
  keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(index)
  draws = jax.vmap(lambda k: sample_draws(k, cfg, 1, two_theta.shape[1]))(keys)
  return render_batch(two_theta, intensity, jax.tree.map(lambda d: d[:, 0], draws), cfg, mesh, hkl, cell)


def make_augment_fn(cfg: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None) -> Any:
  """jit-compiled augment_batch for one config (the config is static): fn(key, two_theta, intensity, hkl=None,
  cell=None)."""
  return jax.jit(lambda key, tt, y, hkl=None, cell=None: augment_batch(key, tt, y, cfg, mesh, hkl, cell))
