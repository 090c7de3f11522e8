"""Readers for the powder-pattern files laboratories produce.

`read_pattern(path)` -> Pattern(two_theta [n] degrees, intensity [n], wavelength Å or None, path). Formats:
two-column text (.xy, .xye, .dat, .txt, .csv; headers and comments skipped, any of whitespace, comma, semicolon
as separator), RRUFF powder files (##KEY=value headers, ##X-RAY WAVELENGTH), PANalytical .xrdml (XML) and GSAS
.fxye / .gsa (BANK lines, FXYE or STD). Bruker .raw is binary and versioned; no maintained reader of it is on
PyPI, so export .xy or .xrdml from the instrument software (see BUILD.md).

Every failure raises PatternError with the file and the reason.
"""

from __future__ import annotations

import dataclasses
import glob
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
  if not os.path.exists(path):
    raise PatternError(f'{path}: no such file')
  lower = path.lower()
  try:
    if lower.endswith('.xrdml'):
      tt, y, wl = _read_xrdml(path)
    elif lower.endswith(('.fxye', '.gsa', '.gss')):
      tt, y, wl = _read_gsas(path)
    elif lower.endswith('.raw'):
      raise PatternError(f'{path}: Bruker .raw is not supported (no maintained reader); export .xy or .xrdml')
    else:
      tt, y, wl = _read_text(path)
  except PatternError:
    raise
  except (OSError, UnicodeDecodeError, ET.ParseError, ValueError) as e:
    raise PatternError(f'{path}: cannot read ({e})') from None
  return _validated(path, tt, y, wl)


def _validated(path, tt, y, wl) -> Pattern:
  tt, y = np.asarray(tt, np.float64), np.asarray(y, np.float64)
  if tt.size == 0:
    raise PatternError(f'{path}: no data points')
  if tt.size < 10:
    raise PatternError(f'{path}: only {tt.size} data points')
  if not np.all(np.isfinite(tt)) or not np.all(np.isfinite(y)):
    raise PatternError(f'{path}: NaN or infinite values')
  if np.any(y < 0) and y.min() < -0.05 * max(y.max(), 1e-12):
    raise PatternError(f'{path}: negative intensities (min {y.min():.4g})')
  if tt.min() < 0 or tt.max() >= 180:
    raise PatternError(f'{path}: 2θ outside 0-180° ({tt.min():.4g} to {tt.max():.4g})')
  order = np.argsort(tt, kind='stable')
  return Pattern(tt[order], np.maximum(y[order], 0.0), wl, path)


_HEADER_WAVELENGTH = re.compile(r'(?:wave\s*length|lambda|x-ray wavelength)\D{0,10}([0-9]+\.[0-9]+)', re.I)


def _read_text(path):
  rows, wl, bad = [], None, 0
  with open(path, encoding='utf-8', errors='strict') as f:
    for n, line in enumerate(f, 1):
      s = line.strip()
      if not s:
        continue
      if s.startswith(('#', '!', ';', '//', '%', '*')) or s[0].isalpha() or s.startswith('##'):
        m = _HEADER_WAVELENGTH.search(s)
        if m and wl is None:
          wl = float(m.group(1))
        continue
      parts = [p for p in re.split(r'[\s,;]+', s) if p]
      try:
        values = [float(p) for p in parts[:2]]
      except ValueError:
        if rows:  # text after the data started: not a header
          bad += 1
          raise PatternError(f'{path}: line {n} is not numbers: {s[:60]!r}')
        continue
      if len(values) < 2:
        raise PatternError(f'{path}: line {n} has one column; expected 2θ and intensity')
      rows.append(values)
  if not rows:
    raise PatternError(f'{path}: no numeric data')
  a = np.array(rows)
  return a[:, 0], a[:, 1], wl


def _read_xrdml(path):
  root = ET.parse(path).getroot()
  ns = {'x': root.tag.split('}')[0].strip('{')} if root.tag.startswith('{') else {}
  q = (lambda tag: f'.//x:{tag}') if ns else (lambda tag: f'.//{tag}')
  wl = None
  k1 = root.find(q('kAlpha1'), ns)
  k2 = root.find(q('kAlpha2'), ns)
  ratio = root.find(q('ratioKAlpha2KAlpha1'), ns)
  if k1 is not None:
    wl = float(k1.text)
    if k2 is not None and ratio is not None:
      r = float(ratio.text)
      wl = (float(k1.text) + r * float(k2.text)) / (1 + r)
  counts = root.find(q('intensities'), ns)
  if counts is None:
    counts = root.find(q('counts'), ns)
  if counts is None:
    raise PatternError(f'{path}: no <intensities> or <counts> in the XRDML')
  y = np.array(counts.text.split(), dtype=float)
  for positions in root.iter(f'{{{ns["x"]}}}positions' if ns else 'positions'):
    if positions.get('axis') == '2Theta':
      start, end = positions.find(q('startPosition'), ns), positions.find(q('endPosition'), ns)
      listed = positions.find(q('listPositions'), ns)
      if listed is not None:
        tt = np.array(listed.text.split(), dtype=float)
      elif start is not None and end is not None:
        tt = np.linspace(float(start.text), float(end.text), len(y))
      else:
        continue
      if len(tt) != len(y):
        raise PatternError(f'{path}: {len(tt)} positions but {len(y)} intensities')
      return tt, y, wl
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
  if 'FXYE' in fields or 'FXY' in fields:
    data = np.array([[float(v) for v in l.split()[:2]] for l in lines[bank + 1:] if l.strip()])
    return data[:, 0] / 100.0, data[:, 1], wl  # positions in centidegrees
  if 'STD' in fields:
    # BANK n nchan nrec CONS start step 0 0 STD: 10 counts per record, positions in centidegrees.
    nchan, start, step = int(fields[2]), float(fields[5]), float(fields[6])
    values = []
    for l in lines[bank + 1:]:
      values += [float(l[i:i + 8].split()[-1] if len(l[i:i + 8].split()) else 0) for i in range(0, min(len(l), 80), 8)
                 if l[i:i + 8].strip()]
    y = np.array(values[:nchan])
    return (start + step * np.arange(len(y))) / 100.0, y, wl
  raise PatternError(f'{path}: GSAS bank type {fields[-1]!r} not supported (FXYE, FXY, STD are)')
