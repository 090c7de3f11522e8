"""X-ray wavelengths and the change of 2θ from one wavelength to another through d (Bragg's law)."""

from __future__ import annotations

import numpy as np

# Cu Kα1 and Kα2 emission lines, Å: Bearden 1967 (Rev. Mod. Phys. 39, 78) gives 1.540562 and 1.544390, here to five
# decimals as tables usually give them (pymatgen's XRDCalculator; 1.5406 is Kα1 to four). Kα1 is the peak lists'
# default wavelength; the pair is the doublet the lab augmentation renders.
CU_KA1 = 1.54056
CU_KA2 = 1.54439
CU_KA = 1.5418  # the paper's training wavelength (ICSD's copper wavelength)
# Kα1/Kα2-weighted Kα wavelengths in Å.
ANODES = {
    'Cu': 1.5418,
    'Mo': 0.7107,
    'Co': 1.7903,
    'Fe': 1.9373,
    'Cr': 2.2909,
    'Ag': 0.5609,
}
# Kα1, Kα2 emission lines of each anode, Å (Bearden 1967, as tabulated in pymatgen's XRDCalculator): the doublets
# the indexing search strips (autoindex/lines.py).
KALPHA = {
    'Cu': (CU_KA1, CU_KA2),
    'Mo': (0.70930, 0.71359),
    'Co': (1.78896, 1.79285),
    'Fe': (1.93604, 1.93998),
    'Cr': (2.28970, 2.29361),
    'Ag': (0.559421, 0.563813),
}


def anode_wavelength(anode: str) -> float:
  """Kα wavelength (Å) of an X-ray tube anode, e.g. 'Cu', 'mo'."""
  key = anode.strip().capitalize()
  if key not in ANODES:
    raise ValueError(f'unknown anode {anode!r}; known: {", ".join(ANODES)}')
  return ANODES[key]


def two_theta_to_d(two_theta: np.ndarray, wavelength: float) -> np.ndarray:
  """d spacing (Å) of reflections at 2θ (degrees) for a wavelength (Å)."""
  return wavelength / (2.0 * np.sin(np.deg2rad(np.asarray(two_theta, dtype=np.float64)) / 2.0))


def d_to_two_theta(d: np.ndarray, wavelength: float) -> np.ndarray:
  """2θ (degrees) of d spacings (Å); NaN where λ / 2d > 1 (the reflection is out of reach)."""
  s = wavelength / (2.0 * np.asarray(d, dtype=np.float64))
  with np.errstate(invalid='ignore'):
    return np.where(s <= 1.0, 2.0 * np.rad2deg(np.arcsin(np.minimum(s, 1.0))), np.nan)


def convert_two_theta(two_theta: np.ndarray, from_wavelength: float, to_wavelength: float) -> np.ndarray:
  """2θ measured at from_wavelength -> 2θ at to_wavelength: 2θ = 2 arcsin[(λ/λ') sin(2θ'/2)].

  Values that have no counterpart (to_wavelength > from_wavelength and large 2θ') come back as NaN; that is the
  truncation the paper mentions for λ' < λ.
  """
  s = (to_wavelength / from_wavelength) * np.sin(np.deg2rad(np.asarray(two_theta, dtype=np.float64)) / 2.0)
  with np.errstate(invalid='ignore'):
    return np.where(np.abs(s) <= 1.0, 2.0 * np.rad2deg(np.arcsin(np.clip(s, -1.0, 1.0))), np.nan)
