"""The host-side input pipeline: deterministic per (seed, step), per-epoch permutations, disjoint host slices."""

import itertools
import threading
import time

import numpy as np
import pytest

from difcon_jax.data import corpus
from difcon_jax.data import input_pipeline


@pytest.fixture(scope='module')
def corpus_path(tiny_corpus):
  return tiny_corpus


def test_every_epoch_is_a_new_permutation(corpus_path):
  data = input_pipeline.PeakBatches(corpus_path, 'train', 8, seed=3)
  n = data.size
  stream = np.concatenate([data.batch(s)['index'] for s in range(-(-3 * n // 8))])
  epochs = [stream[e * n:(e + 1) * n] for e in range(3)]
  for e in epochs:
    assert sorted(e) == list(range(n))
  assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
  assert not np.array_equal(epochs[0], np.arange(n))


def test_batches_are_a_function_of_seed_and_step(corpus_path):
  a = input_pipeline.PeakBatches(corpus_path, 'train', 8, seed=1)
  b = input_pipeline.PeakBatches(corpus_path, 'train', 8, seed=1, in_memory=False)
  c = input_pipeline.PeakBatches(corpus_path, 'train', 8, seed=2)
  for step in (0, 7, 40):
    x, y = a.batch(step), b.batch(step)
    assert set(x) == {'index', *input_pipeline.FIELDS, *input_pipeline.OPTIONAL_FIELDS}
    for k in x:
      np.testing.assert_array_equal(x[k], y[k], err_msg=k)
  assert not np.array_equal(a.batch(0)['index'], c.batch(0)['index'])
  # The record under an index is that example's.
  whole = corpus.load_arrays(corpus_path, 'train')
  x = a.batch(3)
  for k in input_pipeline.FIELDS:
    np.testing.assert_array_equal(x[k], whole[k][x['index']], err_msg=k)


def test_hosts_read_disjoint_slices_of_the_global_batch(corpus_path):
  one = input_pipeline.PeakBatches(corpus_path, 'train', 12, seed=5)
  hosts = [input_pipeline.PeakBatches(corpus_path, 'train', 12, seed=5, process_index=p, process_count=3)
           for p in range(3)]
  for step in (0, 1, 30):
    parts = [h.batch(step)['index'] for h in hosts]
    assert all(len(p) == 4 for p in parts)
    np.testing.assert_array_equal(np.concatenate(parts), one.batch(step)['index'])
  with pytest.raises(ValueError, match='not divisible'):
    input_pipeline.PeakBatches(corpus_path, 'train', 10, process_count=3)


def test_prefetch_resumes_at_a_step(corpus_path):
  data = input_pipeline.PeakBatches(corpus_path, 'train', 8, seed=0)
  got = list(itertools.islice(data.prefetch(17), 4))
  assert [s for s, _ in got] == [17, 18, 19, 20]
  for s, b in got:
    np.testing.assert_array_equal(b['index'], data.batch(s)['index'])


def test_closing_prefetch_waits_for_its_thread(corpus_path):
  """A program that closes its batches and exits must not leave the thread inside a device transfer: that aborts
  the interpreter at exit after the work is done."""
  data = input_pipeline.PeakBatches(corpus_path, 'train', 8, seed=0)
  entered = threading.Event()

  def slow_place(batch):
    entered.set()
    time.sleep(0.5)
    return batch

  batches = data.prefetch(0, depth=1, place=slow_place)
  next(batches)
  entered.wait(5.0)  # the thread is now placing the next batch
  batches.close()
  assert not [t for t in threading.enumerate() if t.name == 'peak-batches']


def test_evaluation_order_wraps_around(corpus_path):
  data = input_pipeline.PeakBatches(corpus_path, 'test', 8, shuffle=False)
  n = data.size
  assert n % 8, f'the test split has {n} examples, a multiple of the batch: nothing would wrap'
  steps = -(-n // 8) + 2  # two batches past the end of the first pass
  stream = np.concatenate([data.batch(s)['index'] for s in range(steps)])
  # File order, then the same order again from the first example: the last batch of a pass is filled from the next.
  np.testing.assert_array_equal(stream, np.arange(steps * 8) % n)


def test_fields_asked_for_optional_ones_only_where_the_corpus_has_them(corpus_path, monkeypatch):
  """A trainer asks for the optional fields its augmentation can use: present ones are delivered, absent optional
  ones are left out, and a missing required field is refused."""
  data = input_pipeline.PeakBatches(corpus_path, 'train', 8, fields=('two_theta', 'intensity', 'hkl'))
  assert set(data.batch(0)) == {'index', 'two_theta', 'intensity', 'hkl'}
  monkeypatch.setattr(input_pipeline, 'OPTIONAL_FIELDS', input_pipeline.OPTIONAL_FIELDS + ('texture',))
  data = input_pipeline.PeakBatches(corpus_path, 'train', 8, fields=('two_theta', 'texture'))
  assert set(data.batch(0)) == {'index', 'two_theta'}
  with pytest.raises(ValueError, match='has no field texture'):
    monkeypatch.setattr(input_pipeline, 'OPTIONAL_FIELDS', ('hkl', 'cell'))
    input_pipeline.PeakBatches(corpus_path, 'train', 8, fields=('two_theta', 'texture'))


def test_a_prefetch_depth_of_zero_is_refused():
  from difcon_jax.data import input_pipeline
  batches = object.__new__(input_pipeline.PeakBatches)
  with pytest.raises(ValueError, match='at least 1'):
    next(input_pipeline.PeakBatches.prefetch(batches, 0, depth=0))
