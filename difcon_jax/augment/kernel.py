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
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from difcon_jax.augment import params as params_lib

Draws = dict[str, jax.Array]

_LN2 = math.log(2.0)
_GAUSS_AREA = math.sqrt(math.pi / (4 * _LN2))  # ∫ exp(-4 ln2 u²) du, FWHM 1
_LORENTZ_AREA = math.pi / 2  # ∫ 1 / (1 + 4u²) du, FWHM 1


def bin_width(grid: ml_collections.ConfigDict) -> float:
  return (grid.two_theta_max - grid.two_theta_min) / grid.num_bins


def window_bins(grid: ml_collections.ConfigDict) -> tuple[int, int]:
  """Half-widths (bins) of the Lorentzian and Gaussian windows."""
  w = bin_width(grid)
  k_l = int(math.ceil(params_lib.LORENTZ_WINDOW_FWHM * params_lib.FWHM_MAX / w))
  k_g = int(math.ceil(params_lib.GAUSS_WINDOW_FWHM * params_lib.FWHM_MAX / w))
  if k_g > _NEAR_BINS:
    raise ValueError(f'bins of {w}° are too fine for the near window of {_NEAR_BINS} bins')
  return k_l, k_g


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
  w = bin_width(grid)
  # Multiply by 1/w rather than divide: XLA may turn the division into this anyway, and the reference must
  # put a peak that sits on a bin edge into the same bin.
  index = jnp.floor((two_theta - grid.two_theta_min) * jnp.float32(1 / w)).astype(jnp.int32)
  return index, grid.two_theta_min + (index + 0.5) * w


def caglioti_fwhm(two_theta, U, V, W, p):
  """FWHM (degrees) = sqrt(U tan²θ + V tanθ + W + p / cos²θ), clipped to [0.005, 0.05]."""
  theta = jnp.deg2rad(two_theta) / 2
  t = jnp.tan(theta)
  h2 = U * t * t + V * t + W + p / jnp.cos(theta) ** 2
  return jnp.clip(jnp.sqrt(jnp.maximum(h2, 0.0)), params_lib.FWHM_MIN, params_lib.FWHM_MAX)


def side_widths(fwhm, asymmetry):
  """Low- and high-angle half widths of the split profile."""
  clip = lambda h: jnp.clip(h, params_lib.FWHM_MIN, params_lib.FWHM_MAX)
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


def _far_coefficients(k: int, w: float) -> np.ndarray:
  """[4, k - NEAR] constants c_n(o) such that the unit-height Lorentzian mass of the bin at offset o > NEAR is
  sum_n h^(2n+2) c_n(o), from atan(z) = π/2 - 1/z + 1/(3z³) - 1/(5z⁵) + 1/(7z⁷) - ... with z = 2x/h.

  At o > 16 bins z > 6.6 (h <= 0.05°, bins of 0.01°), and the first omitted term is below 1e-7 of the mass.
  """
  o = np.arange(_NEAR_BINS + 1, k + 1, dtype=np.float64)
  x1, x2 = (o - 0.5) * w, (o + 0.5) * w
  terms = [(1 / 4, 1), (-1 / 48, 3), (1 / 320, 5), (-1 / 1792, 7)]
  return np.stack([c * (x1**-n - x2**-n) for c, n in terms]).astype(np.float32)


def profile_masses(h_left, h_right, eta, grid):
  """Integral over each bin of the window of every peak's unit-area split pseudo-Voigt.

  Args:
    h_left, h_right: [p] half-profile FWHMs (degrees).
    eta: Lorentzian fraction (scalar).
  Returns:
    (left, centre, right): [p, k - NEAR], [p, 2 NEAR + 1], [p, k - NEAR] masses of the bins at offsets
    -k..-NEAR-1, -NEAR..NEAR and NEAR+1..k from the peak's bin (the peak sits at its bin centre). Three pieces
    rather than one array because XLA on the CPU does not fuse a concatenation into the elementwise work.
  """
  w = bin_width(grid)
  k, _ = window_bins(grid)
  near = _NEAR_BINS
  inv_area = 1 / (0.5 * (h_left + h_right) * ((1 - eta) * _GAUSS_AREA + eta * _LORENTZ_AREA))[:, None]

  def near_cdf(edges):
    h = jnp.where(edges < 0, h_left[:, None], h_right[:, None])
    return eta * _half_cdf_lorentz(edges, h) + (1 - eta) * _half_cdf_gauss(edges, h)

  edges = (jnp.arange(-near, near + 2, dtype=h_left.dtype)[None, :] - 0.5) * w  # relative to the bin centre
  centre = (near_cdf(edges[:, 1:]) - near_cdf(edges[:, :-1])) * inv_area
  coef = _far_coefficients(k, w)

  def far(h, c):  # Horner in h²: h²(c1 + h²(c3 + h²(c5 + h² c7)))
    c1, c3, c5, c7 = (jnp.asarray(x)[None, :] for x in c)
    h2 = (h * h)[:, None]
    return eta * h2 * (c1 + h2 * (c3 + h2 * (c5 + h2 * c7))) * inv_area

  return far(h_left, coef[:, ::-1]), centre, far(h_right, coef)


def _add_windows(padded, first, rows):
  """padded[first_i + j] += rows[i, j]: a scatter whose updates are whole contiguous windows."""
  dnums = jax.lax.ScatterDimensionNumbers(update_window_dims=(1,), inserted_window_dims=(),
                                          scatter_dims_to_operand_dims=(0,))
  return jax.lax.scatter_add(padded, first[:, None], rows, dnums, mode='clip')


def render_profile(index, intensity, fwhm, eta, asymmetry, grid):
  """Pattern [num_bins]: each peak's split pseudo-Voigt integrated over the bins of its window.

  Each window is added to the pattern as contiguous slices (scatters whose updates are whole windows).

  Args:
    index: [p] bin of each peak (binned positions: the peak sits at its bin centre).
    intensity: [p] integrated intensities (0 for padding).
    fwhm: [p] FWHM in degrees.
    eta: Lorentzian fraction (scalar).
    asymmetry: ρ in [-1, 1] (scalar).
  """
  n = grid.num_bins
  k, _ = window_bins(grid)
  near = _NEAR_BINS
  h_left, h_right = side_widths(fwhm, asymmetry)
  # Peaks whose window lies wholly outside the pattern contribute nothing; the padding takes partial windows.
  inside = (index > -(k + 1)) & (index < n + k)
  weight = jnp.where(inside, intensity, 0.0)[:, None]
  left, centre, right = profile_masses(h_left, h_right, eta, grid)
  # Padded position q holds bin q - pad; a peak's window starts at bin index - k.
  pad = 2 * k + 1
  padded = jnp.zeros(n + 2 * pad, intensity.dtype)
  first = jnp.clip(index, -k - 1, n + k) + pad - k
  padded = _add_windows(padded, first, weight * left)
  padded = _add_windows(padded, first + (k - near), weight * centre)
  padded = _add_windows(padded, first + (k + near + 1), weight * right)
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


def crop_pattern(pattern, low, high, grid):
  """Zeroes the bins whose centre is below `low` or above `high` degrees (the paper's cropping and padding)."""
  centres = grid.two_theta_min + (jnp.arange(grid.num_bins) + 0.5) * bin_width(grid)
  return jnp.where((centres >= low) & (centres <= high), pattern, 0.0)


def normalise(pattern):
  """Scales the strongest point to 1 (an all-zero pattern stays zero)."""
  top = jnp.max(jnp.abs(pattern))
  return pattern / jnp.where(top > 0, top, 1.0)


# ------------------------------------------------------------------------------------------------ the chain

def render(two_theta, intensity, draws: Draws, cfg: ml_collections.ConfigDict):
  """One pattern [num_bins] from one padded peak list ([p] each; padding has intensity 0) and its draws."""
  g = cfg.grid
  intensity = jnp.where(jnp.isfinite(intensity) & jnp.isfinite(two_theta), intensity, 0.0)
  two_theta = jnp.where(intensity > 0, two_theta, g.two_theta_min)
  tt = shift_positions(two_theta, draws['zero_shift'], draws['jitter'])
  y = crop_peaks(tt, intensity, draws['peak_crop_low'], draws['peak_crop_high'])
  y = scale_intensities(y, draws['intensity_noise'])
  tt, y = add_impurities(tt, y, draws['impurity_two_theta'], draws['impurity_intensity'])
  index, centre = bin_positions(tt, g)
  fwhm = caglioti_fwhm(centre, draws['U'], draws['V'], draws['W'], draws['p'])
  pattern = render_profile(index, y, fwhm, draws['eta'], draws['asymmetry'], g)
  pattern = normalise(pattern)
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
                 mesh: jax.sharding.Mesh | None = None) -> jax.Array:
  """Patterns [batch, num_bins] from padded peak arrays [batch, p] and their draws, `render_chunk` at a time.

  With a `mesh` whose devices split the batch, each device renders its own share (shard_map): the sequential
  loop of the CPU path must not run over a sharded axis.
  """
  def local(t, y, d):
    one = lambda a: render(a[0], a[1], a[2], cfg)
    chunk = render_chunk(cfg, t.shape[0])
    if chunk >= t.shape[0]:
      return jax.vmap(one)((t, y, d))
    return jax.lax.map(one, (t, y, d), batch_size=chunk)

  if mesh is not None and mesh.size > 1:
    spec = jax.sharding.PartitionSpec(mesh.axis_names)
    local = jax.shard_map(local, mesh=mesh, in_specs=spec, out_specs=spec)
  return local(two_theta, intensity, draws)


def augment_batch(key: jax.Array, two_theta: jax.Array, intensity: jax.Array, cfg: ml_collections.ConfigDict,
                  mesh: jax.sharding.Mesh | None = None) -> jax.Array:
  """Patterns [batch, num_bins] from padded peak arrays [batch, p].

  The draws are made for the whole batch, so that a pattern does not depend on how many devices share it.
  """
  draws = sample_draws(key, cfg, two_theta.shape[0], two_theta.shape[1])
  return render_batch(two_theta, intensity, draws, cfg, mesh)


def make_augment_fn(cfg: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None) -> Any:
  """jit-compiled augment_batch for one config (the config is static)."""
  return jax.jit(lambda key, tt, y: augment_batch(key, tt, y, cfg, mesh))
