"""Host-side input: batches of padded peak arrays from the TFDS corpus (the augmentation runs on the device).

Whole batches are gathered at once from the split's arrays held in memory (`arrays[indices]`, one NumPy fancy
index per field: no Python work per example), in the order of a per-epoch permutation. The batch of a step is a
pure function of (seed, step): the global batch of step s is positions [s·B, (s+1)·B) of the stream of epochs,
epoch e a permutation of the split drawn from (seed, e), and host p reads its p-th slice of it. A resumed run
therefore continues at the same data position, the device count does not change what a step sees, and several
hosts never read the same example of a step. `prefetch` builds the next batches in a background thread and, given
a `place` function, puts them on the devices there, so that the step never waits for the host.
"""

from __future__ import annotations

import collections
import queue
import threading
from typing import Callable, Iterator, Sequence

import numpy as np

from difcon_jax.data import corpus

FIELDS = ('two_theta', 'intensity', 'num_peaks', 'crystal_system', 'extinction_group', 'space_group')
# Read when the corpus has them: per-peak hkl and the cell, for orientation effects in the augmentation.
OPTIONAL_FIELDS = ('hkl', 'cell')


def fields_of(record: dict) -> tuple[str, ...]:
  """The fields the augmentation reads, for a corpus whose records look like `record`."""
  return FIELDS + tuple(k for k in OPTIONAL_FIELDS if k in record)


def permutation(seed: int, epoch: int, size: int) -> np.ndarray:
  """Epoch `epoch`'s order of the split's `size` examples [size] (int64), a function of (seed, epoch) only."""
  return np.random.default_rng([seed, epoch]).permutation(size)


class PeakBatches:
  """Random-access batches of one split.

  Args:
    path: corpus folder (the build's --out or the version folder).
    split: 'train' or 'test'.
    global_batch: examples per step over all hosts.
    seed: shuffle seed; shuffle=False keeps file order (evaluation).
    process_index, process_count: this host and the number of hosts.
    in_memory: read the whole split once (default) instead of the batch's records at each step (corpora larger
      than the host's memory; about 100x slower per example).
    fields: the fields to deliver (default: those of `fields_of`); OPTIONAL_FIELDS among them are delivered where
      the corpus has them; the dataset index is always under 'index' (int32). A trainer asks only for what its
      step reads.
    start: the stream begins at this position (step 0 reads positions [start, start + global_batch)): with
      shuffle=False, a set of examples further into the split than another's.
  """

  def __init__(self, path: str, split: str, global_batch: int, seed: int = 0, shuffle: bool = True,
               process_index: int = 0, process_count: int = 1, in_memory: bool = True,
               fields: Sequence[str] | None = None, start: int = 0):
    if global_batch % process_count:
      raise ValueError(f'global batch {global_batch} is not divisible by {process_count} hosts')
    self._path, self._split = path, split
    self._source = corpus.data_sources(path)[split]
    self.size = len(self._source)
    if self.size == 0:
      raise ValueError(f'{path}: split {split!r} is empty')
    available = fields_of(self._source[0])
    self.fields = tuple(f for f in (fields or available)
                        if f != 'index' and (f in available or f not in OPTIONAL_FIELDS))
    missing = [f for f in self.fields if f not in available]
    if missing:
      raise ValueError(f'{path}: split {split!r} has no field {", ".join(missing)}')
    self.global_batch, self.local_batch = global_batch, global_batch // process_count
    self.seed, self.shuffle = seed, shuffle
    self._offset = process_index * self.local_batch + start
    self._arrays = corpus.load_arrays(path, split, self.fields) if in_memory else None
    self._orders: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
    self._lock = threading.Lock()

  def labels(self, field: str) -> np.ndarray:
    """Every example's value of `field` [size] (this host's copy of the whole split, e.g. for class counts)."""
    if self._arrays is not None and field in self._arrays:
      return self._arrays[field]
    return corpus.load_arrays(self._path, self._split, (field,))[field]

  def _order(self, epoch: int) -> np.ndarray:
    """Epoch's permutation, the last few cached (a batch spans at most two epochs unless it exceeds the split)."""
    if not self.shuffle:
      return np.arange(self.size)
    with self._lock:
      if epoch not in self._orders:
        self._orders[epoch] = permutation(self.seed, epoch, self.size)
        while len(self._orders) > 3:
          self._orders.popitem(last=False)
      return self._orders[epoch]

  def indices(self, step: int) -> np.ndarray:
    """Dataset indices [local_batch] of this host's examples of `step`."""
    start = step * self.global_batch + self._offset
    positions = np.arange(start, start + self.local_batch)
    epochs, within = np.divmod(positions, self.size)
    out = np.empty(self.local_batch, np.int64)
    for e in np.unique(epochs):
      sel = epochs == e
      out[sel] = self._order(int(e))[within[sel]]
    return out

  def batch(self, step: int) -> dict[str, np.ndarray]:
    """This host's examples of `step`: {field: [local_batch, ...]}, their dataset indices under 'index'."""
    idx = self.indices(step)
    if self._arrays is not None:
      fields = {k: v[idx] for k, v in self._arrays.items()}
    else:
      records = [self._source[int(i)] for i in idx]
      fields = {k: np.stack([r[k] for r in records]) for k in self.fields}
    return {'index': idx.astype(np.int32), **fields}

  def prefetch(self, first_step: int, depth: int = 2, place: Callable[[dict], dict] | None = None
               ) -> Iterator[tuple[int, dict]]:
    """(step, batch) from first_step on, each built (and `place`d, e.g. on the devices) by a background thread up
    to `depth` steps ahead. The thread stops, and is waited for, when the iterator is closed or garbage-collected."""
    if depth < 1:  # Queue(maxsize=0) has no bound: the thread would build batches until memory ran out
      raise ValueError(f'prefetch depth must be at least 1, got {depth}')
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce():
      step = first_step
      while not stop.is_set():
        try:
          item = (step, place(self.batch(step)) if place else self.batch(step))
        except BaseException as e:  # pylint: disable=broad-except
          item = e
        while not stop.is_set():
          try:
            out.put(item, timeout=0.1)
            break
          except queue.Full:
            continue
        if isinstance(item, BaseException):
          return
        step += 1

    thread = threading.Thread(target=produce, daemon=True, name='peak-batches')
    thread.start()
    try:
      while True:
        item = out.get()
        if isinstance(item, BaseException):
          raise item
        yield item
    finally:
      # Wait for the thread: one still inside `place` (a device transfer) when the interpreter exits aborts the
      # process ("FATAL: exception not rethrown") after the work is done.
      stop.set()
      thread.join(timeout=60.0)
