"""Observed lines for indexing: peaks picked from a pattern on the model grid, or taken from a Bragg peak list.

Picking (`pick`): the pattern (background already removed, strongest point 1, as `io.measured.to_grid` returns it) is
smoothed with a Savitzky-Golay filter, scipy.signal.find_peaks keeps the maxima that stand clear of the local
background (a running median over a degree) by `noise_factor` robust standard deviations of the noise, and at
least `min_height` of the strongest, and each position is refined between bins by the parabola through the three
points around the maximum.

Kα2 (`strip_kalpha2`): a laboratory tube's Kα2 line sits at Q·(λ2/λ1)² for every Kα1 line at Q (same d), about
half as strong, and is resolved from Kα1 above some 2θ. A line found there, 0.25-0.85 times as strong as the line
below it, is taken for that line's Kα2 and removed, and the Kα1 line's position is moved to the weighted Kα
wavelength the pattern is read at (the unresolved lines at low angle already sit there). Doublets are known for
the anodes of wavelength.ANODES (wavelength.KALPHA); a wavelength that is no anode's weighted Kα (a monochromated
Kα1 beam, synchrotron light) gets no stripping.
"""

from __future__ import annotations

import numpy as np

from difcon_jax.crystallography import wavelength as wavelength_lib
from difcon_jax.autoindex import merit

KALPHA2_HEIGHT = (0.25, 0.85)  # Kα2 / Kα1 peak height accepted as a doublet (about 0.5; more on Kα1's flank)
MIN_HEIGHT = 0.01  # share of the strongest peak
NOISE_FACTOR = 6.0  # peaks lower than this many noise standard deviations are not picked
NOISE_WINDOW = 101  # bins (about 1°) of the running medians of the background and the noise
SMOOTH_BINS = 5  # Savitzky-Golay window (bins of 0.01°)
MERGE = 0.02  # degrees: peak-list lines closer than this are one observed line


def doublet(wavelength: float | None, rtol: float = 3e-4) -> tuple[float, float] | None:
  """(Kα1, Kα2) of the anode whose weighted Kα is `wavelength` (Å, within rtol), None for any other wavelength
  (Cu Kα1 alone, 1.5406 Å, is 8e-4 from Cu's weighted 1.5418 Å)."""
  if wavelength is None:
    return None
  for anode, weighted in wavelength_lib.ANODES.items():
    if abs(wavelength - weighted) <= rtol * weighted:
      return wavelength_lib.KALPHA[anode]
  return None


def local_background(pattern: np.ndarray, window: int = NOISE_WINDOW) -> tuple[np.ndarray, float]:
  """(baseline [bins], noise) of a pattern: its running median over `window` bins (wider than any peak), and
  1.4826 × the median absolute deviation from it over the measured (non-zero) bins, a robust standard deviation
  (one number: a running one would count the peaks of crowded regions as noise)."""
  from scipy.ndimage import median_filter  # pylint: disable=g-import-not-at-top
  y = np.asarray(pattern, np.float64)
  base = median_filter(y, window, mode='nearest')
  live = y != 0
  noise = 1.4826 * float(np.median(np.abs(y - base)[live])) if live.sum() >= 10 else 0.0
  return base, noise


def pick(pattern: np.ndarray, two_theta: np.ndarray, min_height: float = MIN_HEIGHT, noise_factor: float = NOISE_FACTOR,
         smooth_bins: int = SMOOTH_BINS) -> tuple[np.ndarray, np.ndarray]:
  """Peaks of a pattern [bins] sampled at two_theta [bins] (degrees, evenly spaced): (positions [n] degrees,
  heights [n] relative to the strongest), ascending in 2θ.

  A peak is a maximum of the smoothed pattern that stands above the local background (`local_background`) by at
  least max(min_height, noise_factor × the local noise), and is half that prominent (a noise wiggle on a strong
  peak's flank is not one).
  """
  from scipy.signal import find_peaks, savgol_filter  # pylint: disable=g-import-not-at-top
  y = np.asarray(pattern, np.float64)
  if smooth_bins >= 3:
    y = savgol_filter(y, smooth_bins | 1, 2, mode='nearest')
  top = y.max()
  if not top > 0:
    return np.zeros(0), np.zeros(0)
  y = y / top
  base, noise = local_background(y)
  idx, props = find_peaks(y, prominence=min_height / 2)
  threshold = max(min_height, noise_factor * noise)
  keep = (y[idx] - base[idx] >= threshold) & (props['prominences'] >= threshold / 2)
  idx = idx[keep & (idx > 0) & (idx < len(y) - 1)]
  if len(idx) == 0:
    return np.zeros(0), np.zeros(0)
  left, mid, right = y[idx - 1], y[idx], y[idx + 1]
  curvature = left - 2 * mid + right
  shift = np.where(curvature < 0, 0.5 * (left - right) / np.where(curvature < 0, curvature, -1.0), 0.0)
  step = (two_theta[-1] - two_theta[0]) / (len(two_theta) - 1)
  return two_theta[idx] + np.clip(shift, -0.5, 0.5) * step, mid


def strip_kalpha2(two_theta: np.ndarray, height: np.ndarray, wavelength: float,
                  lines: tuple[float, float] | None, tolerance: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
  """Lines (degrees at `wavelength`, ascending; heights [n]) without the Kα2 partners of resolved doublets, the
  Kα1 lines moved to `wavelength`. lines: (Kα1, Kα2) Å, or None (returned unchanged). tolerance: degrees."""
  two_theta, height = np.asarray(two_theta, np.float64), np.asarray(height, np.float64)
  if lines is None or len(two_theta) < 2:
    return two_theta, height
  k1, k2 = lines
  expected = merit.two_theta_of_q(merit.q_of_two_theta(two_theta, wavelength) * (k2 / k1) ** 2, wavelength)
  # partner[i, j]: line j sits where line i's Kα2 would, with a Kα2-like height.
  ratio = height[None, :] / np.maximum(height[:, None], 1e-12)
  partner = ((np.abs(two_theta[None, :] - expected[:, None]) <= tolerance)
             & (ratio >= KALPHA2_HEIGHT[0]) & (ratio <= KALPHA2_HEIGHT[1]))
  is_kalpha2 = partner.any(0)
  resolved = partner.any(1) & ~is_kalpha2
  q = merit.q_of_two_theta(two_theta, wavelength)
  q = np.where(resolved, q * (wavelength / k1) ** 2, q)  # 1/d² of a Kα1 line read at `wavelength`
  moved = merit.two_theta_of_q(q, wavelength)
  keep = ~is_kalpha2
  return moved[keep], height[keep]


def from_peak_list(two_theta: np.ndarray, intensity: np.ndarray, min_intensity: float = 0.01,
                   merge: float = MERGE) -> tuple[np.ndarray, np.ndarray]:
  """Observed lines of an exact peak list (padding: intensity 0): lines at least min_intensity of the strongest,
  those closer than `merge` degrees taken as one at their intensity-weighted position. Returns (positions [n],
  relative intensities [n]), ascending."""
  tt, y = np.asarray(two_theta, np.float64), np.asarray(intensity, np.float64)
  real = (y > 0) & np.isfinite(tt) & (tt > 0)
  tt, y = tt[real], y[real]
  if len(tt) == 0:
    return np.zeros(0), np.zeros(0)
  order = np.argsort(tt, kind='stable')
  tt, y = tt[order], y[order]
  group = np.cumsum(np.r_[True, np.diff(tt) > merge]) - 1
  total = np.bincount(group, weights=y)
  position = np.bincount(group, weights=y * tt) / total
  keep = total >= min_intensity * total.max()
  return position[keep], total[keep] / total.max()
