"""Readers for the powder-pattern files laboratories produce.

`read_pattern(path)` -> Pattern(two_theta [n] degrees, intensity [n], wavelength Å or None, path). Formats:
two-column text (.xy, .xye, .dat, .txt, .csv; headers and comments skipped; whitespace, comma or semicolon as
separator, and decimal commas where the separator is whitespace, a semicolon or quotes: `3,00 313,0`, `3,00;313,0`,
`"3,00","313,0"`; commas as both separator and decimal mark, `3,00,313,0`, cannot be read and are refused), RRUFF
powder files (##KEY=value headers, ##X-RAY WAVELENGTH), PANalytical .xrdml (XML) and GSAS
.fxye / .gsa (BANK lines, FXYE or STD). Bruker .raw is binary and versioned; no maintained reader of it is on
PyPI, so export .xy or .xrdml from the instrument software (see BUILD.md).

Fortran exponents (1.0D+03) and quoted ;-separated spreadsheet exports ("12,5";"1000") are read. A file holding
several scans (XRDML <scan>s, text blocks with a header between them, or 2θ starting again) gives its first, with a
warning; a scan along another axis than 2θ (an XRDML Omega scan, a text header naming d-spacing, Q, time of flight
or energy as the first column) is refused. The wavelength the file states is `Pattern.wavelength`;
`wavelength_conflict` says, in one line naming both, when a given one (a flag, labels.csv) disagrees with it.
Finding the files to read in folders and globs is io/inputs.py's.

Every failure raises PatternError with the file and the reason, whatever went wrong inside a reader. Data that
would be predicted wrongly without a word is refused (2θ that looks like radians, a constant pattern, different
numbers of positions and intensities, counts that overflow, commas that could be decimal commas or thousands
separators) or read with a warning in `Pattern.warnings` (rows with NaN dropped, thousands separators in
`12.10 1,030`, a file that is not UTF-8). Text is decoded as UTF-8, UTF-16 with a byte-order mark, else
Windows-1252 / Latin-1. A header wavelength is read in its unit (Å, nm, pm; keV or eV converted), one in another
unit refused. Only regular files are opened: a FIFO or a device is refused unread (it could block forever).
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import math
import os
import re
import stat
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
# No detector counts this high; beyond it the sums of the background removal and the binning overflow float64.
MAX_INTENSITY = 1e100


TEXT_SUFFIXES = ('.xy', '.xye', '.dat', '.txt', '.csv', '.asc')
SUFFIXES = TEXT_SUFFIXES + ('.xrdml', '.fxye', '.gsa', '.gss', '.rruff')


_NOT_REGULAR = ((stat.S_ISFIFO, 'a FIFO (named pipe)'), (stat.S_ISCHR, 'a character device'),
                (stat.S_ISBLK, 'a block device'), (stat.S_ISSOCK, 'a socket'))


def read_pattern(path: str) -> Pattern:
  """Reads one pattern file (the format by its suffix). Raises PatternError naming the file and the reason.

  Only regular files are opened: a FIFO or a device would block or never end."""
  try:
    mode = os.stat(path).st_mode
  except FileNotFoundError:
    raise PatternError(f'{path}: no such file') from None
  except OSError as e:
    raise PatternError(f'{path}: cannot read ({e.strerror or e})') from None
  if stat.S_ISDIR(mode):
    raise PatternError(f'{path}: a folder, not a pattern file')
  for test, what in _NOT_REGULAR:
    if test(mode):
      raise PatternError(f'{path}: {what}, not a regular file; skipped without opening it')
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
  if np.abs(y).max(initial=0.0) > MAX_INTENSITY:
    raise PatternError(f'{path}: intensity {y[np.argmax(np.abs(y))]:.4g} overflows: counts above {MAX_INTENSITY:g} '
                       'are no measurement (the background removal would overflow)')
  if tt.size < MIN_POINTS:
    raise PatternError(f'{path}: only {tt.size} data point{"" if tt.size == 1 else "s"}; a pattern needs at least '
                       f'{MIN_POINTS}')
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


# Relative difference between a wavelength given (a flag, labels.csv) and the file's own beyond which the two
# disagree: Kα1 and the Kα mean of one anode differ by 0.1-0.3%, two anodes by 16% or more (Cu 1.5418, Co 1.7903).
WAVELENGTH_TOLERANCE = 0.01


def wavelength_conflict(pattern: Pattern, given: float | None, given_by: str = 'the command line') -> str:
  """One line naming both values when the file states its own wavelength (`pattern.wavelength`: a text header, an
  XRDML's kAlpha) and `given` (Å; None: nothing given) differs from it by more than WAVELENGTH_TOLERANCE; '' when
  they agree or either is missing. The given one is used (the caller's choice); the line says so."""
  own = pattern.wavelength
  if given is None or own is None or abs(given - own) <= WAVELENGTH_TOLERANCE * own:
    return ''
  return (f'{pattern.path}: the file says it was measured at {own:g} Å, but {given:g} Å was given ({given_by}); '
          f'read at {given:g} Å')


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


_HEADER_WAVELENGTH = re.compile(
    r'(?:wave\s*length|lambda|x-ray wavelength)(\D{0,12}?)([0-9]+[.,][0-9]+)(\s*[^\s\d,;]*)', re.I)
# Units a header may give its wavelength in -> the factor to Å, or (for energies) E -> λ = factor / E.
_LENGTH_UNITS = {'a': 1.0, 'å': 1.0, 'Å': 1.0, 'ang': 1.0, 'angstrom': 1.0, 'angstroms': 1.0, 'ångström': 1.0,
                 'angstroem': 1.0, 'nm': 10.0, 'pm': 0.01}
_ENERGY_UNITS = {'kev': 12.398419843320026, 'ev': 12398.419843320026}  # hc in keV·Å and eV·Å
_UNIT = re.compile(r'(?<![A-Za-z])(ångström|angstroms?|angstroem|ang|kev|ev|nm|pm|å|Å|a)(?![A-Za-z])', re.I)
# Units that are not those of an X-ray wavelength or energy: refused rather than read as Å.
_OTHER_UNITS = ('m', 'cm', 'mm', 'um', 'µm', 'μm', 'mev', 'gev', 'j')
_COMMENT = ('#', '!', ';', '//', '%', '*')
_DECIMAL_COMMA = re.compile(r'[+-]?\d*,\d+(?:[eE][+-]?\d+)?')
_THOUSANDS = re.compile(r'[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?(?:[eE][+-]?\d+)?')
MAX_TWO_THETA = 180.0  # degrees


def header_wavelength(path: str, line: str) -> float | None:
  """The wavelength (Å) a header line gives, in its unit (Å, nm, pm, or an energy in keV/eV); None if the line
  gives none. Raises PatternError for a unit it does not know (`Wavelength (cm): ...`): a guess would be wrong."""
  m = _HEADER_WAVELENGTH.search(line)
  if not m:
    return None
  value = float(m.group(2).replace(',', '.'))  # 1,5406 in a header written with decimal commas
  between, after = m.group(1), m.group(3).strip().strip('.:;,()[]')
  unit = None
  for text in (after, between):
    words = re.findall(r'[^\W\d_]+', text)
    other = next((w for w in words if w.lower() in _OTHER_UNITS), None)
    if other:
      raise PatternError(f'{path}: the header gives the wavelength in {other!r} ({line.strip()[:60]!r}); the units '
                         'read are Å, nm, pm, keV and eV')
    u = _UNIT.search(text)
    if u:
      unit = u.group(1)
      break
  if unit is None:
    return value
  key = unit if unit in _LENGTH_UNITS else unit.lower()
  if key in _ENERGY_UNITS:
    return _ENERGY_UNITS[key] / value if value > 0 else math.nan
  return value * _LENGTH_UNITS.get(key, 1.0)


def _decode(path: str, raw: bytes) -> tuple[str, tuple[str, ...]]:
  """Text of a file: UTF-8 (BOM or not), UTF-16 with a BOM, else Windows-1252 / Latin-1 with a warning (files
  from Windows instrument software: a ° or Å in the header). Raises UnicodeDecodeError for binary content."""
  if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
    return raw.decode('utf-16'), ()
  if raw.startswith(codecs.BOM_UTF8):
    return raw[len(codecs.BOM_UTF8):].decode('utf-8'), ()
  controls = sum(raw.count(bytes([c])) for c in (*range(0, 9), 11, *range(14, 32), 127))
  if controls > 0.01 * max(len(raw), 1) or b'\0' in raw:  # NUL bytes, control codes: not text in any encoding
    raise UnicodeDecodeError('utf-8', raw[:1], 0, 1, 'binary content')
  try:
    return raw.decode('utf-8'), ()
  except UnicodeDecodeError:
    pass
  try:
    text, encoding = raw.decode('cp1252'), 'Windows-1252'
  except UnicodeDecodeError:  # the five bytes cp1252 leaves undefined
    text, encoding = raw.decode('latin-1'), 'Latin-1'
  return text, (f'{path}: not UTF-8; read as {encoding} text',)


def _split(s: str) -> tuple[list[str], bool]:
  """The fields of a data line as written, and whether a comma inside a field can be a decimal comma or a
  thousands separator (False where commas separate the fields).

  A ';' separates fields (quoted or not); else quoted CSV fields (comma or tab between them); else whitespace (a
  trailing comma dropped: `3.0, 313.0`); a line with none of these is comma-separated (`3.00,313.0`)."""
  if ';' in s:  # spreadsheet exports quote their fields: "12,5";"1000"
    return [f.strip() for f in next(csv.reader([s], delimiter=';', skipinitialspace=True)) if f.strip()], True
  if '"' in s:
    return [f.strip() for f in next(csv.reader([s], delimiter='\t' if '\t' in s else ',')) if f.strip()], True
  parts = s.replace('\t', ' ').split()
  if len(parts) > 1:
    return [p.rstrip(',') for p in parts if p.rstrip(',')], True
  return [p.strip() for p in s.split(',') if p.strip()], False


def _fields(s: str, comma: str | None = 'decimal') -> list[str]:
  """The number fields of a data line, commas inside fields read as `comma` says: 'decimal' (3,00 -> 3.00) or
  'thousands' (1,030 -> 1030)."""
  parts, inside = _split(s)
  if not inside:
    return parts
  if comma == 'thousands':
    return [p.replace(',', '') for p in parts]
  return [p.replace(',', '.') if _DECIMAL_COMMA.fullmatch(p) else p for p in parts]


def _comma_meaning(path: str, lines: list[str], start: int) -> str | None:
  """What a comma inside a number field of the data means: None (no such comma), 'decimal' or 'thousands'.

  Decimal commas show as a field that cannot be a thousands group (`12,10`, `1234,5`) or a 2θ that would be
  180° or more; thousands separators as decimal points elsewhere in the numbers (`12.10 1,030`) or several groups
  (`1,234,567`). Fields like `1,030` alone could be either: refused, as are files that show both.
  Raises PatternError naming a line of each kind.
  """
  decimal = thousands = ambiguous = None
  for n, line in enumerate(lines[start:], start + 1):
    s = line.strip()
    if not s or s.startswith(_COMMENT):
      continue
    parts, inside = _split(s)
    if not inside:
      continue
    for column, f in enumerate(parts[:2]):
      if not re.search(r'\d,\d', f):
        if thousands is None and re.search(r'\d\.\d', f):
          thousands = (n, f)
        continue
      if not _THOUSANDS.fullmatch(f):
        decimal = decimal or (n, f)
        if thousands is None and '.' in f:  # 1.234,5: points and commas both
          thousands = (n, f)
      elif f.count(',') > 1 or '.' in f:
        thousands = thousands or (n, f)
      elif column == 0 and float(f.replace(',', '')) >= MAX_TWO_THETA:
        decimal = decimal or (n, f)
      else:
        ambiguous = ambiguous or (n, f)
    if decimal and thousands:
      raise PatternError(f'{path}: commas are used as decimal commas (line {decimal[0]}: {decimal[1]!r}) and as '
                         f'thousands separators (line {thousands[0]}: {thousands[1]!r}); cannot read the numbers '
                         'without guessing')
  if decimal:
    return 'decimal'
  if ambiguous and thousands:
    return 'thousands'
  if ambiguous:
    raise PatternError(f'{path}: line {ambiguous[0]}: cannot tell whether the comma in {ambiguous[1]!r} is a decimal '
                       'comma or a thousands separator; write the numbers without thousands separators')
  return None


# No-break and thin spaces between digit groups: thousands separators (1 030), never a column separator.
_SPACE_GROUPS = re.compile(r'(?<=\d)[\u00a0\u202f\u2009](?=\d{3}(?!\d))')


# Fortran's double-precision exponent (1.0D+03): the same number as 1.0E+03.
_FORTRAN_EXPONENT = re.compile(r'(?<![\w.+-])([+-]?(?:\d+\.?\d*|\.\d+))[dD]([+-]?\d+)(?![\w.])')
# A line that cannot be data (a header or comment) and a line that starts like numbers: blocks of data are told
# apart by the former between the latter.
# (NaN and inf rows are data: from_arrays drops a few of them with a warning.)
_NOT_DATA = re.compile(r'^[ \t]*(?!["\']?[+-]?(?:nan|inf))[^\s"\'+\-.\d][^\n]*$', re.M | re.I)
_DATA = re.compile(r'^[ \t]*["\']?[+-]?(?:\.?\d|nan|inf)', re.M | re.I)
# What a column header may call an x axis that is not 2θ (first field of the line above the data): refused,
# since reading it as 2θ would predict from nonsense. 2θ names (2theta, 2θ, tth, angle) pass.
_OTHER_AXES = ((re.compile(r'^d(?:$|[-_ ]?spacing|[-_ ]?value|\s*[(\[])|^dspacing', re.I), 'd-spacing'),
               (re.compile(r'^q(?:$|\s*[(\[_])', re.I), 'Q (momentum transfer)'),
               (re.compile(r'^(?:tof|time[-_ ]?of[-_ ]?flight)', re.I), 'time of flight'),
               (re.compile(r'^(?:e|energy)(?:$|\s*[(\[_])', re.I), 'energy'))
_TWO_THETA_NAMES = re.compile(r'2\s*th|2θ|tth|two[-_ ]?theta|angle', re.I)
_D_SPACING = re.compile(r'\bd[-_ ]?spacing\b', re.I)


def _read_text(path):
  with open(path, 'rb') as f:
    text, notes = _decode(path, f.read())
  if _SPACE_GROUPS.search(text):
    text = _SPACE_GROUPS.sub('', text)
    notes += (f'{path}: no-break spaces inside numbers read as thousands separators (1 030 as 1030)',)
  lines = text.splitlines()
  wl, start = None, None
  for n, line in enumerate(lines):  # headers until the first line of numbers
    s = line.strip()
    if not s:
      continue
    if not s.startswith(_COMMENT):
      try:
        [float(p) for p in _fields(_FORTRAN_EXPONENT.sub(r'\1E\2', s))[:2]]
        start = n
        break
      except ValueError:
        pass
    if wl is None:
      wl = header_wavelength(path, s)
  if start is None:
    raise PatternError(f'{path}: no numeric data')
  _check_axis(path, lines[:start])
  lines = lines[:start] + _fortran_exponents(lines[start:])
  lines, block_note = _first_block(path, lines, start)
  notes += block_note
  first = lines[start].strip()
  if ';' in first:
    style = 'semicolon'
  elif '"' in first:
    style = 'quoted'
  elif len(first.split()) > 1:
    style = 'whitespace'
  else:
    style = 'comma'
  comma = None
  if re.search(r'\d,\d', '\n'.join(lines[start:])) and style != 'comma':
    comma = _comma_meaning(path, lines, start)
  data = _fast_rows(lines[start:], style, comma)
  if data is None:  # irregular lines: line by line, naming the first bad one
    data = _slow_rows(path, lines, start, comma)
  if data.ndim != 2 or data.shape[1] < 2:
    raise PatternError(f'{path}: line {start + 1} has one column; expected 2θ and intensity')
  data, restart_note = _until_restart(path, data)
  notes += restart_note
  if comma == 'decimal':
    notes += (f'{path}: decimal commas read as decimal points',)
  elif comma == 'thousands':
    notes += (f'{path}: commas read as thousands separators (1,030 as 1030)',)
  return data[:, 0], data[:, 1], wl, notes


def _fortran_exponents(lines: list[str]) -> list[str]:
  """Data lines with Fortran's exponents (1.0D+03) written as 1.0E+03; the regular expression runs only where a D
  is there at all (a file of millions of lines otherwise pays seconds for nothing)."""
  tail = '\n'.join(lines)
  if 'd' not in tail and 'D' not in tail:
    return lines
  return _FORTRAN_EXPONENT.sub(r'\1E\2', tail).split('\n')


def _check_axis(path: str, header: list[str]) -> None:
  """Raises PatternError when the header says the first column is not 2θ (d-spacing, Q, time of flight, energy):
  the column header (the last header line) names it first, or a line speaks of d-spacing and none of 2θ."""
  named = [(n, l.strip()) for n, l in enumerate(header, 1) if l.strip()]
  if not named:
    return
  n, last = named[-1]
  if re.search(r'\d[.,]\d', last):  # a value (Energy 8.04 keV, a wavelength), not the columns' names
    last = ''
  label = re.split(r'[;,\t]|\s+', last.lstrip(''.join(c[0] for c in _COMMENT)).strip().strip('"\''))[0]
  label = label.strip('"\'')
  what = None if _TWO_THETA_NAMES.search(label) else next((w for rx, w in _OTHER_AXES if rx.search(label)), None)
  if what is None and not any(_TWO_THETA_NAMES.search(l) for _, l in named):
    n, line = next(((k, l) for k, l in named if _D_SPACING.search(l)), (n, None))
    what = 'd-spacing' if line else None
    last = line or last
  if what:
    raise PatternError(f'{path}: the header says the first column is {what} (line {n}: {last[:60]!r}), not 2θ; '
                       'export the scan against 2θ in degrees')


def _first_block(path: str, lines: list[str], start: int) -> tuple[list[str], tuple[str, ...]]:
  """The lines up to the end of the first block of data, and a note when more blocks follow (several scans in one
  file, each after its own header): those are not read, rather than mixed into one pattern."""
  rest = '\n'.join(lines[start:])
  blocks, end, pos = 1, None, 0
  while True:
    gap = _NOT_DATA.search(rest, pos)
    more = _DATA.search(rest, gap.end()) if gap else None
    if more is None:
      break
    if end is None:
      end = start + rest.count('\n', 0, gap.start())
    blocks += 1
    after = _NOT_DATA.search(rest, more.start())
    if after is None:
      break
    pos = after.start()
  if end is None:
    return lines, ()
  return lines[:end], (f'{path}: {blocks} blocks of data (several scans?); only the first read (lines {start + 1}-'
                       f'{end}), the one at line {end + 1} on left out',)


def _until_restart(path: str, data: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
  """The rows before the 2θ column starts again (a jump back over more than half the range, against the scan's
  direction: a second scan appended without a header), with a note; all rows when it never does."""
  tt = data[:, 0]
  finite = tt[np.isfinite(tt)]
  if len(finite) < 3:
    return data, ()
  step = np.diff(tt)  # NaN next to a NaN row: never a jump
  direction = 1.0 if np.median(np.diff(finite)) >= 0 else -1.0
  back = np.flatnonzero(step * direction < -0.5 * (finite.max() - finite.min()))
  if not back.size:
    return data, ()
  cut = int(back[0]) + 1
  return data[:cut], (f'{path}: 2θ starts again after {cut} points ({tt[cut - 1]:.4g}° -> {tt[cut]:.4g}°: several '
                      f'scans?); only the first {cut} points read',)


def _fast_rows(lines: list[str], style: str, comma: str | None) -> np.ndarray | None:
  """All rows at C speed when every line is plain numbers in one style (None otherwise)."""
  text = '\n'.join(lines)
  if style in ('semicolon', 'whitespace') and comma:
    text = text.replace(',', '.' if comma == 'decimal' else '')
  if style == 'semicolon':
    text = text.replace(';', ' ').replace('"', ' ')
  elif style == 'comma':
    text = text.replace(',', ' ')
  elif style == 'quoted':
    return None  # field by field through the csv module
  try:
    data = np.loadtxt(io.StringIO(text), comments=list(_COMMENT), ndmin=2, dtype=np.float64)
  except ValueError:
    return None
  return data if data.shape[1] >= 2 else None


def _slow_rows(path: str, lines: list[str], start: int, comma: str | None = 'decimal') -> np.ndarray:
  rows = []
  for n, line in enumerate(lines[start:], start + 1):
    s = line.strip()
    if not s or s.startswith(_COMMENT):
      continue
    parts = _fields(s, comma)
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
      unit = (k1.get('unit') or 'Angstrom').strip()
      if unit.lower() not in _LENGTH_UNITS:
        raise PatternError(f'{path}: <kAlpha1 unit="{unit}">: the units read are Angstrom, nm and pm')
      wl *= _LENGTH_UNITS[unit.lower()]
    except PatternError as e:
      wl = None
      notes.append(f'{e}; the wavelength is not taken from the file')
  scan, more = _first_scan(path, root, q, ns)
  if more:
    notes.append(more)
  counts = scan.find(q('intensities'), ns)
  if counts is None:
    counts = scan.find(q('counts'), ns)
  if counts is None:
    raise PatternError(f'{path}: no <intensities> or <counts> in the XRDML')
  if not (counts.text or '').strip():
    raise PatternError(f'{path}: <{counts.tag.split("}")[-1]}> is empty')
  y = np.array(counts.text.split(), dtype=float)
  for positions in scan.iter(f'{{{ns["x"]}}}positions' if ns else 'positions'):
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


# Scan axes along which 2θ moves (a 2θ or coupled θ-2θ scan); others (Omega: a rocking curve, Phi, Chi, X, ...)
# hold 2θ still and are no powder pattern.
_TWO_THETA_SCANS = ('gonio', '2theta', '2theta-omega', 'omega-2theta', '2theta-theta', 'theta-2theta')


def _first_scan(path, root, q, ns):
  """(the element of the first scan of an XRDML, a note when the file holds more); PatternError for a scan along
  another axis than 2θ (its counts would be read as a pattern over a 2θ that does not move)."""
  scans = root.findall(q('scan'), ns)
  if not scans:
    return root, None
  axis = (scans[0].get('scanAxis') or 'Gonio').strip()
  if axis.lower().replace(' ', '') not in _TWO_THETA_SCANS:
    raise PatternError(f'{path}: the scan runs along {axis}, not 2θ (scanAxis="{axis}": a rocking curve or another '
                       'non-powder scan); give a 2θ or Gonio scan')
  more = None
  if len(scans) > 1:
    more = f'{path}: {len(scans)} scans in the file; only the first read'
  return scans[0], more


def _read_gsas(path):
  with open(path, 'rb') as f:
    text, notes = _decode(path, f.read())
  lines = text.splitlines()
  wl = None
  for line in lines[:5]:
    wl = header_wavelength(path, line) or wl
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
    return data[:, 0] / 100.0, data[:, 1], wl, notes  # positions in centidegrees
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
    return (start + step * np.arange(len(y))) / 100.0, y, wl, notes
  raise PatternError(f'{path}: GSAS bank type {fields[-1]!r} not supported (FXYE, FXY, STD are)')
