"""Parameter distributions of the augmentation (paper Table 1) as config code.

Four named distributions:
- `train`: the paper's Table 1;
- `invariance_test`: every random quantity drawn from a range that does not overlap the train range (the paper's
  invariance test set);
- `invariance_nuisance`: invariance_test's unseen ranges for every effect that adds nuisance (shifts, widths,
  shapes, noise, impurities, background), train's ranges for the effects that delete data (DELETING: the crops).
  invariance_test crops every pattern below 24-30° 2θ, where a median fifth of the intensity and most of the
  lowest-angle peaks lie; this set measures robustness to nuisance apart from robustness to missing data;
- `ideal`: no augmentation, a fixed narrow profile;
- `lab`: a laboratory diffractometer (Cu Kα, Bragg-Brentano): instrument Caglioti widths, crystallite-size and
  microstrain broadening, the Kα1/Kα2 doublet, sample displacement, preferred orientation, lattice strain,
  measured-looking backgrounds and counting noise, with the rest of Table 1 kept (ranges and sources below, and in the README).

Symmetric quantities (zero shift, asymmetry, ...) are given as ranges of their magnitude; the sign is drawn apart.
A bare number (not a range) is the probability that an effect is on in a draw.

The named distributions are defaults: a training config sets any quantity of its distribution in `config.augment`
(`--config.augment.U=1e-4,3e-4`, `--config.augment.kalpha2=0.8`; `override_fields`), `resolve` merges them
into the ranges the trainer renders and config.json records (`resolved_ranges`), and `override_problems` says
what is wrong with a value (DOMAINS: what each quantity takes).

How `lab` relates to `invariance_test`: wherever they share a random quantity, lab's range does not overlap
invariance_test's (as train's does not), so a model trained on `lab` is still tested on unseen ranges there
(`tests/test_augment_lab.py` checks it). What they do not share: lab's own effects (doublet, displacement,
preferred orientation, measured backgrounds, sample broadening) are absent from invariance_test, which therefore
tests invariance to Table 1's effects only. Disjoint parameters do not make every observable disjoint: lab's
widths (instrument 0.028-0.067° at 30°, more with the sample's broadening) and invariance_test's (0.025-0.05° at
every angle) overlap for the narrowest lab draws below about 60°.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Mapping

import ml_collections

from difcon_jax.crystallography import pattern_grid as grid_lib
from difcon_jax.crystallography import wavelength as wavelength_lib

DISTRIBUTIONS = ('train', 'invariance_test', 'invariance_nuisance', 'ideal', 'lab')
# The effects that delete data (peaks or parts of the pattern) rather than add nuisance: `invariance_nuisance`
# keeps train's ranges for them, so that it asks only whether a model is robust to unseen nuisance.
DELETING = ('peak_crop_low', 'peak_crop_high', 'crop_low', 'crop_high')
# Distributions rendered with the instrument and sample effects of kernel.render's lab branch.
LAB_DISTRIBUTIONS = ('lab',)

# The Cu Kα1 and Kα2 lines the lab distribution renders, Å. The corpus positions are taken as Kα1 positions; Kα2 is
# placed from the same d by Bragg's law (kernel.add_kalpha2).
CU_KALPHA1 = wavelength_lib.CU_KA1
CU_KALPHA2 = wavelength_lib.CU_KA2
# Impurity peak slots of every pattern: the most impurities a draw can add.
MAX_IMPURITIES = 10
# Scherrer constant for the FWHM of roughly equiaxed crystallites (Langford & Wilson 1978, J. Appl. Cryst. 11, 102).
SCHERRER_K = 0.9
# Chebyshev background terms T_1..T_n beside the constant.
CHEBYSHEV_TERMS = 4


def distribution(name: str) -> ml_collections.ConfigDict:
  """Ranges [lo, hi] of every random quantity; uniform unless said otherwise."""
  if name == 'train':
    d = dict(
        zero_shift=(0.0, 0.02),  # |δ2θ|, degrees
        jitter=(0.0, 0.005),  # a: per-peak δ ~ U(-a, a), degrees
        peak_crop_low=(0.0, 0.2), peak_crop_high=(100.0, 120.0),  # peaks outside are removed, degrees
        intensity_noise=(0.0, 0.005),  # δ: y <- y (1 + U(-δ, δ))
        impurities=(0, 6), impurity_intensity=(0.01, 0.05),  # count (integers), intensity / strongest peak
        # Caglioti FWHM² = U tan²θ + V tanθ + W + p / cos²θ (degrees²), Latin-hypercube sampled.
        U=(0.0, 2e-4), V=(-1e-4, 0.0), W=(2.5e-5, 6e-4), p=(0.0, 5e-5),
        eta=(0.0, 0.7), asymmetry=(0.0, 0.5),
        background=(0.0, 0.05), dilation=(1, 10), counting_noise=(0.0, 0.02),
        crop_low=(0.0, 24.0), crop_high=(100.0, 120.0),
    )
  elif name == 'invariance_test':
    d = dict(
        zero_shift=(0.02, 0.04), jitter=(0.005, 0.01),
        peak_crop_low=(0.2, 0.4), peak_crop_high=(90.0, 100.0),
        intensity_noise=(0.005, 0.02),
        impurities=(7, 10), impurity_intensity=(0.05, 0.08),
        U=(2e-4, 4e-4), V=(-2e-4, -1e-4), W=(6e-4, 1.2e-3), p=(5e-5, 1e-4),
        eta=(0.7, 1.0), asymmetry=(0.5, 1.0),
        background=(0.05, 0.08), dilation=(11, 20), counting_noise=(0.02, 0.04),
        crop_low=(24.0, 30.0), crop_high=(90.0, 100.0),
    )
  elif name == 'invariance_nuisance':
    train, test = distribution('train'), distribution('invariance_test')
    d = {k: train[k] if k in DELETING else test[k] for k in test}
  elif name == 'ideal':
    d = dict(
        zero_shift=(0.0, 0.0), jitter=(0.0, 0.0), peak_crop_low=(0.0, 0.0), peak_crop_high=(180.0, 180.0),
        intensity_noise=(0.0, 0.0), impurities=(0, 0), impurity_intensity=(0.0, 0.0),
        U=(0.0, 0.0), V=(0.0, 0.0), W=(4e-4, 4e-4), p=(0.0, 0.0),  # FWHM 0.02°
        eta=(0.5, 0.5), asymmetry=(0.0, 0.0),
        background=(0.0, 0.0), dilation=(1, 1), counting_noise=(0.0, 0.0),
        crop_low=(0.0, 0.0), crop_high=(180.0, 180.0),
    )
  elif name == 'lab':
    d = dict(
        # Table 1's effects, with train's ranges (position noise, cropping, impurities, shape mixing, asymmetry).
        zero_shift=(0.0, 0.02), jitter=(0.0, 0.005), peak_crop_low=(0.0, 0.2), peak_crop_high=(100.0, 120.0),
        intensity_noise=(0.0, 0.005), impurities=(0, 6), impurity_intensity=(0.01, 0.05),
        eta=(0.0, 0.7), asymmetry=(0.0, 0.5), dilation=(1, 10),
        crop_low=(0.0, 24.0), crop_high=(100.0, 120.0),
        # Instrument widths (Caglioti, Paoletti & Ricci 1958, Nucl. Instrum. 3, 223), FWHM² in degrees²,
        # Latin-hypercube sampled: FWHM 0.035-0.063° towards 0°, 0.028-0.067° at 30° and 0.06-0.17° at 120°,
        # the spread of line-profile standards (LaB6, NIST SRM 660) on laboratory Bragg-Brentano instruments
        # (Cheary, Coelho & Cline 2004, J. Res. NIST 109, 1). V ≥ -2e-3 keeps FWHM² > 0 at every angle.
        # The p / cos²θ term is replaced by the Scherrer term of kernel.lab_fwhm.
        U=(2e-3, 8e-3), V=(-2e-3, -2e-4), W=(1.2e-3, 4e-3), p=(0.0, 0.0),
        # Sample broadening, added to the instrument FWHM in quadrature (kernel.lab_fwhm): Scherrer
        # Kλ / (L cos θ) for crystallites of L nm (log-uniform; Scherrer 1918, Langford & Wilson 1978) and
        # microstrain 4ε tan θ (Stokes & Wilson 1944, Proc. Phys. Soc. 56, 174). With these sizes the strongest
        # peak of lab patterns of the bundled sample corpus is 0.056/0.090/0.170° wide (10th/50th/90th
        # percentile, Kα2 included), that of the measured RRUFF dev patterns 0.054/0.091/0.168° (README). FWHM is
        # clipped at 0.3°.
        crystallite_size=(45.0, 2000.0), microstrain=(0.0, 5e-4),
        # Cu Kα2 / Kα1 integrated intensity ratio, about 0.5 (the 2p1/2 : 2p3/2 occupancy; measured line
        # intensities: Hölzer et al. 1997, Phys. Rev. A 56, 4554); off in a fifth of the draws (instruments with a
        # Kα1 monochromator).
        kalpha2=0.8, kalpha2_ratio=(0.48, 0.52),
        # Sample displacement: 2θ + D cos θ, |D| in degrees; D = (360/π) s / R, so 0.1° is s ≈ 0.19 mm on a
        # goniometer of radius 217.5 mm (Klug & Alexander 1974, X-ray Diffraction Procedures, 2nd ed.).
        displacement=(0.0, 0.1),
        # March-Dollase preferred orientation (Dollase 1986, J. Appl. Cryst. 19, 267) along a random low-index
        # plane normal, in half the draws: |ln r| (r from 0.70, platelets, to 1.42, needles).
        preferred_orientation=0.5, march_dollase_log_r=(0.0, 0.35),
        # Lattice strain (kernel.strain_positions, where the corpus has hkl and cells): the cell of a sample is not
        # the cell of a database entry. DFT (PBE) cells are 1-2% larger than measured ones, and temperature,
        # composition and pressure move real cells by as much: every length scaled by 1 + ε, |ε| up to 2%, and
        # each parameter the lattice leaves free (c/a of a tetragonal cell, β of a monoclinic one, ...) by up to
        # 1% more, in the lattice's own symmetry.
        lattice_strain=(0.0, 0.02), lattice_strain_free=(0.0, 0.01),
        # Background (relative to the strongest peak), as fitted by Rietveld programs: a Chebyshev polynomial
        # level (1 + Σ c_k T_k) over the pattern, an amorphous hump (glass holder, amorphous content:
        # a Gaussian 4-15° wide at 15-35°) in 30% of the draws, and a low-angle rise (air scatter, beam
        # spill-over) A exp(-2θ / τ).
        background_level=(0.0, 0.1), background_chebyshev=(-0.25, 0.25),
        hump=0.3, hump_amplitude=(0.0, 0.1), hump_centre=(15.0, 35.0), hump_fwhm=(4.0, 15.0),
        low_angle_amplitude=(0.0, 0.5), low_angle_decay=(2.0, 8.0),
        # Counting noise σ = c sqrt(y) on peaks + background: c = 1 / sqrt(counts at the top), 2,500 to 110,000
        # counts; Table 1's smoothed white noise is kept, smaller.
        counting_noise=(0.003, 0.02), background=(0.0, 0.02),
    )
  else:
    raise ValueError(f'unknown augmentation distribution {name!r}: {", ".join(DISTRIBUTIONS)}')
  return ml_collections.ConfigDict({k: tuple(v) if isinstance(v, tuple) else v for k, v in d.items()})


# What each quantity takes when a config sets it: (kind, least, most). 'range': (lo, hi) numbers with
# least <= lo <= hi <= most; 'positive': the same with lo > 0 (log-uniform draws, divisors); 'integers': (lo, hi)
# integers; 'probability': one number from 0 to 1, the share of draws with the effect on.
_INF = math.inf
DOMAINS = {
    'zero_shift': ('range', 0.0, _INF), 'jitter': ('range', 0.0, _INF),
    'peak_crop_low': ('range', 0.0, 180.0), 'peak_crop_high': ('range', 0.0, 180.0),
    'intensity_noise': ('range', 0.0, 1.0),
    'impurities': ('integers', 0, MAX_IMPURITIES), 'impurity_intensity': ('range', 0.0, _INF),
    'U': ('range', 0.0, _INF), 'V': ('range', -_INF, _INF), 'W': ('range', 0.0, _INF), 'p': ('range', 0.0, _INF),
    'eta': ('range', 0.0, 1.0), 'asymmetry': ('range', 0.0, 1.0),
    'background': ('range', 0.0, _INF), 'dilation': ('integers', 1, _INF), 'counting_noise': ('range', 0.0, _INF),
    'crop_low': ('range', 0.0, 180.0), 'crop_high': ('range', 0.0, 180.0),
    'crystallite_size': ('positive', 0.0, _INF), 'microstrain': ('range', 0.0, _INF),
    'kalpha2': ('probability', 0.0, 1.0), 'kalpha2_ratio': ('range', 0.0, _INF),
    'displacement': ('range', 0.0, _INF),
    'preferred_orientation': ('probability', 0.0, 1.0), 'march_dollase_log_r': ('range', 0.0, _INF),
    'background_level': ('range', 0.0, _INF), 'background_chebyshev': ('range', -_INF, _INF),
    'hump': ('probability', 0.0, 1.0), 'hump_amplitude': ('range', 0.0, _INF),
    'hump_centre': ('range', 0.0, 180.0), 'hump_fwhm': ('positive', 0.0, _INF),
    'low_angle_amplitude': ('range', 0.0, _INF), 'low_angle_decay': ('positive', 0.0, _INF),
    'lattice_strain': ('range', 0.0, 0.5), 'lattice_strain_free': ('range', 0.0, 0.5),
}
# Quantities a distribution lists but does not render: lab's widths replace Caglioti's p / cos²θ term by the
# Scherrer term (kernel.lab_fwhm).
_NOT_RENDERED = {'lab': ('p',)}


def quantities(name: str) -> tuple[str, ...]:
  """The quantities distribution `name` draws and renders: those a config may set with it."""
  return tuple(k for k in distribution(name) if k not in _NOT_RENDERED.get(name, ()))


def override_fields() -> ml_collections.ConfigDict:
  """config.augment: one unset (None) field per quantity of DOMAINS, typed so that a command-line override parses
  (--config.augment.U=1e-4,3e-4 as a tuple, --config.augment.kalpha2=0.8 as a number)."""
  return ml_collections.ConfigDict({
      k: ml_collections.config_dict.placeholder(float if kind == 'probability' else tuple)
      for k, (kind, _, _) in DOMAINS.items()})


def _set(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
  """The overrides that are set (None: the distribution's own value)."""
  return {k: v for k, v in (overrides or {}).items() if v is not None}


def _number(v) -> bool:
  return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _allowed(key: str, value, name: str) -> str | None:
  """What `key` may be with distribution `name`, when `value` is not that; else None."""
  if key not in DOMAINS:
    return f'no such augmentation quantity; the quantities are {", ".join(DOMAINS)}'
  if key not in quantities(name):
    users = [n for n in DISTRIBUTIONS if key in quantities(n)]
    return f'augmentation={name!r} does not draw it (drawn by {", ".join(users)})'
  kind, least, most = DOMAINS[key]
  if kind == 'probability':
    return None if _number(value) and 0 <= value <= 1 else 'a probability from 0 to 1'
  integers = kind == 'integers'
  ok_item = (lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool)) if integers else _number
  if (isinstance(value, (tuple, list)) and len(value) == 2 and all(ok_item(v) for v in value)
      and least <= value[0] <= value[1] <= most and (kind != 'positive' or value[0] > 0)):
    return None
  low = '0 < lo' if kind == 'positive' else 'lo' if least == -_INF else f'{least:g} <= lo'
  high = '' if most == _INF else f' <= {most:g}'
  return f'a range (lo, hi) of {"integers" if integers else "numbers"}, {low} <= hi{high}'


def override_problems(name: str, overrides: Mapping[str, Any] | None) -> dict[str, str]:
  """{quantity: what it may be} for each override (config.augment's set fields) that distribution `name` cannot
  take: an unknown quantity, one `name` does not draw, a value of the wrong type, out of bounds or with lo > hi."""
  found = {k: _allowed(k, v, name) for k, v in _set(overrides).items()}
  return {k: why for k, why in found.items() if why}


def resolve(name: str, overrides: Mapping[str, Any] | None = None) -> ml_collections.ConfigDict:
  """Distribution `name` with the overrides (quantity -> range or probability; None: unset) merged in.

  Raises:
    ValueError: an override `name` cannot take (one 'quantity=value: what it may be' per problem).
  """
  d = distribution(name)
  overrides = _set(overrides)
  problems = override_problems(name, overrides)
  if problems:
    raise ValueError('; '.join(f'{k}={overrides[k]!r}: {why}' for k, why in problems.items()))
  for k, v in overrides.items():
    d[k] = tuple(v) if isinstance(v, (tuple, list)) else float(v)
  return d


def resolved_ranges(name: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """{quantity: range or probability} that distribution `name` with the overrides renders (config.json's
  record of what a model was trained on)."""
  d = resolve(name, overrides)
  return {k: d[k] for k in quantities(name)}


# Profile limits of Table 1 (train, invariance_test, ideal): FWHM clipped to [0.005, 0.05] degrees, each side of
# the split profile alike.
FWHM_MIN = 0.005
FWHM_MAX = 0.05
# Window half-width in FWHM_MAX: the Lorentzian mass beyond 32 FWHM of the centre is 1 - (2/π)·atan(64) < 1%.
LORENTZ_WINDOW_FWHM = 32.0
# The Gaussian part is negligible beyond 3 FWHM (7σ).
GAUSS_WINDOW_FWHM = 3.0


def profile_limits(name: str) -> ml_collections.ConfigDict:
  """FWHM clip (degrees) and the half-width of every peak's window, in FWHM_max, for a distribution.

  `lab` peaks reach 0.3° at high angle: its window is ±3° (10 FWHM_max), which leaves out η/(πK) of a
  Lorentzian's area, K the window in the peak's own FWHM: 1% at 0.1°, 3% at 0.3°. A ±32 FWHM window (9.6°) would
  keep more of the widest peaks' tails at three times the rendering cost; at those angles the tails lie under the
  background and counting noise (docs/benchmarks.md).
  """
  if name in LAB_DISTRIBUTIONS:
    return ml_collections.ConfigDict(dict(fwhm_min=FWHM_MIN, fwhm_max=0.3, lorentz_window_fwhm=10.0,
                                          gauss_window_fwhm=2.5))
  return ml_collections.ConfigDict(dict(fwhm_min=FWHM_MIN, fwhm_max=FWHM_MAX, lorentz_window_fwhm=LORENTZ_WINDOW_FWHM,
                                        gauss_window_fwhm=GAUSS_WINDOW_FWHM))


def config(distribution_name: str = 'train', num_bins: int = grid_lib.NUM_BINS,
           two_theta_max: float = grid_lib.TWO_THETA_MAX,
           max_impurities: int = MAX_IMPURITIES, render_chunk: int | None = None,
           overrides: Mapping[str, Any] | None = None) -> ml_collections.ConfigDict:
  """The kernel's config: the grid, the distribution (`resolve`: `overrides` merged in, e.g. a training config's
  config.augment), profile limits. render_chunk: patterns rendered together by one vmapped call (None: 8 on a CPU,
  the whole batch on accelerators; see kernel.render_chunk). Raises ValueError for a bad override."""
  c = ml_collections.ConfigDict(dict(grid=grid_lib.config(num_bins, grid_lib.TWO_THETA_MIN, two_theta_max),
                                     dist=resolve(distribution_name, overrides), max_impurities=max_impurities,
                                     profile=profile_limits(distribution_name),
                                     lab_effects=distribution_name in LAB_DISTRIBUTIONS))
  c.render_chunk = ml_collections.config_dict.placeholder(int)
  c.render_chunk = render_chunk
  return c
