"""One process at a time in a folder: a training workdir, a corpus build's --out.

`acquire(folder, name, what)` takes an exclusive lock on FOLDER/NAME with fcntl.flock, which the kernel drops when
the process ends, however it ends (also across hosts on NFS, where Linux maps flock to POSIX locks): a dead process
never holds a lock. The file records the owner's pid, host and start time, for the message a second process gets
and for the warning when a lock file left by a dead process (no lock on it any more) is taken over. Releasing
removes the file, so a folder without one is free.

Cloud storage (gs://) has no such locks: there `acquire` returns a lock that holds nothing (and says so).
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
import weakref

from absl import logging


class LockedError(RuntimeError):
  """Another live process holds the folder; the message names the folder, its pid and host."""


# path -> this process's live lock on it: a second acquire in the same process (a test, a resumed call) reuses it.
_HELD: weakref.WeakValueDictionary[str, 'Lock'] = weakref.WeakValueDictionary()


class Lock:
  """A held lock; released by `release()`, at the end of a `with` block, when dropped, or at exit."""

  def __init__(self, path: str | None, fd: int | None):
    self.path = path
    self._finalizer = weakref.finalize(self, _release, path, fd) if fd is not None else None

  def release(self) -> None:
    if self._finalizer is not None:
      self._finalizer()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.release()


def _release(path: str, fd: int) -> None:
  _HELD.pop(path, None)
  try:
    os.unlink(path)  # while still locked: a waiting process then finds the file gone and opens a new one
  except OSError:
    pass
  os.close(fd)  # drops the flock


def owner(path: str) -> dict:
  """The pid, host and start time recorded in a lock file ({} when unreadable or empty)."""
  try:
    with open(path) as f:
      info = json.load(f)
    return info if isinstance(info, dict) else {}
  except (OSError, ValueError):
    return {}


def _describe(info: dict) -> str:
  if not info:
    return 'a process that left no pid'
  return f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}"


def acquire(folder: str, name: str, what: str) -> Lock:
  """Locks FOLDER/NAME for this process (folder created if missing).

  what: the activity, for the messages ('a training', 'a corpus build').
  Raises:
    LockedError: a live process holds it; the message names it (pid, host, start) and the lock file.
  """
  if '://' in os.fspath(folder):
    logging.warning('%s: cloud storage has no file locks; nothing stops a second %s here', folder, what)
    return Lock(None, None)
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(os.path.realpath(folder), name)
  held = _HELD.get(path)
  if held is not None:
    return held
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      os.close(fd)
      raise LockedError(f'{folder}: {what} is already running here ({_describe(owner(path))}; lock file '
                        f'{path}); wait for it to end or stop it') from None
    try:  # the holder may have released (and removed the file) between our open and our lock: start again
      if os.fstat(fd).st_ino != os.stat(path).st_ino:
        os.close(fd)
        continue
    except FileNotFoundError:
      os.close(fd)
      continue
    break
  previous = owner(path)
  if previous:
    logging.warning('%s: took over the lock of %s, which is gone (the process ended without releasing it)',
                    folder, _describe(previous))
  info = {'pid': os.getpid(), 'host': socket.gethostname(),
          'started': datetime.datetime.now().isoformat(timespec='seconds')}
  os.ftruncate(fd, 0)
  os.pwrite(fd, json.dumps(info).encode(), 0)
  os.fsync(fd)
  lock = Lock(path, fd)
  _HELD[path] = lock
  return lock
