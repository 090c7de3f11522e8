"""Readers for the powder-pattern files laboratories produce.

`read_pattern(path)` -> Pattern(two_theta [n] degrees, intensity [n], wavelength Å or None, path). Formats:
two-column text (.xy, .xye, .dat, .txt, .csv; headers and comments skipped; whitespace, comma or semicolon as
separator, and decimal commas where the separator is whitespace, a semicolon or quotes: `3,00 313,0`, `3,00;313,0`,
`"3,00","313,0"`; commas as both separator and decimal mark, `3,00,313,0`, cannot be read and are refused), RRUFF
powder files (##KEY=value headers, ##X-RAY WAVELENGTH), PANalytical .xrdml (XML) and GSAS
.fxye / .gsa (BANK lines, FXYE or STD). Bruker .raw is binary and versioned; no maintained reader of it is on
PyPI, so export .xy or .xrdml from the instrument software (see BUILD.md).

Every failure raises PatternError with the file and the reason, whatever went wrong inside a reader. Data that
would be predicted wrongly without a word is refused (2θ that looks like radians, a constant pattern, different
numbers of positions and intensities) or read with a warning in `Pattern.warnings` (rows with NaN dropped).
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import io
import math
import os
import re
import xml.etree.ElementTree as ET

import numpy as np


class PatternError(ValueError):
  """A pattern file that cannot be used; the message names the file and the problem."""


@dataclasses.dataclass(frozen=True)
class Pattern:
  two_theta: np.ndarray  # [n] degrees, increasing
  intensity: np.ndarray  # [n]
  wavelength: float | None  # Å, when the file says
  path: str
  warnings: tuple[str, ...] = ()  # what the reader changed or doubts; each starts with the path

MIN_POINTS = 10
MIN_DISTINCT_SHARE = 0.5  # fewer distinct 2θ values than this share of the points: columns misread, refused
MAX_BAD_ROW_SHARE = 0.01  # rows with NaN or infinity dropped (with a warning) up to this share, else refused


TEXT_SUFFIXES = ('.xy', '.xye', '.dat', '.txt', '.csv', '.asc')
SUFFIXES = TEXT_SUFFIXES + ('.xrdml', '.fxye', '.gsa', '.gss', '.rruff')


def expand_inputs(inputs: list[str]) -> list[str]:
  """Files, folders (their pattern files, recursively) and globs -> sorted unique paths."""
  out = []
  for item in inputs:
    if os.path.isdir(item):
      for dirpath, _, names in os.walk(item):
        out += [os.path.join(dirpath, n) for n in names if n.lower().endswith(SUFFIXES)]
    elif any(c in item for c in '*?['):
      out += glob.glob(item, recursive=True)
    else:
      out.append(item)
  return sorted(dict.fromkeys(out))


def read_pattern(path: str) -> Pattern:
  """Reads one pattern file (the format by its suffix). Raises PatternError naming the file and the reason."""
  if not os.path.exists(path):
    raise PatternError(f'{path}: no such file')
  if os.path.isdir(path):
    raise PatternError(f'{path}: a folder, not a pattern file')
  lower = path.lower()
  try:
    if lower.endswith('.xrdml'):
      tt, y, wl, notes = _read_xrdml(path)
    elif lower.endswith(('.fxye', '.gsa', '.gss')):
      tt, y, wl, notes = _read_gsas(path)
    elif lower.endswith('.raw'):
      raise PatternError(f'{path}: Bruker .raw is not supported (no maintained reader); export .xy or .xrdml')
    else:
      tt, y, wl, notes = _read_text(path)
  except PatternError:
    raise
  except UnicodeDecodeError:
    raise PatternError(f'{path}: not a text file (binary content); the readable formats are '
                       f'{", ".join(SUFFIXES)}') from None
  except Exception as e:  # pylint: disable=broad-except  (any reader failure is this file's error, never a crash)
    raise PatternError(f'{path}: cannot read ({type(e).__name__}: {e})') from None
  return from_arrays(path, tt, y, wl, notes)


def from_arrays(path: str, two_theta, intensity, wavelength: float | None = None,
                warnings: tuple[str, ...] = ()) -> Pattern:
  """A validated Pattern from arrays (degrees 2θ, intensities), as every reader returns it.

  Rows with NaN or infinity are dropped with a warning when they are few (MAX_BAD_ROW_SHARE), else refused.

  Raises:
    PatternError: the arrays cannot be a powder pattern; the message names `path` and the reason.
  """
  warnings = list(warnings)
  try:
    tt, y = np.asarray(two_theta, np.float64), np.asarray(intensity, np.float64)
  except (TypeError, ValueError) as e:
    raise PatternError(f'{path}: not numbers ({e})') from None
  if tt.ndim != 1 or y.ndim != 1:
    raise PatternError(f'{path}: 2θ and intensity must be 1-D, got shapes {tt.shape} and {y.shape}')
  if tt.shape != y.shape:
    raise PatternError(f'{path}: {tt.size} 2θ values but {y.size} intensities')
  if tt.size == 0:
    raise PatternError(f'{path}: no data points')
  finite = np.isfinite(tt) & np.isfinite(y)
  if not finite.all():
    bad = int((~finite).sum())
    if bad > MAX_BAD_ROW_SHARE * tt.size:
      raise PatternError(f'{path}: {bad} of {tt.size} points are NaN or infinite')
    warnings.append(f'{path}: {bad} point(s) with NaN or infinite values dropped (first at row '
                    f'{int(np.argmax(~finite)) + 1})')
    tt, y = tt[finite], y[finite]
  if tt.size < MIN_POINTS:
    raise PatternError(f'{path}: only {tt.size} data points')
  if np.any(y < 0) and y.min() < -0.05 * max(y.max(), 1e-12):
    raise PatternError(f'{path}: negative intensities (min {y.min():.4g})')
  if tt.min() < 0 or tt.max() >= 180:
    raise PatternError(f'{path}: 2θ outside 0-180° ({tt.min():.4g} to {tt.max():.4g})')
  if tt.max() <= math.pi:
    raise PatternError(f'{path}: 2θ runs from {tt.min():.4g} to {tt.max():.4g}: radians? 2θ must be in degrees')
  if np.ptp(tt) <= 0:
    raise PatternError(f'{path}: every point has the same 2θ ({tt[0]:.4g}°)')
  distinct = np.unique(tt).size
  if distinct < MIN_DISTINCT_SHARE * tt.size:
    raise PatternError(f'{path}: only {distinct} distinct 2θ values among {tt.size} points: are the columns misread? '
                       '(comma-separated numbers with decimal commas, like 3,00,313,0, cannot be told apart: put ";" '
                       'or whitespace between the columns, or quote the fields)')
  if not np.ptp(y) > 1e-9 * max(abs(y.max()), 1e-300):
    raise PatternError(f'{path}: the intensity is constant ({y[0]:.4g}): no diffraction pattern')
  if wavelength is not None and not (math.isfinite(wavelength) and 0 < wavelength <= 10):
    warnings.append(f'{path}: the file gives wavelength {wavelength}; ignored')
    wavelength = None
  order = np.argsort(tt, kind='stable')
  return Pattern(tt[order], np.maximum(y[order], 0.0), wavelength, path, tuple(warnings))


def coarsen(pattern: Pattern, max_points: int) -> Pattern:
  """The pattern with at most max_points points: runs of neighbours averaged (2θ and intensity). The work after
  reading (background, binning) then depends on the model grid, not on how finely the file was sampled."""
  n = len(pattern.two_theta)
  if n <= max_points:
    return pattern
  k = -(-n // max_points)
  starts = np.arange(0, n, k)
  counts = np.diff(np.r_[starts, n])
  tt = np.add.reduceat(pattern.two_theta, starts) / counts
  y = np.add.reduceat(pattern.intensity, starts) / counts
  return dataclasses.replace(pattern, two_theta=tt, intensity=y)


_HEADER_WAVELENGTH = re.compile(r'(?:wave\s*length|lambda|x-ray wavelength)\D{0,10}([0-9]+\.[0-9]+)', re.I)
_COMMENT = ('#', '!', ';', '//', '%', '*')
_DECIMAL_COMMA = re.compile(r'[+-]?\d*,\d+(?:[eE][+-]?\d+)?')


def _fields(s: str) -> list[str]:
  """The number fields of a data line, with decimal commas turned into points.

  A ';' separates fields (and then commas are decimal commas); else whitespace does, and a comma inside a field
  is a decimal comma (`3,00 313,0`); a line with neither is comma-separated (`3.00,313.0`).
  """
  if ';' in s:
    return [f.strip().replace(',', '.') for f in s.split(';') if f.strip()]
  if '"' in s:  # quoted CSV fields: a comma inside quotes is a decimal comma ("3,00","313,0")
    return [f.strip().replace(',', '.') for f in next(csv.reader([s])) if f.strip()]
  parts = s.replace('\t', ' ').split()
  if len(parts) > 1:
    parts = [p.rstrip(',') for p in parts]  # '3.0, 313.0'
    return [p.replace(',', '.') if _DECIMAL_COMMA.fullmatch(p) else p for p in parts if p]
  return [p.strip() for p in s.split(',') if p.strip()]


def _read_text(path):
  with open(path, encoding='utf-8', errors='strict') as f:
    lines = f.read().splitlines()
  wl, start = None, None
  for n, line in enumerate(lines):  # headers until the first line of numbers
    s = line.strip()
    if not s:
      continue
    if not s.startswith(_COMMENT):
      try:
        [float(p) for p in _fields(s)[:2]]
        start = n
        break
      except ValueError:
        pass
    m = _HEADER_WAVELENGTH.search(s)
    if m and wl is None:
      wl = float(m.group(1))
  if start is None:
    raise PatternError(f'{path}: no numeric data')
  first = lines[start].strip()
  if ';' in first:
    style = 'semicolon'
  elif '"' in first:
    style = 'quoted'
  elif len(first.split()) > 1:
    style = 'decimal comma' if any(_DECIMAL_COMMA.fullmatch(p) for p in first.split()) else 'whitespace'
  else:
    style = 'comma'
  data = _fast_rows(lines[start:], style)
  if data is None:  # irregular lines: line by line, naming the first bad one
    data = _slow_rows(path, lines, start)
  if data.ndim != 2 or data.shape[1] < 2:
    raise PatternError(f'{path}: line {start + 1} has one column; expected 2θ and intensity')
  notes = (f'{path}: decimal commas read as decimal points',) if style in ('semicolon', 'decimal comma', 'quoted') and \
      any(',' in l for l in lines[start:start + 50]) else ()
  return data[:, 0], data[:, 1], wl, notes


def _fast_rows(lines: list[str], style: str) -> np.ndarray | None:
  """All rows at C speed when every line is plain numbers in one style (None otherwise)."""
  text = '\n'.join(lines)
  if style == 'semicolon':
    text = text.replace(',', '.').replace(';', ' ')
  elif style == 'decimal comma':
    text = text.replace(',', '.')
  elif style == 'comma':
    text = text.replace(',', ' ')
  elif style == 'quoted':
    return None  # field by field through the csv module
  try:
    data = np.loadtxt(io.StringIO(text), comments=list(_COMMENT), ndmin=2, dtype=np.float64)
  except ValueError:
    return None
  return data if data.shape[1] >= 2 else None


def _slow_rows(path: str, lines: list[str], start: int) -> np.ndarray:
  rows = []
  for n, line in enumerate(lines[start:], start + 1):
    s = line.strip()
    if not s or s.startswith(_COMMENT):
      continue
    parts = _fields(s)
    try:
      values = [float(p) for p in parts[:2]]
    except ValueError:
      if s[0].isalpha():  # a trailing text line (END, a footer)
        continue
      raise PatternError(f'{path}: line {n} is not numbers: {s[:60]!r}') from None
    if len(values) < 2:
      raise PatternError(f'{path}: line {n} has one column; expected 2θ and intensity')
    rows.append(values)
  return np.array(rows, dtype=np.float64).reshape(-1, 2)


def _number(element, path, name):
  """float of an XML element's text; PatternError naming the element when it is empty or not a number."""
  text = (element.text or '').strip()
  try:
    return float(text)
  except ValueError:
    raise PatternError(f'{path}: <{name}> is {text!r}, not a number') from None


def _read_xrdml(path):
  root = ET.parse(path).getroot()
  ns = {'x': root.tag.split('}')[0].strip('{')} if root.tag.startswith('{') else {}
  q = (lambda tag: f'.//x:{tag}') if ns else (lambda tag: f'.//{tag}')
  wl, notes = None, []
  k1 = root.find(q('kAlpha1'), ns)
  k2 = root.find(q('kAlpha2'), ns)
  ratio = root.find(q('ratioKAlpha2KAlpha1'), ns)
  if k1 is not None:
    try:
      wl = _number(k1, path, 'kAlpha1')
      if k2 is not None and ratio is not None:
        r = _number(ratio, path, 'ratioKAlpha2KAlpha1')
        wl = (wl + r * _number(k2, path, 'kAlpha2')) / (1 + r)
    except PatternError as e:
      wl = None
      notes.append(f'{e}; the wavelength is not taken from the file')
  counts = root.find(q('intensities'), ns)
  if counts is None:
    counts = root.find(q('counts'), ns)
  if counts is None:
    raise PatternError(f'{path}: no <intensities> or <counts> in the XRDML')
  if not (counts.text or '').strip():
    raise PatternError(f'{path}: <{counts.tag.split("}")[-1]}> is empty')
  y = np.array(counts.text.split(), dtype=float)
  for positions in root.iter(f'{{{ns["x"]}}}positions' if ns else 'positions'):
    if positions.get('axis') == '2Theta':
      start, end = positions.find(q('startPosition'), ns), positions.find(q('endPosition'), ns)
      listed = positions.find(q('listPositions'), ns)
      if listed is not None:
        tt = np.array((listed.text or '').split(), dtype=float)
      elif start is not None and end is not None:
        tt = np.linspace(_number(start, path, 'startPosition'), _number(end, path, 'endPosition'), len(y))
      else:
        continue
      if len(tt) != len(y):
        raise PatternError(f'{path}: {len(tt)} positions but {len(y)} intensities')
      return tt, y, wl, tuple(notes)
  raise PatternError(f'{path}: no 2Theta axis in the XRDML')


def _read_gsas(path):
  with open(path) as f:
    lines = f.read().splitlines()
  wl = None
  for line in lines[:5]:
    m = _HEADER_WAVELENGTH.search(line)
    if m:
      wl = float(m.group(1))
  bank = next((i for i, l in enumerate(lines) if l.startswith('BANK')), None)
  if bank is None:
    raise PatternError(f'{path}: no BANK line (not a GSAS file)')
  fields = lines[bank].split()
  body = [(n, l) for n, l in enumerate(lines[bank + 1:], bank + 2) if l.strip()]
  if not body:
    raise PatternError(f'{path}: no data after the BANK line')
  if 'FXYE' in fields or 'FXY' in fields:
    rows = []
    for n, l in body:
      parts = l.split()
      if len(parts) < 2:
        raise PatternError(f'{path}: line {n} has one column; FXYE needs position and intensity')
      try:
        rows.append((float(parts[0]), float(parts[1])))
      except ValueError:
        raise PatternError(f'{path}: line {n} is not numbers: {l.strip()[:60]!r}') from None
    data = np.array(rows)
    return data[:, 0] / 100.0, data[:, 1], wl, ()  # positions in centidegrees
  if 'STD' in fields:
    # BANK n nchan nrec CONS start step 0 0 STD: 10 counts per record, positions in centidegrees.
    if len(fields) < 7:
      raise PatternError(f'{path}: BANK line {lines[bank].strip()!r} lacks nchan/start/step')
    try:
      nchan, start, step = int(fields[2]), float(fields[5]), float(fields[6])
    except ValueError:
      raise PatternError(f'{path}: BANK line {lines[bank].strip()!r}: nchan, start or step is not a number') \
          from None
    values = []
    for _, l in body:
      values += [float(l[i:i + 8].split()[-1]) for i in range(0, min(len(l), 80), 8) if l[i:i + 8].strip()]
    y = np.array(values[:nchan])
    return (start + step * np.arange(len(y))) / 100.0, y, wl, ()
  raise PatternError(f'{path}: GSAS bank type {fields[-1]!r} not supported (FXYE, FXY, STD are)')
