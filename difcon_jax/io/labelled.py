"""Labelled sets of measured patterns (for evaluation): an .npz of patterns, or a folder with labels.csv.

Every pattern becomes an `Item`: the Pattern and its space group, or the reason it cannot be used. A problem of
the whole set (not an .npz, an array missing, lengths that disagree, labels.csv without its columns) raises
PatternError naming the file; a problem of one pattern (NaN in it, a space group of 0 or 'abc', an unreadable
file) is that item's error and the rest are still used.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import zipfile

import numpy as np

from difcon_jax.crystallography import spacegroups
from difcon_jax.io import patterns as patterns_lib

NPZ_ARRAYS = ('two_theta', 'intensity', 'space_group')  # required; source_id [N] optional
LABEL_COLUMNS = ('file', 'space_group')  # required; wavelength optional


@dataclasses.dataclass(frozen=True)
class Item:
  name: str  # file path, or 'set.npz[source_id]'
  pattern: patterns_lib.Pattern | None
  space_group: int | None
  wavelength: float | None = None  # Å, from labels.csv
  error: str = ''  # why the item cannot be used; starts with its name


def parse_space_group(value, name: str) -> int:
  """An ITA space-group number 1-230 from a label (int, float or text); PatternError naming `name` otherwise."""
  try:
    v = float(str(value).strip())
  except ValueError:
    v = math.nan
  if not (math.isfinite(v) and v == int(v) and 1 <= v <= spacegroups.NUM_SPACE_GROUPS):
    raise patterns_lib.PatternError(f'{name}: space group {str(value).strip()!r} is not an integer '
                                    f'1-{spacegroups.NUM_SPACE_GROUPS}')
  return int(v)


def _item(name, make_pattern, label, wavelength=None) -> Item:
  try:
    sg = parse_space_group(label, name)
    return Item(name, make_pattern(), sg, wavelength)
  except patterns_lib.PatternError as e:
    return Item(name, None, None, wavelength, str(e))


def read_npz(path: str, wavelength: float | None) -> list[Item]:
  """The patterns of an .npz with two_theta [n] (or [N, n]), intensity [N, n], space_group [N] (source_id [N]).

  Raises:
    PatternError: not a readable .npz, an array missing, or lengths that disagree.
  """
  try:
    data = np.load(path, allow_pickle=False)
    arrays = {k: data[k] for k in data.files}
  except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
    raise patterns_lib.PatternError(f'{path}: not a readable .npz ({type(e).__name__}: {e})') from None
  missing = [k for k in NPZ_ARRAYS if k not in arrays]
  if missing:
    raise patterns_lib.PatternError(f'{path}: missing array(s) {", ".join(missing)} (needs {", ".join(NPZ_ARRAYS)};'
                                    f' has {", ".join(arrays) or "none"})')
  tt, y, sg = arrays['two_theta'], arrays['intensity'], np.atleast_1d(arrays['space_group'])
  if y.ndim == 1:
    y = y[None]
  if y.ndim != 2:
    raise patterns_lib.PatternError(f'{path}: intensity must be [patterns, points], got shape {y.shape}')
  n = len(y)
  if tt.ndim == 1:
    tt = np.broadcast_to(tt, (n, len(tt))) if len(tt) == y.shape[1] else tt
  if tt.shape != y.shape:
    raise patterns_lib.PatternError(f'{path}: two_theta {arrays["two_theta"].shape} does not match '
                                    f'intensity {y.shape}')
  if len(sg) != n:
    raise patterns_lib.PatternError(f'{path}: {len(sg)} space groups for {n} patterns')
  ids = arrays.get('source_id')
  if ids is None or len(ids) != n:
    ids = np.arange(n)
  def pattern(i):  # negative counts (a subtracted background) clipped to 0; NaN left for from_arrays
    return patterns_lib.from_arrays(f'{path}[{ids[i]}]', tt[i], np.maximum(y[i], 0), wavelength)

  return [_item(f'{path}[{ids[i]}]', lambda i=i: pattern(i), sg[i]) for i in range(n)]


def read_folder(folder: str, labels_csv: str) -> list[Item]:
  """The files listed in labels.csv (columns file, space_group[, wavelength]), read from folder.

  Raises:
    PatternError: labels.csv cannot be read or lacks a column.
  """
  try:
    with open(labels_csv, newline='', encoding='utf-8-sig') as f:
      reader = csv.DictReader(f)
      rows = list(reader)
      columns = reader.fieldnames or []
  except (OSError, UnicodeDecodeError, csv.Error) as e:
    raise patterns_lib.PatternError(f'{labels_csv}: cannot read ({type(e).__name__}: {e})') from None
  missing = [c for c in LABEL_COLUMNS if c not in columns]
  if missing:
    raise patterns_lib.PatternError(f'{labels_csv}: no column(s) {", ".join(missing)} (has {", ".join(columns)})')
  items = []
  for line, row in enumerate(rows, 2):
    name = os.path.join(folder, (row.get('file') or '').strip())
    if not (row.get('file') or '').strip():
      items.append(Item(f'{labels_csv}:{line}', None, None, None, f'{labels_csv}: line {line} has no file'))
      continue
    wl = None
    text = (row.get('wavelength') or '').strip()
    if text:
      try:
        wl = float(text)
      except ValueError:
        wl = math.nan
      if not (math.isfinite(wl) and 0 < wl <= 10):
        items.append(Item(name, None, None, None, f'{name}: wavelength {text!r} in {labels_csv} is not a number of Å'))
        continue
    items.append(_item(name, lambda name=name: patterns_lib.read_pattern(name), row['space_group'], wl))
  return items
