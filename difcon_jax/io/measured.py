"""Measured patterns as the model takes them: a file, or an item of a labelled set, becomes its pattern on the model
grid at the training wavelength, or an error record naming the file and the problem.

predict, evaluate's measured set, index and HAND read every measured pattern through `load` (a file) or
`load_item` (an item of `read_set`: an .npz like rruff_dev.npz, or a folder with labels.csv), so a file gives the
same values, warnings and error wherever it is read. A batch command keeps the error records (one row each) and
goes on with the rest.

Preprocessing (`to_grid`): a finely sampled pattern averaged down to MAX_POINTS_PER_BIN points per model bin (the
work after reading then scales with the grid, not the file), 2θ converted from the measurement wavelength to the
training wavelength through d (the paper's formula; points with no counterpart are dropped with a warning),
background removed with pybaselines' SNIP, intensities interpolated at the bin centres (zero outside the measured
range), strongest point scaled to 1 as in training.
"""

from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np

from difcon_jax.crystallography import pattern_grid as grid_lib
from difcon_jax.crystallography import wavelength as wavelength_lib
from difcon_jax.io import labelled
from difcon_jax.io import patterns as patterns_lib

MAX_POINTS_PER_BIN = 2  # finer patterns are averaged down to this many points per model bin first
# What one pattern can raise on its way to the grid; each becomes that pattern's error record, never a crash.
# (PatternError is a ValueError; FloatingPointError comes from NumPy where errors are set to raise.)
PATTERN_ERRORS = (patterns_lib.PatternError, ValueError, FloatingPointError)


@dataclasses.dataclass
class GridPattern:
  values: np.ndarray  # [bins]
  warnings: list[str]
  wavelength: float | None = None  # Å: the measurement wavelength the conversion used
  wavelength_conflict: str = ''  # one line when the file states another wavelength than the one given, else ''


def to_grid(pattern: patterns_lib.Pattern, grid: ml_collections.ConfigDict, wavelength: float | None,
            training_wavelength: float = grid_lib.WAVELENGTH, remove_background: bool = True,
            given_by: str = 'the command line') -> GridPattern:
  """A measured pattern on the training bins, with its reading warnings and those of the conversion.

  wavelength: of the measurement, Å (None: the file's, else the training wavelength, with a warning); when the
  file states another, it is still used, and the warnings and `wavelength_conflict` say so, naming both (given_by:
  where it came from).
  Raises PatternError when nothing of it lands on the grid.
  """
  pattern = patterns_lib.coarsen(pattern, MAX_POINTS_PER_BIN * grid.num_bins)
  warnings = list(pattern.warnings)
  conflict = patterns_lib.wavelength_conflict(pattern, wavelength, given_by)
  if conflict:
    warnings.append(conflict)
  wl = wavelength or pattern.wavelength
  if wl is None:
    wl = training_wavelength
    warnings.append(f'{pattern.path}: no wavelength given or in the file; assumed {training_wavelength} Å')
  tt = wavelength_lib.convert_two_theta(pattern.two_theta, wl, training_wavelength)
  y = pattern.intensity
  ok = np.isfinite(tt)
  if not ok.all():
    limit = 2 * np.degrees(np.arcsin(min(1.0, wl / training_wavelength)))
    warnings.append(f'{pattern.path}: {int((~ok).sum())} points above 2θ = {limit:.2f}° (measured at {wl} Å) '
                    f'have no counterpart at {training_wavelength} Å: range truncated')
    tt, y = tt[ok], y[ok]
  if not tt.size:
    raise patterns_lib.PatternError(
        f'{pattern.path}: measured at {wl} Å from {pattern.two_theta.min():.2f}° 2θ, all above {limit:.2f}°, the '
        f'highest angle with a counterpart at the training wavelength {training_wavelength} Å: nothing to predict '
        'on (is the wavelength right?)')
  lo, hi = grid.two_theta_min, grid.two_theta_max
  inside = (tt >= lo) & (tt <= hi)
  if inside.sum() < 10:
    raise patterns_lib.PatternError(f'{pattern.path}: 2θ {tt.min():.2f}-{tt.max():.2f}° (at {training_wavelength} Å)'
                                    f' lies outside the model grid {lo}-{hi}°')
  tt, y = tt[inside], y[inside]
  if remove_background:
    from pybaselines import Baseline  # pylint: disable=g-import-not-at-top
    step = float(np.median(np.diff(tt)))
    half_window = max(3, int(round(1.5 / max(step, 1e-4))))  # wider than any Bragg peak
    baseline, _ = Baseline(x_data=tt).snip(y, max_half_window=half_window, decreasing=True, smooth_half_window=1)
    y = np.maximum(y - baseline, 0.0)
  values = np.interp(grid_lib.bin_centres(grid), tt, y, left=0.0, right=0.0)
  top = values.max()
  if not top > 0:
    raise patterns_lib.PatternError(f'{pattern.path}: no signal left after background removal')
  return GridPattern((values / top).astype(np.float32), warnings, float(wl), conflict)


@dataclasses.dataclass(frozen=True)
class Measured:
  """One measured pattern on the model grid, or the record of why it cannot be used (`error` set, `values` None)."""
  name: str  # the file, or 'set.npz[source_id]' for an item of an .npz
  values: np.ndarray | None  # [bins] on the model grid at the training wavelength, strongest 1; None on error
  warnings: tuple[str, ...] = ()  # what reading and conversion changed or doubt, each starting with the file
  error: str = ''  # why the pattern cannot be used, one line starting with the file; '' when it can
  wavelength: float | None = None  # Å: the measurement wavelength used (given, the file's, else the training one)
  pattern: patterns_lib.Pattern | None = None  # as read (2θ at the measurement wavelength); None when unreadable
  space_group: int | None = None  # the label, for an item of a labelled set (None: unlabelled or unreadable label)
  # One line naming both values when the file states another wavelength than the one given (a flag, labels.csv),
  # which was used; '' when they agree or either is missing. Also among the warnings.
  wavelength_conflict: str = ''

  @property
  def ok(self) -> bool:
    return not self.error

  @property
  def file_wavelength(self) -> float | None:
    """Å: the wavelength the file itself states (a text header, an XRDML's kAlpha), None when it states none."""
    return self.pattern.wavelength if self.pattern is not None else None


def _message(name: str, e: Exception) -> str:
  """The error of one pattern as one line starting with its name."""
  return str(e) if str(e).startswith(name) else f'{name}: {e}'


def _on_grid(name: str, pattern: patterns_lib.Pattern, grid, wavelength: float | None, training_wavelength: float,
             remove_background: bool, space_group: int | None = None,
             given_by: str = 'the command line') -> Measured:
  try:
    g = to_grid(pattern, grid, wavelength, training_wavelength, remove_background, given_by)
  except PATTERN_ERRORS as e:
    return Measured(name, None, error=_message(name, e), pattern=pattern, space_group=space_group,
                    wavelength_conflict=patterns_lib.wavelength_conflict(pattern, wavelength, given_by))
  return Measured(name, g.values, tuple(g.warnings), '', g.wavelength, pattern, space_group, g.wavelength_conflict)


def load(path: str, grid: ml_collections.ConfigDict, wavelength: float | None,
         training_wavelength: float = grid_lib.WAVELENGTH, remove_background: bool = True) -> Measured:
  """A pattern file (io.patterns.read_pattern) on the model grid, or its error record; never raises for a bad file.

  wavelength: of the measurement, Å (None: the file's, else the training wavelength, with a warning).
  """
  try:
    pattern = patterns_lib.read_pattern(path)
  except PATTERN_ERRORS as e:
    return Measured(path, None, error=_message(path, e))
  return _on_grid(path, pattern, grid, wavelength, training_wavelength, remove_background)


def load_item(item: labelled.Item, grid: ml_collections.ConfigDict,
              training_wavelength: float = grid_lib.WAVELENGTH, remove_background: bool = True) -> Measured:
  """An item of a labelled set on the model grid at its own wavelength (labels.csv's, else the file's), or its
  error record (the item's own error first: unreadable file, bad label, bad wavelength)."""
  if item.pattern is None:
    return Measured(item.name, None, error=item.error, space_group=item.space_group)
  return _on_grid(item.name, item.pattern, grid, item.wavelength, training_wavelength, remove_background,
                  item.space_group, 'labels.csv')


def read_set(data_path: str, labels_path: str | None) -> list[labelled.Item]:
  """The patterns of a labelled measured set as read: an .npz (Cu Kα, the layout of rruff_dev.npz) or a folder with
  labels.csv (io/labelled.py). Raises PatternError when the set as a whole cannot be read."""
  if data_path.endswith('.npz'):
    return labelled.read_npz(data_path, wavelength_lib.CU_KA)  # the layout of rruff_dev.npz: Cu Kα
  return labelled.read_folder(data_path, labels_path)


def stack(records: list[Measured], num_bins: int) -> np.ndarray:
  """[usable records, num_bins] float32: the values of the usable records, in order."""
  values = [m.values for m in records if m.ok]
  return np.stack(values) if values else np.zeros((0, num_bins), np.float32)
