import jax
import jax.numpy as jnp
import numpy as np
import pytest

from difcon_jax.crystallography import spacegroups
from difcon_jax.models import heads
from difcon_jax.models import resnet1d
import ranking_helpers


def _model():
  return resnet1d.DifconNet(num_extinction_groups=spacegroups.num_extinction_groups(), stage_sizes=(1, 1), width=8,
                            embedding_dim=16, projector_dims=(32, 32))


def test_head_shapes_and_aux():
  model = _model()
  x = jax.random.normal(jax.random.key(0), (4, 2000))
  variables = model.init(jax.random.key(1), x)
  (logits, aux) = model.apply(variables, x)
  assert logits['crystal_system'].shape == (4, 7)
  assert logits['extinction_group'].shape == (4, 112)
  assert [h.shape[1] for h in logits['space_group']] == [2, 13, 59, 68, 25, 27, 36]
  assert sum(heads.HEAD_SIZES) == 230
  assert aux['embedding'].shape == (4, 16) and aux['projection'].shape == (4, 32)


def test_heads_read_the_projection_when_asked():
  """heads_input='projection': the heads' kernels take the projector's output (32 wide), and their logits move with
  the projector's last layer; with the default they read the embedding (16 wide) and do not."""
  x = jax.random.normal(jax.random.key(0), (4, 2000))
  for heads_input, width in (('embedding', 16), ('projection', 32)):
    model = _model().clone(heads_input=heads_input)
    variables = model.init(jax.random.key(1), x)
    assert variables['params']['crystal_system_head']['kernel'].shape == (width, 7)
    params = dict(variables['params'])
    params['projector_1'] = jax.tree.map(lambda w: w * 2.0, params['projector_1'])
    before = model.apply(variables, x)[0]['crystal_system']
    after = model.apply({**variables, 'params': params}, x)[0]['crystal_system']
    assert bool(jnp.allclose(before, after)) == (heads_input == 'embedding')


def test_space_group_distribution_and_consistency():
  rng = np.random.default_rng(0)
  logits = {'crystal_system': jnp.asarray(rng.normal(size=(50, 7)) * 3),
            'extinction_group': jnp.zeros((50, 112)),
            'space_group': tuple(jnp.asarray(rng.normal(size=(50, n)) * 3) for n in heads.HEAD_SIZES)}
  lp = heads.space_group_log_probs(logits)
  np.testing.assert_allclose(np.asarray(jax.scipy.special.logsumexp(lp, -1)), 0.0, atol=1e-5)
  pred = ranking_helpers.top1_labels(logits)
  for cs, sg in zip(np.asarray(pred['crystal_system']), np.asarray(pred['space_group'])):
    assert spacegroups.crystal_system_index(int(sg)) == cs


def test_index_tables():
  for sg in (1, 2, 3, 15, 16, 75, 143, 168, 194, 195, 230):
    cs = heads.SG_SYSTEM[sg]
    assert heads.SYSTEM_GROUPS[cs][heads.SG_INDEX_IN_SYSTEM[sg]] == sg


@pytest.mark.slow
def test_poolings_give_the_same_outputs_and_attention_sees_positions():
  x = jax.random.normal(jax.random.key(0), (3, 2000))
  for pooling in ('mean', 'flatten', 'attention'):
    model = resnet1d.DifconNet(num_extinction_groups=spacegroups.num_extinction_groups(), stage_sizes=(1, 1),
                               width=8, embedding_dim=16, projector_dims=(32, 32), pooling=pooling,
                               attention_layers=1, attention_heads=2)
    variables = model.init(jax.random.key(1), x)
    logits, aux = model.apply(variables, x)
    assert logits['crystal_system'].shape == (3, 7) and aux['embedding'].shape == (3, 16)
    if pooling == 'attention':
      # The positions carry their own embedding: without it the output would not change when it is zeroed.
      params = variables['params']
      pos = params['PositionalAttention_0']['position_embedding']
      assert pos.shape == (125, 16)  # 2000 bins / 4 (stem) / 2 (pool) / 2 (stage 2) -> 125 positions, 16 channels
      zeroed = jax.tree_util.tree_map_with_path(
          lambda path, v: jnp.zeros_like(v) if 'position_embedding' in jax.tree_util.keystr(path) else v, params)
      e1 = model.apply(variables, x)[1]['embedding']
      e2 = model.apply({**variables, 'params': zeroed}, x)[1]['embedding']
      assert float(jnp.abs(e1 - e2).max()) > 1e-4
  import pytest
  with pytest.raises(ValueError, match='unknown pooling'):
    resnet1d.DifconNet(num_extinction_groups=5, pooling='max').init(jax.random.key(0), x)
