"""The worker pool (data/workers.py): a dead worker is its item's error row, order is kept, results waiting
for a slow item are bounded."""

import os
import sys

import numpy as np
import pytest

from difcon_jax.data import workers
from difcon_jax.data import workers as workers_lib

import pool_helpers


def _pool_work():
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import pool_helpers  # pylint: disable=g-import-not-at-top
  return pool_helpers.work


def test_pool_turns_each_dead_worker_into_that_items_row():
  items = [('ok', 0), ('segfault', 0), ('ok', 2), ('exit', 3), ('memory', 3 << 30), ('raise', 5), ('ok', 6),
           ('sleep', 60), ('ok', 8)]
  for n_workers in (1, 3):
    out = list(workers.imap(pool_helpers.work, items, n_workers, on_failure=lambda item, why: ('failed', why),
                            memory_limit=512 << 20, timeout=4))
    assert out[0] == 0 and out[2] == 20 and out[6] == 60 and out[8] == 80
    assert out[1] == ('failed', 'the worker process died (killed by SIGSEGV)')
    assert out[3] == ('failed', 'the worker process died (exited with status 3)')
    assert out[4][0] == 'failed' and 'MemoryError' in out[4][1]
    assert out[5] == ('failed', 'the worker raised TypeError: bad 5')
    assert out[7][0] == 'failed' and 'longer than 4 s' in out[7][1]


def test_pool_keeps_order_and_refuses_no_workers():
  rng = np.random.default_rng(3)
  values = [int(v) for v in rng.integers(0, 1000, 40)]
  assert list(workers.imap(pool_helpers.work, [('ok', v) for v in values], 2)) == [v * 10 for v in values]
  with pytest.raises(ValueError):
    list(workers.imap(pool_helpers.work, [('ok', 1)], 0))


def test_results_waiting_for_a_slow_item_are_bounded():
  taken = []

  def items():
    for i in range(60):
      taken.append(i)
      yield ('sleep', 3.0) if i == 0 else ('value', i)

  results = workers_lib.imap(_pool_work(), items(), workers=2, memory_limit=None)
  first = next(results)
  assert first == 30.0  # work(('sleep', s)) returns s * 10 once it has slept
  assert len(taken) <= workers_lib.AHEAD_PER_WORKER * 2 + 2, len(taken)
  assert list(results) == [i * 10 for i in range(1, 60)]
