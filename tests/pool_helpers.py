"""Work functions for the process-pool tests: importable by the spawned workers, stdlib only (fast to start)."""

import ctypes
import os
import time


def work(x):
  """x * 10, or what the kind of x says: a native crash, an exit, too much memory, an exception, a hang."""
  kind, value = x
  if kind == 'segfault':
    ctypes.string_at(0)  # reads address 0: SIGSEGV
  elif kind == 'exit':
    os._exit(value)
  elif kind == 'memory':
    return len(bytearray(value))
  elif kind == 'raise':
    raise TypeError(f'bad {value}')
  elif kind == 'sleep':
    time.sleep(value)
  return value * 10
