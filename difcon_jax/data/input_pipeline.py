"""Host-side input: batches of padded peak arrays from the TFDS corpus (the augmentation runs on the device).

The batch for a step is a pure function of (seed, step): a per-epoch permutation of the split, cut into global
batches, of which each host reads its own slice. A resumed run therefore continues at the same data position,
and several hosts never read the same example of a step.
"""

from __future__ import annotations

import queue
import threading

import numpy as np

from difcon_jax.data import corpus

FIELDS = ('two_theta', 'intensity', 'num_peaks', 'crystal_system', 'extinction_group', 'space_group')


class PeakBatches:
  """Random-access batches of one split.

  Args:
    path: corpus folder (the build's --out or the version folder).
    split: 'train' or 'test'.
    global_batch: examples per step over all hosts.
    seed: permutation seed; shuffle=False keeps file order (evaluation).
    process_index, process_count: this host and the number of hosts.
    in_memory: read the whole split once (small corpora) instead of per batch.
  """

  def __init__(self, path: str, split: str, global_batch: int, seed: int = 0, shuffle: bool = True,
               process_index: int = 0, process_count: int = 1, in_memory: bool = True):
    if global_batch % process_count:
      raise ValueError(f'global batch {global_batch} is not divisible by {process_count} hosts')
    self._source = corpus.data_sources(path)[split]
    self.size = len(self._source)
    if self.size == 0:
      raise ValueError(f'{path}: split {split!r} is empty')
    self.global_batch, self.seed, self.shuffle = global_batch, seed, shuffle
    self.local_batch = global_batch // process_count
    self._offset = process_index * self.local_batch
    self._arrays = None
    if in_memory:
      recs = [self._source[i] for i in range(self.size)]
      self._arrays = {k: np.stack([r[k] for r in recs]) for k in FIELDS}

  def indices(self, step: int) -> np.ndarray:
    """Dataset indices of this host's slice of the global batch of `step`."""
    counter = step * self.global_batch + self._offset + np.arange(self.local_batch)
    epoch, pos = counter // self.size, counter % self.size
    if not self.shuffle:
      return pos
    out = np.empty_like(pos)
    for e in np.unique(epoch):
      perm = np.random.default_rng([self.seed, int(e)]).permutation(self.size)
      out[epoch == e] = perm[pos[epoch == e]]
    return out

  def batch(self, step: int) -> dict[str, np.ndarray]:
    """This host's examples of `step`, with their dataset indices under 'index'."""
    idx = self.indices(step)
    if self._arrays is not None:
      return {'index': idx, **{k: v[idx] for k, v in self._arrays.items()}}
    recs = [self._source[int(i)] for i in idx]
    return {'index': idx, **{k: np.stack([r[k] for r in recs]) for k in FIELDS}}

  def prefetch(self, first_step: int, depth: int = 4):
    """Iterator of (step, batch) from first_step on, read ahead in a thread."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work():
      step = first_step
      while not stop.is_set():
        q.put((step, self.batch(step)))
        step += 1

    threading.Thread(target=work, daemon=True).start()
    try:
      while True:
        yield q.get()
    finally:
      stop.set()
