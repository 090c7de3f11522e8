"""What the command-line programs share: checking flag values before any work, output locations, atomic writes.

Each CLI's main collects the problems of its flags with `Checks` and stops with one line per bad flag (saying what
is allowed) and exit status 2 before reading or computing anything. Outputs are checked first, without creating
anything (a refused command line leaves no folder behind), and written atomically, their folders made with them,
so a run never does its work and then loses it, or leaves half a file.
Output and workdir paths may be local or in cloud storage (gs://, s3://): every read and write of them goes
through etils.epath (`io.outputs.path`). Every command parses its flags with `parse_flags`: `--help` exits 0 and lists every
flag of the package the command defined (also those defined by helpers here, like --input), a flag may be spelt
with dashes (--top-k for --top_k; help shows one spelling), and the libraries' log noise is hidden unless
--verbosity is given.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys

from absl import app
from absl import flags
from absl import logging
from etils import epath

from difcon_jax.crystallography import wavelength as wavelength_lib
from difcon_jax.io import outputs

USAGE_ERROR = 2  # exit status of a refused command line
MAX_WAVELENGTH = 10.0  # Å; laboratory and synchrotron X-rays are 0.1-3 Å


def define_pattern_input_flags() -> None:
  """--input, --wavelength and --anode of the commands that read measured patterns (predict, index)."""
  flags.DEFINE_multi_string('input', [], 'Pattern file, folder or glob; repeat or separate with commas.')
  flags.DEFINE_float('wavelength', None, 'Measurement wavelength, Å (else the file\'s, else Cu Kα).')
  flags.DEFINE_string('anode', None, 'Cu, Mo, Co, Fe, Cr or Ag (instead of --wavelength).')


def pattern_inputs(argv: list[str]) -> list[str]:
  """The paths given with --input (repeated or comma-separated) and as positional arguments (argv[1:])."""
  return [p for item in flags.FLAGS.input for p in item.split(',') if p] + list(argv[1:])


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
                 allow_none: bool = False, wavelength_given: bool | None = None) -> float | None:
    """The wavelength (Å) from --anode or --wavelength; records an error for a bad one, and for both given
    (wavelength_given: whether --wavelength was on the command line; None: whether it is not None)."""
    if anode is not None:
      try:
        from_anode = wavelength_lib.anode_wavelength(anode)
      except ValueError:
        self.require(False, 'anode', anode, f'one of {", ".join(wavelength_lib.ANODES)}')
        return None
      if wavelength is not None if wavelength_given is None else wavelength_given:
        self.require(False, 'anode', anode, f'give --anode or --{wavelength_flag}, not both (--{wavelength_flag}='
                     f'{wavelength} was given too)')
        return None
      return from_anode
    if self.number(wavelength_flag, wavelength, 0, MAX_WAVELENGTH, lo_open=True, allow_none=allow_none):
      return wavelength
    return None

  def output_file(self, flag: str, path: str | None, allow_none: bool = False) -> bool:
    """A file to be written: refused if it is a folder or its folder cannot be created or written (nothing is
    created here: io.outputs.write makes the folder with the file)."""
    if path is None or path == '':
      return self.require(allow_none, flag, path, 'a file path')
    if not outputs.is_local(path):
      return self.require(_writable_remote(epath.Path(path).parent), flag, path, 'a path that can be written')
    if os.path.isdir(path):
      return self.require(False, flag, path, 'a file path, not a folder')
    if outputs.kind(path) == 'stream':  # /dev/null, a FIFO, /dev/stdout: written into as a stream
      return self.require(os.access(path, os.W_OK), flag, path, 'a device or FIFO that can be written')
    if outputs.kind(path) == 'other':
      return self.require(False, flag, path, 'a regular file, a character device or a FIFO (not a socket or a '
                          'block device)')
    return self.require(outputs.can_write_folder(os.path.dirname(os.path.abspath(path))), flag, path,
                        'a file in a folder that exists or can be created, and can be written')

  def output_dir(self, flag: str, path: str | None) -> bool:
    """A folder to be written into: refused if it is a file or cannot be created or written (nothing is created
    here; the command makes it when it writes, after every check passed)."""
    if not path:
      return self.require(False, flag, path, 'a folder path')
    if not outputs.is_local(path):
      return self.require(_writable_remote(epath.Path(path)), flag, path, 'a folder that can be written')
    if os.path.exists(path) and not os.path.isdir(path):
      return self.require(False, flag, path, 'a folder, not a file')
    return self.require(outputs.can_write_folder(path), flag, path,
                        'a folder that exists or can be created, and can be written')

  def report(self, program: str) -> bool:
    """Prints the errors (one line each) to stderr; True when there were any."""
    for e in self.errors:
      print(f'{program}: error: {e}', file=sys.stderr)
    return bool(self.errors)


def _writable_remote(folder: epath.Path) -> bool:
  """Cloud storage: a path that is not an object (a file); nothing is created before the first write."""
  try:
    return not folder.exists() or folder.is_dir()
  except OSError:
    return False


def quiet_broken_pipe() -> None:
  """After a BrokenPipeError (output piped into `head`): point stdout at /dev/null so exit does not complain."""
  with contextlib.suppress(OSError, ValueError):
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


HELP_FLAGS = ('-h', '-?', '-help', '--help', '-helpshort', '--helpshort', '-helpfull', '--helpfull', '-helpxml',
              '--helpxml')
# Libraries whose INFO records (JAX probing for a TPU, Orbax's steps of every save, TFDS's writer) are noise for
# a user; for Orbax and TFDS their warnings too (Orbax warns about missing metadata on every resume). Errors
# always show, and --verbosity (or -v) shows everything.
QUIET_BELOW_WARNING = ('jax', 'jaxlib', 'flax', 'grain', 'etils', 'orbax', 'tensorflow_datasets')
QUIET_BELOW_ERROR = ('orbax', 'tensorflow_datasets')


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parser for every command (app.run(main, flags_parser=cli.parse_flags)).

  Differences: `--help` (and --helpfull, -h) exits with status 0 where absl exits 1; a defined flag spelt with
  dashes is read as its one spelling (--top-k=3 as --top_k=3), so help lists each flag once; and, unless
  --verbosity is given, the libraries' log noise is hidden (`quiet_library_logs`).
  """
  argv = [argv[0]] + _underscored(argv[1:])
  show_package_flags_in_help()
  try:
    rest = app.parse_flags_with_usage(argv)
  except SystemExit as e:
    if e.code == 1 and any(a in HELP_FLAGS for a in argv[1:]):
      sys.exit(0)  # help was asked for and given
    raise
  quiet_library_logs()
  return rest


def show_package_flags_in_help() -> None:
  """Makes every flag defined by a difcon_jax module a key flag of the main program, so that --help lists it.

  absl's --help shows only the flags the main module defined itself; a flag a helper defines for several commands
  (define_pattern_input_flags: --input, --wavelength, --anode) would show under --helpfull only. The libraries'
  own flags (absl's logging, JAX's) stay under --helpfull."""
  main = sys.argv[0]
  for module, defined in flags.FLAGS.flags_by_module_dict().items():
    if module != main and (module == 'difcon_jax' or module.startswith('difcon_jax.')):
      for flag in defined:
        flags.FLAGS.register_key_flag_for_module(main, flag)


def _underscored(args: list[str]) -> list[str]:
  """--some-flag[=v] -> --some_flag[=v] where some_flag is a defined flag (arguments after '--' untouched)."""
  out = list(args)
  for i, a in enumerate(out):
    if a == '--':
      break
    dashes = len(a) - len(a.lstrip('-'))
    name, eq, value = a[dashes:].partition('=')
    if dashes in (1, 2) and '-' in name:
      for candidate in (name, name[2:] if name.startswith('no') else None):
        if candidate and candidate.replace('-', '_') in flags.FLAGS and candidate not in flags.FLAGS:
          out[i] = a[:dashes] + name.replace('-', '_') + eq + value
          break
  return out


def _third_party(pathname: str, libraries) -> bool:
  parts = pathname.replace('\\', '/').split('/')
  return any(p in libraries for p in parts[:-1]) and 'difcon_jax' not in parts


def _library_noise(record) -> bool:
  """False for a record to hide: a library's INFO (or, for Orbax and TFDS, WARNING) record."""
  if record.levelno >= logging.converter.STANDARD_ERROR:
    return True
  if _third_party(record.pathname, QUIET_BELOW_ERROR):
    return False
  return record.levelno >= logging.converter.STANDARD_WARNING or not _third_party(record.pathname,
                                                                                    QUIET_BELOW_WARNING)


def quiet_library_logs() -> None:
  """Hides the libraries' log noise (QUIET_BELOW_WARNING, QUIET_BELOW_ERROR) unless --verbosity (-v) was given.

  Only the display is filtered (absl's handler), so a debugging run with --verbosity=0 sees every record."""
  if 'verbosity' in flags.FLAGS and flags.FLAGS['verbosity'].present:
    return
  handler = logging.get_absl_handler()
  if _library_noise not in handler.filters:
    handler.addFilter(_library_noise)
