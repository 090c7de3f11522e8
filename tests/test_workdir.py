"""The training workdir (io/workdir.py): what may be one, one training at a time, metrics.jsonl trimmed on resume,
and the checkpoint helpers that training and inference share."""

import jax
import numpy as np
import pytest

from difcon_jax.io import workdir as workdir_lib
import json
import os
import shutil
import signal

from difcon_jax.inference import model as inference
import input_helpers


def test_array_shapes_name_dict_keys_and_list_indices_alike():
  state = {'params': {'Conv_0': {'kernel': np.zeros((3, 1, 8))}}, 'opt': [np.zeros(2), {'mu': np.zeros((4, 5))}]}
  metadata = {'params': {'Conv_0': {'kernel': jax.ShapeDtypeStruct((3, 1, 8), np.float32)}},
              'opt': {'0': jax.ShapeDtypeStruct((2,), np.float32), '1': {'mu': jax.ShapeDtypeStruct((4, 5), np.float32)}}}
  shapes = workdir_lib.array_shapes(state)
  assert shapes == {'params/Conv_0/kernel': (3, 1, 8), 'opt/0': (2,), 'opt/1/mu': (4, 5)}
  assert workdir_lib.array_shapes(metadata) == shapes


def test_shape_differences_split_other_shapes_from_missing_arrays():
  have = {'a': (1,), 'b': (2, 3), 'only_have': (4,)}
  want = {'a': (1,), 'b': (3, 2), 'only_want': (5,)}
  assert workdir_lib.shape_differences(have, want) == (['b'], ['only_have'], ['only_want'])
  assert workdir_lib.shape_differences(want, want) == ([], [], [])


def test_restore_newest_passes_over_damaged_checkpoints_and_raises_refusals():
  damaged = []

  def restore(step):
    if step in (5, 4):
      raise OSError(f'checkpoint {step} cut short')
    return f'weights of {step}'

  assert workdir_lib.restore_newest([5, 4, None, 3, 2], restore, lambda s, e: damaged.append((s, str(e)))) == (
      3, 'weights of 3')
  assert damaged == [(5, 'checkpoint 5 cut short'), (4, 'checkpoint 4 cut short')]
  assert workdir_lib.restore_newest([5, 4], restore, lambda s, e: None) == (None, None)

  def other_model(step):
    raise ValueError('another model')

  with pytest.raises(ValueError, match='another model'):
    workdir_lib.restore_newest([2, 1], other_model, lambda s, e: None, refuse=(ValueError,))


def test_trim_metrics_keeps_one_row_per_step(tmp_path):
  rng = np.random.default_rng(16)
  for _ in range(4):
    last = int(rng.integers(5, 50))
    start = int(rng.integers(1, last))
    rows = [{'step': s, 'train/loss': 1.0} for s in range(1, last + 1)]
    rows += [{'step': s, 'eval/x': 0.5} for s in range(2, last + 1, 2)]
    (tmp_path / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows) + '{"step": 9')
    workdir_lib.trim_metrics(str(tmp_path), start)
    kept = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
    assert kept == [r for r in rows if r['step'] <= start]


def test_train_refuses_a_workdir_that_is_not_one(tmp_path):
  exported = tmp_path / 'exported'
  shutil.copytree(inference.BUNDLED_MODEL, exported)
  before = (exported / 'config.json').read_bytes()
  with pytest.raises(workdir_lib.WorkdirError, match='exported model'):
    workdir_lib.check(str(exported))
  assert (exported / 'config.json').read_bytes() == before
  other = tmp_path / 'other'
  other.mkdir()
  (other / 'notes.txt').write_text('mine')
  with pytest.raises(workdir_lib.WorkdirError, match='notes.txt'):
    workdir_lib.check(str(other))
  for fine in ('new', 'empty'):
    (tmp_path / 'empty').mkdir(exist_ok=True)
    workdir_lib.check(str(tmp_path / fine))
  _, work = input_helpers.workdir(tmp_path, (1,))
  (work / 'notes.txt').write_text('a note beside a real run')
  workdir_lib.check(str(work))


def test_one_training_per_workdir(tmp_path):
  work = tmp_path / 'work'
  work.mkdir()
  holder = input_helpers.hold_lock(work, workdir_lib.LOCK, 'a training')
  try:
    with pytest.raises(workdir_lib.WorkdirError) as e:
      workdir_lib.lock(str(work))
    assert f'pid {holder.pid}' in str(e.value) and '\n' not in str(e.value)
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  lock = workdir_lib.lock(str(work))  # the dead one's lock is stale
  assert json.loads((work / workdir_lib.LOCK).read_text())['pid'] == os.getpid()
  assert workdir_lib.lock(str(work)) is lock  # this process again: the same lock
  lock.release()
  assert not (work / workdir_lib.LOCK).exists()
