"""Host-side input: batches of padded peak arrays from the TFDS corpus (the augmentation runs on the device).

A grain pipeline over the corpus's `tfds.data_source`: indices shuffled per epoch (grain's deterministic global
shuffle, reseeded each epoch), repeated, looked up, batched per host and read ahead by grain's threads. The batch
for a step is a pure function of (seed, step): the global batch of step s is elements [s·B, (s+1)·B) of the
shuffled stream and host p reads its p-th slice of it. A resumed run therefore continues at the same data
position, and several hosts never read the same example of a step.
"""

from __future__ import annotations

import grain
import numpy as np

from difcon_jax.data import corpus

FIELDS = ('two_theta', 'intensity', 'num_peaks', 'crystal_system', 'extinction_group', 'space_group')
# Read when the corpus has them: per-peak hkl and the cell, for orientation effects in the augmentation.
OPTIONAL_FIELDS = ('hkl', 'cell')


def fields_of(record: dict) -> tuple[str, ...]:
  """The fields the augmentation reads, for a corpus whose records look like `record`."""
  return FIELDS + tuple(k for k in OPTIONAL_FIELDS if k in record)


class PeakBatches:
  """Random-access batches of one split.

  Args:
    path: corpus folder (the build's --out or the version folder).
    split: 'train' or 'test'.
    global_batch: examples per step over all hosts.
    seed: shuffle seed; shuffle=False keeps file order (evaluation).
    process_index, process_count: this host and the number of hosts.
    in_memory: read the whole split once (small corpora) instead of per batch.
  """

  def __init__(self, path: str, split: str, global_batch: int, seed: int = 0, shuffle: bool = True,
               process_index: int = 0, process_count: int = 1, in_memory: bool = True):
    if global_batch % process_count:
      raise ValueError(f'global batch {global_batch} is not divisible by {process_count} hosts')
    source = corpus.data_sources(path)[split]
    self.size = len(source)
    if self.size == 0:
      raise ValueError(f'{path}: split {split!r} is empty')
    self.local_batch = global_batch // process_count
    fields = fields_of(source[0])
    if in_memory:
      arrays = corpus.load_arrays(path, split, fields)
      read = lambda i: {k: v[i] for k, v in arrays.items()}
    else:
      read = lambda i: source[int(i)]  # one record read per example
    lookup = lambda i: {'index': np.int64(i), **{k: v for k, v in read(i).items() if k in fields}}
    indices = grain.MapDataset.range(self.size)
    if shuffle:
      indices = indices.shuffle(seed=seed)
    # Host p's batch of step s is batch s·P + p of the stream cut into local batches.
    self._batches = indices.repeat().map(lookup).batch(self.local_batch)[process_index::process_count]

  def batch(self, step: int) -> dict[str, np.ndarray]:
    """This host's examples of `step`, with their dataset indices under 'index'."""
    return self._batches[step]

  def prefetch(self, first_step: int, threads: int = 4, depth: int = 4):
    """Iterator of (step, batch) from first_step on, read ahead by grain's threads."""
    ahead = self._batches[first_step:].to_iter_dataset(
        grain.ReadOptions(num_threads=threads, prefetch_buffer_size=depth))
    return enumerate(ahead, start=first_step)
