"""A classical indexing program (the paper's NTREOR baseline): peak positions -> unit cells ranked by M20.

- `peaks`: lines from a pattern on the model grid (scipy's find_peaks, Kα2 partners removed) or from a peak list;
- `search`: the trial-and-error cell search from cubic down to monoclinic, zero shift refined;
- `merit`: de Wolff's M_N and Smith & Snyder's F_N;
- `evaluation`: the baseline on the project's test sets.

`check_system(two_theta, crystal_system, wavelength)` says how well a cell of one crystal system indexes observed
lines; `check_columns` does it for a pattern on the model grid (predict --check_cells).
"""

from __future__ import annotations

import numpy as np

from difcon_jax.crystallography import pattern_grid as grid_lib
from difcon_jax.autoindex import lines as peaks
from difcon_jax.autoindex import search
from difcon_jax.autoindex.search import check_system  # noqa: F401
from difcon_jax.autoindex.search import Settings


def check_columns(values: np.ndarray, grid, crystal_system: str, wavelength: float = grid_lib.WAVELENGTH,
                  settings: Settings = Settings()) -> dict:
  """predict's columns for a pattern on the model grid (values [bins], at `wavelength`, Å) and the network's
  crystal system: `cell_check` (yes: a cell of that system indexes the picked lines with M_N >= settings.m20_min
  and at most settings.max_unindexed unindexed lines; no; not searched: triclinic), `cell_check_m` (its M_N) and
  `cell_check_cell` (a b c alpha beta gamma)."""
  tt, height = peaks.pick(values, grid_lib.bin_centres(grid))
  tt, _ = peaks.strip_kalpha2(tt, height, wavelength, peaks.doublet(wavelength))
  if crystal_system not in search.METRIC_OF:
    return {'cell_check': 'not searched', 'cell_check_m': '', 'cell_check_cell': ''}
  best = check_system(tt, crystal_system, wavelength, settings)
  if best is None:
    return {'cell_check': 'no', 'cell_check_m': '', 'cell_check_cell': ''}
  return {'cell_check': 'yes' if best.accepted(settings) else 'no', 'cell_check_m': f'{best.m:.1f}',
          'cell_check_cell': ' '.join(f'{x:.4f}' if i < 3 else f'{x:.2f}' for i, x in enumerate(best.cell))}
