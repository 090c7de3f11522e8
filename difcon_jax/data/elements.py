"""The element population of the synthetic crystals: which elements, how often, and how close they may come.

Weights follow the ranking of element occurrence in inorganic structure databases (oxygen in about half of all
entries; then the alkali and alkaline-earth metals, Si, Al, P, the 3d metals, S, F, Cl, N, the lanthanides). They
are rounded, hand-set numbers to give a plausible population, not a fit to any one database.

Radii (Å) are Shannon's effective ionic radii (Acta Cryst. A32, 751, 1976) for a common oxidation state and
six-fold coordination; for the anions the usual six-fold values (O²⁻ 1.40, F⁻ 1.33, S²⁻ 1.84, Cl⁻ 1.81, ...).
Metal-metal contacts in anion-free compounds use gemmi's covalent radii.
"""

from __future__ import annotations

import functools

import gemmi
import numpy as np

# element: (weight, ionic radius Å)
ANIONS = {
    'O': (60.0, 1.40), 'S': (8.0, 1.84), 'F': (7.0, 1.33), 'Cl': (6.0, 1.81), 'N': (4.0, 1.46),
    'Se': (4.0, 1.98), 'Br': (2.5, 1.96), 'I': (2.5, 2.20), 'Te': (2.0, 2.21), 'P': (1.5, 1.90),
    'As': (1.0, 2.00), 'C': (1.0, 1.60),
}
CATIONS = {
    'Na': (6.0, 1.02), 'K': (5.0, 1.38), 'Li': (4.0, 0.76), 'Rb': (1.5, 1.52), 'Cs': (2.0, 1.67),
    'Be': (0.5, 0.45), 'Mg': (4.0, 0.72), 'Ca': (5.0, 1.00), 'Sr': (3.0, 1.18), 'Ba': (4.0, 1.35),
    'B': (3.0, 0.27), 'Al': (4.0, 0.535), 'Ga': (1.5, 0.62), 'In': (1.5, 0.80), 'Tl': (1.0, 1.50),
    'Si': (5.0, 0.40), 'Ge': (1.5, 0.53), 'Sn': (2.0, 0.69), 'Pb': (2.0, 1.19),
    'P': (4.0, 0.38), 'As': (1.0, 0.46), 'Sb': (2.0, 0.76), 'Bi': (2.0, 1.03),
    'Sc': (1.0, 0.745), 'Y': (2.0, 0.90), 'La': (3.0, 1.032), 'Ce': (1.5, 1.01), 'Pr': (1.0, 0.99),
    'Nd': (1.5, 0.983), 'Sm': (1.0, 0.958), 'Eu': (1.0, 0.947), 'Gd': (1.0, 0.938), 'Dy': (0.7, 0.912),
    'Er': (0.7, 0.89), 'Yb': (0.7, 0.868),
    'Ti': (3.0, 0.605), 'Zr': (2.0, 0.72), 'Hf': (0.5, 0.71), 'V': (3.0, 0.54), 'Nb': (2.0, 0.64),
    'Ta': (1.0, 0.64), 'Cr': (2.5, 0.615), 'Mo': (3.0, 0.59), 'W': (2.5, 0.60), 'Mn': (4.0, 0.83),
    'Re': (0.5, 0.53), 'Fe': (5.0, 0.645), 'Ru': (0.5, 0.62), 'Os': (0.2, 0.63), 'Co': (3.0, 0.745),
    'Rh': (0.5, 0.665), 'Ir': (0.4, 0.625), 'Ni': (3.0, 0.69), 'Pd': (0.8, 0.86), 'Pt': (0.8, 0.80),
    'Cu': (5.0, 0.73), 'Ag': (2.0, 1.15), 'Au': (0.7, 0.85), 'Zn': (3.0, 0.74), 'Cd': (1.5, 0.95),
    'Hg': (1.2, 1.02), 'U': (1.5, 0.89), 'Th': (0.5, 0.94),
}

# Minimum contact distances as multiples of radius sums (see `required_distances`).
CATION_ANION = 0.85  # × (r_cation + r_anion): Si-O 1.62 Å (real 1.61), Na-Cl 2.54 (real 2.82)
ANION_ANION = 0.8  # × 2 r_anion: O-O 2.38 Å (shortest in silicates about 2.5-2.6)
CATION_CATION_GAP = 1.0  # r + r' + this: two cations bridged by an anion (Si-Si 2.4 Å, real 3.06)
METAL_METAL = 0.85  # × (covalent r + r') in anion-free compounds: Fe-Fe 2.24 Å (real 2.48)


@functools.cache
def _tables(role: str) -> tuple[tuple[str, ...], np.ndarray]:
  table = ANIONS if role == 'anion' else CATIONS
  names = tuple(table)
  w = np.array([table[n][0] for n in names])
  return names, w / w.sum()


def draw(rng: np.random.Generator, role: str, count: int, exclude: tuple[str, ...] = ()) -> list[str]:
  """count distinct elements of a role ('anion' or 'cation') by weight, none of `exclude`."""
  names, p = _tables(role)
  p = np.where(np.isin(names, exclude), 0.0, p)
  return [names[i] for i in rng.choice(len(names), size=count, replace=False, p=p / p.sum())]


@functools.cache
def atomic_number(element: str) -> int:
  return gemmi.Element(element).atomic_number


@functools.cache
def covalent_radius(element: str) -> float:
  return float(gemmi.Element(element).covalent_r)


def radius(element: str, role: str) -> float:
  """Ionic radius for anions and cations, covalent radius for metals in anion-free compounds ('metal')."""
  if role == 'anion':
    return ANIONS[element][1]
  if role == 'cation':
    return CATIONS[element][1]
  return covalent_radius(element)


def required_distances(elements: list[str], roles: list[str]) -> np.ndarray:
  """[k, k] shortest allowed distance (Å) between atoms of species i and j."""
  k = len(elements)
  r = np.array([radius(e, ro) for e, ro in zip(elements, roles)])
  out = np.zeros((k, k))
  for i in range(k):
    for j in range(k):
      a, b = roles[i], roles[j]
      if a == 'anion' and b == 'anion':
        out[i, j] = ANION_ANION * (r[i] + r[j])
      elif 'anion' in (a, b):
        out[i, j] = CATION_ANION * (r[i] + r[j])
      elif a == 'metal' or b == 'metal':
        out[i, j] = METAL_METAL * (r[i] + r[j])
      else:
        out[i, j] = r[i] + r[j] + CATION_CATION_GAP
  return out
