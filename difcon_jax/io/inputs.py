"""The pattern files a command reads: files, folders (their pattern files, recursively) and globs, with a line for
each thing passed over. Nothing is opened here; reading the files is io/patterns.py's.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import glob
import os

from difcon_jax.io import patterns


@dataclasses.dataclass(frozen=True)
class Inputs:
  """What `find_inputs` found: the pattern files to read, and what it passed over."""
  paths: list[str]  # sorted, one per real file
  skipped: list[str]  # one line each, starting with the path: a file in a folder that is no pattern file, a folder
  # or glob with no pattern file, another path to a file already listed (hidden names are passed over unlisted)


def find_inputs(inputs: list[str]) -> Inputs:
  """Files, folders (their pattern files, recursively) and globs -> the paths to read and the lines of what was
  passed over (`Inputs.skipped`: a command prints them, so that no file is left out without a word).

  Symlinked folders are followed, but a folder already visited (a link back up the tree, `self -> .`) is not
  entered again, so loops end; a file reached by several paths is kept once (its first path in sorted order).
  Nothing is opened here: FIFOs and devices are listed like files and refused unread by patterns.read_pattern. A
  file named on the command line is always listed, whatever its suffix (patterns.read_pattern reads unknown suffixes
  as text); inside a folder, only the suffixes of patterns.SUFFIXES are read and the other files are listed as
  skipped.
  """
  out, skipped = [], []
  for item in inputs:
    if os.path.isdir(item):
      found = _folder_files(item, skipped)
      if not found:
        skipped.append(f'{item}: a folder with no pattern file ({", ".join(patterns.SUFFIXES)}); nothing read from it')
      out += found
    elif any(c in item for c in '*?['):
      found = _glob(item)
      if not found:
        skipped.append(f'{item}: no file matches this pattern')
      out += found
    else:
      out.append(item)
  unique, seen = [], {}
  for path in sorted(dict.fromkeys(out)):
    real = os.path.realpath(path)
    if real in seen:
      skipped.append(f'{path}: the same file as {seen[real]}; read once')
    else:
      seen[real] = path
      unique.append(path)
  return Inputs(unique, skipped)


def expand_inputs(inputs: list[str]) -> list[str]:
  """The paths `find_inputs` finds (without the lines of what it passed over)."""
  return find_inputs(inputs).paths


def _folder_files(folder: str, skipped: list[str]) -> list[str]:
  """The pattern files below folder; the other files (not hidden) appended to `skipped` with the reason."""
  found = []
  for path in _walk(folder):
    name = os.path.basename(path)
    if name.lower().endswith(patterns.SUFFIXES):
      found.append(path)
    elif not name.startswith('.') and not os.path.isdir(path):
      suffix = os.path.splitext(name)[1]
      why = f'suffix {suffix!r} is not a pattern file\'s' if suffix else 'no suffix'
      skipped.append(f'{path}: {why} ({", ".join(patterns.SUFFIXES)}); skipped (name it on the command line to '
                     'read it as text)')
  return found


def _walk(root: str, folders: bool = False):
  """Every path below root (files; folders too if asked), following symlinked folders but entering each real
  folder once."""
  seen = set()
  for dirpath, dirnames, names in os.walk(root, followlinks=True):
    try:
      st = os.stat(dirpath)
    except OSError:
      dirnames[:] = []
      continue
    if (st.st_dev, st.st_ino) in seen:  # a loop: this folder was listed already
      dirnames[:] = []
      continue
    seen.add((st.st_dev, st.st_ino))
    dirnames.sort()
    if folders:
      yield from (os.path.join(dirpath, n) for n in dirnames)
    yield from (os.path.join(dirpath, n) for n in sorted(names))


def _glob(pattern: str) -> list[str]:
  """glob.glob(pattern, recursive=True), with `**` walking through symlinked folders without looping."""
  if '**' not in pattern:
    return glob.glob(pattern)  # one level per component: finite whatever the links
  parts = pattern.split(os.sep)
  fixed = next(i for i, part in enumerate(parts) if any(c in part for c in '*?['))
  root = os.sep.join(parts[:fixed]) or ('' if not pattern.startswith(os.sep) else os.sep)
  wanted = parts[fixed:]
  found = []
  for path in _walk(root or os.curdir, folders=True):
    rel = os.path.relpath(path, root or os.curdir).split(os.sep)
    if _match(rel, wanted):
      found.append(os.path.join(root, *rel) if root else os.path.join(*rel))
  return found


def _match(names: list[str], pattern: list[str]) -> bool:
  """Path components against glob components ('**': any number of them); hidden names only by a pattern that
  starts with '.', as glob."""
  if not pattern:
    return not names
  head = pattern[0]
  if head == '**':
    return any(_match(names[i:], pattern[1:]) for i in range(len(names) + 1)
               if not any(n.startswith('.') for n in names[:i]))
  return bool(names) and (not names[0].startswith('.') or head.startswith('.')) and \
      fnmatch.fnmatchcase(names[0], head) and _match(names[1:], pattern[1:])
