"""What the command-line programs share: checking flag values before any work, output locations, atomic writes.

Each CLI's main collects the problems of its flags with `Checks` and stops with one line per bad flag (saying what
is allowed) and exit status 2 before reading or computing anything. Outputs are checked (and their folders
created) first and written atomically, so a run never does its work and then loses it, or leaves half a file.
Output and workdir paths may be local or in cloud storage (gs://, s3://): every read and write of them goes
through etils.epath (`path`).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile

from etils import epath

from difcon_jax.crystallography import wavelength as wavelength_lib

USAGE_ERROR = 2  # exit status of a refused command line
MAX_WAVELENGTH = 10.0  # Å; laboratory and synchrotron X-rays are 0.1-3 Å


def is_local(path) -> bool:
  """False for cloud storage (gs://bucket/...) and other URIs."""
  return '://' not in os.fspath(path)


def path(p) -> epath.Path:
  """An epath.Path of a local or cloud path; local ones made absolute (Orbax wants absolute paths)."""
  return epath.Path(os.path.abspath(p) if is_local(p) else p)


class Checks:
  """Collects '--flag=value: what is allowed' lines; `report()` prints them and says whether any failed."""

  def __init__(self):
    self.errors: list[str] = []

  def require(self, ok: bool, flag: str, value, allowed: str) -> bool:
    if not ok:
      self.errors.append(f'--{flag}={value}: {allowed}')
    return ok

  def number(self, flag: str, value, lo=None, hi=None, lo_open=False, hi_open=False, integer=False,
             allow_none=False) -> bool:
    """value must be a finite number in [lo, hi] (open ends where asked)."""
    if value is None and allow_none:
      return True
    parts = []
    if lo is not None:
      parts.append(f'{"above" if lo_open else "at least"} {lo:g}')
    if hi is not None:
      parts.append(f'{"below" if hi_open else "at most"} {hi:g}')
    allowed = f'{"an integer" if integer else "a number"}{" " + " and ".join(parts) if parts else ""}'
    try:
      ok = value is not None and math.isfinite(float(value)) and (not integer or float(value) == int(value))
    except (TypeError, ValueError):
      ok = False
    if ok:
      v = float(value)
      ok = ((lo is None or (v > lo if lo_open else v >= lo)) and (hi is None or (v < hi if hi_open else v <= hi)))
    return self.require(ok, flag, value, allowed)

  def wavelength(self, wavelength: float | None, anode: str | None, wavelength_flag: str = 'wavelength',
                 allow_none: bool = False) -> float | None:
    """The wavelength (Å) from --anode or --wavelength; records an error for a bad one."""
    if anode is not None:
      try:
        return wavelength_lib.anode_wavelength(anode)
      except ValueError:
        self.require(False, 'anode', anode, f'one of {", ".join(wavelength_lib.ANODES)}')
        return None
    if self.number(wavelength_flag, wavelength, 0, MAX_WAVELENGTH, lo_open=True, allow_none=allow_none):
      return wavelength
    return None

  def output_file(self, flag: str, path: str | None, allow_none: bool = False) -> bool:
    """A file to be written: its folder is created; refused if it is a folder or the folder is not writable."""
    if path is None or path == '':
      return self.require(allow_none, flag, path, 'a file path')
    if not is_local(path):
      return self.require(_writable_remote(epath.Path(path).parent), flag, path, 'a path that can be written')
    if os.path.isdir(path):
      return self.require(False, flag, path, 'a file path, not a folder')
    return self.require(_writable_dir(os.path.dirname(os.path.abspath(path))), flag, path,
                        'a file in a folder that exists or can be created, and can be written')

  def output_dir(self, flag: str, path: str | None) -> bool:
    """A folder to be written into: created if missing; refused if it is a file or not writable."""
    if not path:
      return self.require(False, flag, path, 'a folder path')
    if not is_local(path):
      return self.require(_writable_remote(epath.Path(path)), flag, path, 'a folder that can be written')
    if os.path.exists(path) and not os.path.isdir(path):
      return self.require(False, flag, path, 'a folder, not a file')
    return self.require(_writable_dir(path), flag, path, 'a folder that exists or can be created, and can be written')

  def report(self, program: str) -> bool:
    """Prints the errors (one line each) to stderr; True when there were any."""
    for e in self.errors:
      print(f'{program}: error: {e}', file=sys.stderr)
    return bool(self.errors)


def _writable_dir(path: str) -> bool:
  try:
    os.makedirs(path, exist_ok=True)
    with tempfile.TemporaryFile(dir=path):
      pass
    return True
  except OSError:
    return False


def _writable_remote(folder: epath.Path) -> bool:
  try:
    folder.mkdir(parents=True, exist_ok=True)
    return not folder.exists() or folder.is_dir()
  except OSError:
    return False


@contextlib.contextmanager
def atomic_write(path: str, mode: str = 'w', **kwargs):
  """Opens a temporary file next to `path`; on success it replaces `path` in one step (never half written).

  In cloud storage an object appears only once its upload is complete, so there the file is written directly."""
  if not is_local(path):
    kwargs.pop('newline', None)
    with epath.Path(path).open(mode, **kwargs) as f:
      yield f
    return
  folder = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'.{os.path.basename(path)}.', suffix='.tmp')
  try:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it the permissions open() would
    with os.fdopen(fd, mode, **kwargs) as f:
      yield f
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.unlink(tmp)
    raise


def quiet_broken_pipe() -> None:
  """After a BrokenPipeError (output piped into `head`): point stdout at /dev/null so exit does not complain."""
  with contextlib.suppress(OSError, ValueError):
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
