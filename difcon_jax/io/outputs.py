"""Writing outputs: the one helper every command writes its files through (predict, evaluate, export, hand,
data.build, the trainer's logs).

- `clashes(outputs, inputs, protected)`, before any work: an output that is one of the inputs, a file of the model
  or corpus being read (`protected`), or another output of the same run is refused, one line each. Paths are
  compared as the files they name (symlinks followed, hard links seen as the same file).
- `write_rows(path, rows)`: a CSV of dict rows (the union of their keys as columns, in first-seen order), through
  `write`: predict's, evaluate's and index's tables. Text that cannot be written as UTF-8 (a file name with bytes
  that are not UTF-8, which Python holds as lone surrogates) is escaped (`escape`: b'\xff' as `\xff`), so one
  odd name never costs the other rows.
- `write(path, mode)`: a regular file is written to a temporary sibling and renamed over the target when complete,
  so a kill leaves the old file or the new one, never half of one; through a symlink the target is replaced and the
  link kept; its folder is made if missing (the commands check their outputs without creating anything). Character
  devices, FIFOs and links to them (/dev/null, /dev/stdout -> /proc/self/fd/1 -> a pipe or a
  terminal) are written into as streams, never replaced by a file. Cloud paths (gs://) are written directly: an
  object appears only once its upload is complete.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import stat
import sys
import tempfile
from typing import Iterable, Sequence

from etils import epath


def is_local(path) -> bool:
  """False for cloud storage (gs://bucket/...) and other URIs."""
  return '://' not in os.fspath(path)


def kind(path) -> str:
  """'missing', 'file', 'folder', 'stream' (character device, FIFO, or a file reached through a file descriptor
  such as /dev/stdout: written into, never replaced) or 'other' (block device, socket: not an output). Symlinks
  are followed."""
  try:
    mode = os.stat(path).st_mode
  except FileNotFoundError:
    return 'missing'
  except OSError:
    return 'other'
  if stat.S_ISDIR(mode):
    return 'folder'
  if stat.S_ISREG(mode):
    return 'stream' if _through_fd(path) else 'file'
  if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
    return 'stream'
  return 'other'


_FD = re.compile(r'/(?:proc/self|dev)/fd/(\d+)')
_STANDARD = {'/dev/stdout': 1, '/dev/stderr': 2}


def _through_fd(path) -> bool:
  """True when path is, or links through, a device or a file descriptor (/dev/stdout -> /proc/self/fd/1,
  /dev/fd/3): the file the shell opened for us, written into rather than replaced (even a regular file)."""
  path = os.path.abspath(os.fspath(path))
  for _ in range(40):  # the kernel's limit on links followed
    if path.startswith(('/proc/', '/dev/')):
      return True
    if not os.path.islink(path):
      return False
    path = os.path.join(os.path.dirname(path), os.readlink(path))
  return False


def descriptor(path) -> int | None:
  """This process's file descriptor that path names (/dev/stdout, /dev/fd/3, a link to /proc/self/fd/1), else
  None. Writing through it (not a new open) keeps one file offset with what the process prints there."""
  path = os.path.abspath(os.fspath(path))
  for _ in range(40):
    if path in _STANDARD:
      return _STANDARD[path]
    m = _FD.fullmatch(path)
    if m:
      return int(m.group(1))
    if not os.path.islink(path):
      return None
    path = os.path.join(os.path.dirname(path), os.readlink(path))
  return None


def _key(path) -> tuple:
  """What a path names: (device, inode) of an existing local file, else its resolved absolute path."""
  path = os.fspath(path)
  if not is_local(path):
    return ('uri', path.rstrip('/'))
  try:
    st = os.stat(path)
    return ('inode', st.st_dev, st.st_ino)
  except OSError:
    return ('path', os.path.realpath(path))


def _inside(path, folder) -> bool:
  """True when path is folder or lies below it (both resolved)."""
  if not (is_local(path) and is_local(folder)):
    return os.fspath(path).rstrip('/') == os.fspath(folder).rstrip('/') or \
        os.fspath(path).startswith(os.fspath(folder).rstrip('/') + '/')
  p, f = os.path.realpath(path), os.path.realpath(folder)
  return p == f or p.startswith(f.rstrip(os.sep) + os.sep)


def clashes(outputs: dict[str, str | None], inputs: Iterable[str] = (),
            protected: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str, str]]:
  """(flag, path, why) of every output that would destroy something the run reads or writes.

  outputs: {flag: path} (None or '' for an output not asked for); for several files of one flag (an output
    folder's files) use keys 'flag' + anything after a space, e.g. 'out metrics.json': the flag is the first word.
  inputs: files the run reads (an output naming one of them is refused).
  protected: (path, what) of files or folders that must not be written into (a model's config.json, its
    checkpoints/ folder, a corpus); an output equal to or below one is refused.
  Streams (character devices, FIFOs) are exempt: writing into them destroys nothing.
  """
  found = []
  seen = {}
  input_keys = {}
  for p in inputs:
    input_keys.setdefault(_key(p), p)
  for name, path in outputs.items():
    if not path:
      continue
    flag = name.split(' ')[0]
    if is_local(path) and kind(path) == 'stream':
      continue
    key = _key(path)
    if key in input_keys:
      found.append((flag, path, f'an output must not be an input: this is the input {input_keys[key]}'))
      continue
    hit = next((what for where, what in protected if _key(where) == key or _inside(path, where)), None)
    if hit:
      found.append((flag, path, f'an output must not overwrite {hit}'))
      continue
    if key in seen:
      found.append((flag, path, f'the same file as the output of --{seen[key]}; give each output its own path'))
      continue
    seen[key] = flag
  return found


class OutputError(OSError):
  """An output that could not be written (a full disk, a closed pipe...); the message names it, and says that a
  file that was there is unchanged."""


@contextlib.contextmanager
def write(path, mode: str = 'w', **kwargs):
  """Opens `path` for writing: atomically for a regular file (a temporary sibling renamed over it when the block
  ends without an exception), as a stream for a character device or a FIFO (also through a symlink, like
  /dev/stdout), directly for cloud storage.

  Raises:
    OutputError: the system refused to write (no space left, a device that takes nothing); names the path.
  """
  path = os.fspath(path)
  if not is_local(path):
    kwargs.pop('newline', None)
    with epath.Path(path).open(mode, **kwargs) as f:
      yield f
    return
  if kind(path) == 'stream':
    fd = descriptor(path)
    with _named(path, 'written into'):
      if fd is not None:  # our own stdout (a pipe, a terminal, or the file of `> out.csv`): after what we printed
        for stream in (sys.stdout, sys.stderr):
          stream.flush()
        with os.fdopen(os.dup(fd), mode, **kwargs) as f:
          yield f
      else:
        with open(path, mode, **kwargs) as f:
          yield f
    return
  target = os.path.realpath(path)  # through a symlink: replace its target, keep the link
  with _named(path, 'written; an earlier file there is unchanged'):
    os.makedirs(os.path.dirname(target), exist_ok=True)  # checks create nothing: the folder comes with its file
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=f'.{os.path.basename(target)}.', suffix='.tmp')
  try:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it the permissions open() would
    with _named(path, 'written; an earlier file there is unchanged'):
      with os.fdopen(fd, mode, **kwargs) as f:
        yield f
      os.replace(tmp, target)
  except BaseException:
    with contextlib.suppress(OSError):
      os.unlink(tmp)
    raise


def escape(text: str) -> str:
  """text that can be written as UTF-8: the bytes of a file name that are not UTF-8 (held by Python as lone
  surrogates, os.fsdecode's surrogateescape) written as `\xff`, anything else unchanged."""
  try:
    text.encode('utf-8')
    return text
  except UnicodeEncodeError:
    return text.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace') \
        if _only_escaped_bytes(text) else text.encode('utf-8', 'backslashreplace').decode('utf-8')


def _only_escaped_bytes(text: str) -> bool:
  """Whether every lone surrogate in text is one that surrogateescape made from a byte (U+DC80-U+DCFF)."""
  return all(not 0xd800 <= ord(c) <= 0xdfff or 0xdc80 <= ord(c) <= 0xdcff for c in text)


def _escaped(value):
  return escape(value) if isinstance(value, str) else value


def write_rows(path, rows: Sequence[dict]) -> None:
  """Writes dict rows as a CSV through `write` (atomic for a regular file); the columns are the rows' keys in the
  order first seen; text that is not valid UTF-8 escaped (`escape`). Raises OutputError as `write` does."""
  rows = [{_escaped(k): _escaped(v) for k, v in r.items()} for r in rows]
  fields = list(dict.fromkeys(k for r in rows for k in r))
  with write(path, newline='') as f:
    writer = csv.DictWriter(f, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)


@contextlib.contextmanager
def _named(path: str, what: str):
  """OSError of the system (not of the caller's own OutputError) -> OutputError naming the path."""
  try:
    yield
  except OutputError:
    raise
  except OSError as e:
    raise OutputError(f'{path}: cannot be {what} ({e.strerror or e})') from None


def path(p) -> epath.Path:
  """An epath.Path of a local or cloud path; local ones made absolute (Orbax wants absolute paths)."""
  return epath.Path(os.path.abspath(p) if is_local(p) else p)


def can_write_folder(path: str) -> bool:
  """Whether a folder at path exists or could be created, and can be written. Nothing is created: the nearest
  folder that exists is probed (a temporary file made and removed there), so a command refused for another flag
  leaves no folder behind; the folders are made when the first file is written (io.outputs.write)."""
  existing = os.path.abspath(path)
  while not os.path.lexists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):  # a file (or a dangling link) where a folder must be
    return False
  try:
    with tempfile.TemporaryFile(dir=existing):
      pass
    return True
  except OSError:
    return False
