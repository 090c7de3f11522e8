"""The training workdir (io/workdir.py): what may be one, one training at a time, metrics.jsonl trimmed on resume,
and the checkpoint helpers that training and inference share."""

import jax
import numpy as np
import pytest

from difcon_jax.io import workdir as workdir_lib


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
