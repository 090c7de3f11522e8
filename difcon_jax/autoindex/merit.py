"""Figures of merit of a trial cell: de Wolff's M_N and Smith & Snyder's F_N (pure functions of arrays).

Both compare the first N observed lines with the lines the cell calculates, in Q = 1/d² (Å⁻²):

  M_N = Q_N / (2 ε̄ N_calc)          (de Wolff 1968, J. Appl. Cryst. 1, 108; N = 20: M20)
  F_N = (1 / |Δ2θ|̄) · N / N_poss    (Smith & Snyder 1979, J. Appl. Cryst. 12, 60)

Q_N is the Q of the N-th observed line, ε̄ the mean |Q_obs − Q_calc| and |Δ2θ|̄ the mean |2θ_obs − 2θ_calc|
(degrees) over the indexed lines, N_calc = N_poss the number of distinct calculated Q values up to Q_N (lines of
the primitive cell of the metric's Laue class; coincident ones counted once). De Wolff's M20 >= 10 with at most two
unindexed lines is the classical sign of a substantially correct cell.

Arrays carry a leading candidate axis [K, ...], so many cells are scored at once.
"""

from __future__ import annotations

import numpy as np

DISTINCT_RTOL = 1e-7  # calculated Q values closer than this (relative) are one line (exact coincidences, 333/511)


def q_of_two_theta(two_theta, wavelength: float) -> np.ndarray:
  """Q = 1/d² = (2 sin θ / λ)², Å⁻², of 2θ in degrees at wavelength λ (Å)."""
  return (2.0 * np.sin(np.deg2rad(np.asarray(two_theta, np.float64)) / 2.0) / wavelength) ** 2


def two_theta_of_q(q, wavelength: float) -> np.ndarray:
  """2θ (degrees) of Q = 1/d² (Å⁻²) at wavelength λ; NaN where out of reach."""
  s = np.sqrt(np.maximum(np.asarray(q, np.float64), 0.0)) * wavelength / 2.0
  with np.errstate(invalid='ignore'):
    return np.where(s <= 1.0, 2.0 * np.rad2deg(np.arcsin(np.minimum(s, 1.0))), np.nan)


def dq_dtwo_theta(two_theta, wavelength: float) -> np.ndarray:
  """dQ/d(2θ) in Å⁻² per degree: Q = 4 sin²θ / λ² gives 2 sin 2θ / λ² · π/180."""
  return 2.0 * np.sin(np.deg2rad(np.asarray(two_theta, np.float64))) / wavelength**2 * np.pi / 180.0


def count_distinct(q_sorted: np.ndarray, q_max: np.ndarray) -> np.ndarray:
  """[K] number of distinct values <= q_max [K] in each row of q_sorted [K, M] (ascending; inf for no line)."""
  q_sorted = np.asarray(q_sorted, np.float64)
  inside = q_sorted <= np.asarray(q_max, np.float64)[:, None] * (1 + DISTINCT_RTOL)
  prev = np.concatenate([np.full((len(q_sorted), 1), -np.inf), q_sorted[:, :-1]], axis=1)
  new = (q_sorted - prev) > DISTINCT_RTOL * np.abs(q_sorted)
  return (inside & new).sum(axis=1)


def de_wolff(q_obs: np.ndarray, q_err: np.ndarray, indexed: np.ndarray, n_calc: np.ndarray,
             min_eps=0.0) -> np.ndarray:
  """M_N [K] of the first N lines.

  q_obs [K, N]: observed Q (ascending; the last is Q_N); q_err [K, N]: Q_obs − Q_calc of each line's nearest
  calculated line; indexed [K, N] bool; n_calc [K]: distinct calculated lines up to Q_N; min_eps (scalar or [K]):
  ε̄ is taken as at least this (positions known to a finite precision; exact ones would give M_N = ∞).
  Cells that index no line get 0.
  """
  indexed = np.asarray(indexed, bool)
  count = indexed.sum(axis=1)
  eps = np.where(indexed, np.abs(q_err), 0.0).sum(axis=1) / np.maximum(count, 1)
  m = q_obs[:, -1] / (2.0 * np.maximum(np.maximum(eps, min_eps), 1e-300) * np.maximum(n_calc, 1))
  return np.where(count > 0, m, 0.0)


def smith_snyder(two_theta_err: np.ndarray, indexed: np.ndarray, n_possible: np.ndarray,
                 min_error: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
  """(F_N [K], |Δ2θ|̄ [K] degrees) of the first N lines: two_theta_err [K, N] degrees, indexed [K, N],
  n_possible [K] distinct calculated lines up to the N-th observed line; |Δ2θ|̄ is taken as at least min_error."""
  indexed = np.asarray(indexed, bool)
  n = indexed.shape[1]
  count = indexed.sum(axis=1)
  mean = np.where(indexed, np.abs(two_theta_err), 0.0).sum(axis=1) / np.maximum(count, 1)
  f = n / (np.maximum(np.maximum(mean, min_error), 1e-300) * np.maximum(n_possible, 1))
  return np.where(count > 0, f, 0.0), mean
