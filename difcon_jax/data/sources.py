"""Where a corpus build reads its CIFs: a folder, or an archive of CIFs as databases ship them.

A folder is walked for .cif and .cif.gz files (sorted, so that the same folder gives the same corpus). An archive
(.tar, .tar.gz/.tgz, .tar.xz/.txz, .tar.bz2/.tbz2, .zip) is read member by member without unpacking it to disk: a
tar as a stream in its own order (a compressed tar has no cheap random access), a zip in sorted order. Either way
the order is a function of the input alone.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import tarfile
import zipfile
from typing import Iterator

from difcon_jax.data import corpus

TAR_SUFFIXES = ('.tar', '.tar.gz', '.tgz', '.tar.xz', '.txz', '.tar.bz2', '.tbz2')
ARCHIVE_SUFFIXES = TAR_SUFFIXES + ('.zip',)
CIF_SUFFIXES = ('.cif', '.cif.gz')


class SourceError(ValueError):
  """A structure source that cannot be read (the message names it and the problem)."""


@dataclasses.dataclass(frozen=True)
class Item:
  """One CIF of a source. `text` holds an archive member's bytes (None: read the file at `path`)."""
  source_id: str  # the name recorded in the corpus: the path within the folder or the archive
  path: str  # what an error names: the file, or ARCHIVE:MEMBER
  text: bytes | None = None


def is_archive(path: str) -> bool:
  return os.path.isfile(path) and path.lower().endswith(ARCHIVE_SUFFIXES)


def check(path: str) -> str | None:
  """Why `path` is not a source of CIFs (None when it is a folder or a readable archive)."""
  if os.path.isdir(path):
    return None
  if not os.path.exists(path):
    return 'no such folder or archive'
  if not path.lower().endswith(ARCHIVE_SUFFIXES):
    return f'neither a folder nor an archive ({", ".join(ARCHIVE_SUFFIXES)})'
  try:
    if path.lower().endswith('.zip'):
      with zipfile.ZipFile(path) as z:
        z.namelist()
    else:
      with tarfile.open(path, 'r:*') as t:
        t.next()
  except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile) as e:
    return f'not a readable archive ({e})'
  return None


def _is_cif(name: str) -> bool:
  return name.lower().endswith(CIF_SUFFIXES) and not os.path.basename(name).startswith('._')


def _member_text(name: str, data: bytes) -> bytes:
  return gzip.decompress(data) if name.lower().endswith('.gz') else data


def items(path: str) -> Iterator[Item]:
  """Every CIF of the folder or archive `path`, in a fixed order.

  Raises:
    SourceError: the archive is damaged (named with the member where reading stopped).
  """
  if os.path.isdir(path):
    for p in corpus.find_cifs(path):
      yield Item(os.path.relpath(p, path), p)
    return
  last = None
  try:
    if path.lower().endswith('.zip'):
      with zipfile.ZipFile(path) as z:
        for name in sorted(n for n in z.namelist() if _is_cif(n)):
          last = name
          yield Item(name, f'{path}:{name}', _member_text(name, z.read(name)))
      return
    with tarfile.open(path, 'r|*') as t:
      for member in t:
        if member.isfile() and _is_cif(member.name):
          last = member.name
          f = t.extractfile(member)
          yield Item(member.name, f'{path}:{member.name}', _member_text(member.name, f.read()))
  except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile) as e:
    where = f' after {last}' if last else ''
    raise SourceError(f'{path}: the archive is damaged{where} ({e})') from None


def count(path: str) -> int:
  """Number of CIFs in the source (an archive is read once through, without decompressing its members' bytes
  into memory beyond one at a time)."""
  if os.path.isdir(path):
    return len(corpus.find_cifs(path))
  try:
    if path.lower().endswith('.zip'):
      with zipfile.ZipFile(path) as z:
        return sum(_is_cif(n) for n in z.namelist())
    with tarfile.open(path, 'r|*') as t:
      return sum(m.isfile() and _is_cif(m.name) for m in t)
  except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile) as e:
    raise SourceError(f'{path}: the archive is damaged ({e})') from None


def digest(path: str, h: 'hashlib._Hash') -> None:
  """Feeds what the source holds into `h`: each CIF's name and bytes for a folder, the archive's bytes."""
  if os.path.isdir(path):
    for p in corpus.find_cifs(path):
      h.update(os.path.relpath(p, path).encode() + b'\0')
      with open(p, 'rb') as f:
        h.update(hashlib.sha256(f.read()).digest())
    return
  h.update(os.path.basename(path).encode() + b'\0')
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      h.update(block)
