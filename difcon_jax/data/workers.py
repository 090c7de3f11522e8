"""A process pool for per-file work that survives its workers.

`imap(fn, items, ...)` runs fn(item) in worker processes and yields the results in input order. Unlike
multiprocessing.Pool, which waits forever for the result of a worker that died, a worker that dies (a segfault in a
native library, the kernel's OOM killer) or overruns `timeout` turns that item, and only that item, into
`on_failure(item, reason)`; a fresh worker takes its place and the rest go on. Each worker caps its own address
space (`memory_limit`, bytes above what it holds after start-up), so that one huge input meets a MemoryError, or at
worst kills its worker, instead of exhausting the machine.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import time
import traceback
from typing import Any, Callable, Iterable, Iterator

DEFAULT_MEMORY_LIMIT = 4 << 30  # bytes per worker beyond its start-up size: ample for a 55 Å cell
# Results are yielded in input order, so those finished after a slow item wait for it; the other workers go on at
# most this many items per worker past it, then idle: the results held are bounded whatever the input's length.
AHEAD_PER_WORKER = 4


_READY = 'ready'


class _Raised:
  """An exception that escaped fn in a worker (a bug, not a bad input): carried back as text."""

  def __init__(self, text: str):
    self.text = text


def _limit_memory(limit: int | None) -> None:
  if not limit:
    return
  try:
    import resource  # pylint: disable=g-import-not-at-top  (Unix only)
    with open('/proc/self/statm') as f:
      current = int(f.read().split()[0]) * os.sysconf('SC_PAGE_SIZE')
  except (ImportError, OSError, ValueError):
    return  # no /proc (not Linux): no cap, the pool still survives a killed worker
  resource.setrlimit(resource.RLIMIT_AS, (current + limit, current + limit))


def _worker(conn, fn, memory_limit):
  signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
  _limit_memory(memory_limit)
  conn.send(_READY)  # start-up (imports) does not count against an item's time
  while True:
    try:
      job = conn.recv()
    except (EOFError, OSError):
      return
    if job is None:
      return
    index, item = job
    try:
      result = fn(item)
    except MemoryError:
      result = _Raised('MemoryError: out of memory (worker limit)')
    except Exception:  # pylint: disable=broad-except
      result = _Raised(traceback.format_exc(limit=-3))
    try:
      conn.send((index, result))
    except Exception:  # pylint: disable=broad-except  (an unpicklable result)
      conn.send((index, _Raised(traceback.format_exc(limit=-3))))


def death_reason(exitcode: int | None) -> str:
  """Words for a worker's exit code: 'killed by SIGSEGV', 'exited with status 1'."""
  if exitcode is None:
    return 'still running'
  if exitcode < 0:
    try:
      name = signal.Signals(-exitcode).name
    except ValueError:
      name = f'signal {-exitcode}'
    hint = ' (out of memory?)' if -exitcode == signal.SIGKILL else ''
    return f'killed by {name}{hint}'
  return f'exited with status {exitcode}'


class _Slot:
  """One worker process and the item it is working on."""

  def __init__(self, ctx, fn, memory_limit):
    self.conn, child = ctx.Pipe()
    self.process = ctx.Process(target=_worker, args=(child, fn, memory_limit), daemon=True)
    self.process.start()
    child.close()
    self.job = None  # [index, item, start time or None while the worker starts]
    self.ready = False

  def stop(self, kill: bool = False):
    if kill:
      self.process.kill()
    else:
      try:
        self.conn.send(None)
      except OSError:
        pass
    self.process.join(timeout=5)
    if self.process.is_alive():
      self.process.kill()
      self.process.join()
    self.conn.close()


def imap(fn: Callable[[Any], Any], items: Iterable[Any], workers: int = 1,
         on_failure: Callable[[Any, str], Any] | None = None, memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
         timeout: float | None = None) -> Iterator[Any]:
  """fn(item) for every item, in input order, computed in `workers` spawned processes.

  Args:
    fn: a module-level function (it is pickled by name). It should turn a bad input into a result itself (an
      error row); whatever it raises anyway becomes on_failure(item, 'TypeError: ...').
    items: the inputs (each pickled to its worker).
    workers: number of processes (>= 1); always separate processes, so that a crash never takes the caller.
    on_failure: (item, reason) -> the result to yield for an item whose worker died, overran `timeout` or raised;
      reason is e.g. 'the worker process died (killed by SIGSEGV)'. Default: raise RuntimeError.
    memory_limit: bytes each worker may add to its start-up address space (RLIMIT_AS); None for no cap.
    timeout: seconds one item may take before its worker is killed; None for no limit.

  At most AHEAD_PER_WORKER x workers results wait for an earlier, slower item; the workers idle beyond that.
  """
  if workers < 1:
    raise ValueError(f'workers must be at least 1, got {workers}')

  def failed(item, reason):
    if on_failure is None:
      raise RuntimeError(reason)
    return on_failure(item, reason)

  ctx = multiprocessing.get_context('spawn')  # no fork of a process that may hold JAX/TFDS threads
  pending = iter(enumerate(items))
  slots: list[_Slot | None] = [None] * workers  # started when there is work for them
  done: dict[int, Any] = {}  # results that wait for an earlier one: at most `ahead` of them (bounded memory)
  ahead = AHEAD_PER_WORKER * workers
  next_out, handed, exhausted = 0, 0, False
  try:
    while True:
      for i, slot in enumerate(slots):  # hand out work, never more than `ahead` items past the oldest unfinished
        if (slot is None or slot.job is None) and not exhausted and handed - next_out < ahead:
          job = next(pending, None)
          if job is None:
            exhausted = True
            break
          handed += 1
          slot = slots[i] = slot or _Slot(ctx, fn, memory_limit)
          slot.job = [job[0], job[1], time.monotonic() if slot.ready else None]
          try:
            slot.conn.send(job)
          except (OSError, ValueError):  # the worker is already gone: its sentinel says so below
            pass
      busy = [s for s in slots if s is not None and s.job is not None]
      if not busy:
        break
      waits = [s.conn for s in busy] + [s.process.sentinel for s in busy]
      wait_for = None
      timed = [s.job[2] for s in busy if s.job[2] is not None]
      if timeout is not None and timed:
        wait_for = max(0.0, min(timed) + timeout - time.monotonic())
      ready = set(multiprocessing.connection.wait(waits, timeout=wait_for))
      for i, slot in enumerate(slots):
        if slot is None or slot.job is None:
          continue
        index, item, started = slot.job
        reason = None
        if slot.conn in ready:
          try:
            message = slot.conn.recv()
            if message == _READY:
              slot.ready = True
              slot.job[2] = time.monotonic()
              continue
            got_index, result = message
            assert got_index == index
            if isinstance(result, _Raised):
              result = failed(item, f'the worker raised {result.text.strip().splitlines()[-1]}')
            done[index] = result
            slot.job = None
            continue
          except (EOFError, OSError):
            slot.process.join(timeout=5)
            reason = f'the worker process died ({death_reason(slot.process.exitcode)})'
        elif slot.process.sentinel in ready:
          slot.process.join(timeout=5)
          reason = f'the worker process died ({death_reason(slot.process.exitcode)})'
        elif timeout is not None and started is not None and time.monotonic() - started > timeout:
          reason = f'took longer than {timeout:g} s; the worker was stopped'
        if reason is not None:
          done[index] = failed(item, reason)
          slot.stop(kill=True)
          slots[i] = None
      while next_out in done:
        yield done.pop(next_out)
        next_out += 1
  finally:
    for slot in slots:
      if slot is not None:
        slot.stop(kill=slot.job is not None)
