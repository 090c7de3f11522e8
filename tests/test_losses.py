import jax
import jax.numpy as jnp
import numpy as np

from difcon_jax.training import losses


def _barlow_numpy(z1, z2, lambd):
  n, d = z1.shape
  a = (z1 - z1.mean(0)) / np.sqrt(z1.var(0) + 1e-5)
  b = (z2 - z2.mean(0)) / np.sqrt(z2.var(0) + 1e-5)
  total = 0.0
  for i in range(d):
    for j in range(d):
      c_ij = sum(a[k, i] * b[k, j] for k in range(n)) / n
      total += (1 - c_ij) ** 2 if i == j else lambd * c_ij**2
  return total


def _nt_xent_numpy(z1, z2, t):
  z = np.concatenate([z1, z2])
  z = z / np.linalg.norm(z, axis=1, keepdims=True)
  n2 = len(z)
  loss = 0.0
  for i in range(n2):
    pos = (i + n2 // 2) % n2
    logits = np.array([z[i] @ z[j] / t for j in range(n2) if j != i])
    others = [j for j in range(n2) if j != i]
    loss += -(z[i] @ z[pos] / t - np.log(np.exp(logits).sum()))
    assert pos in others
  return loss / n2


def test_barlow_twins_against_numpy():
  rng = np.random.default_rng(0)
  z1, z2 = rng.normal(size=(12, 5)), rng.normal(size=(12, 5))
  for lambd in (5e-3, 0.5):
    np.testing.assert_allclose(float(losses.barlow_twins(jnp.asarray(z1), jnp.asarray(z2), lambd)),
                               _barlow_numpy(z1, z2, lambd), rtol=1e-4)


def test_barlow_twins_minimum():
  # Identical views with decorrelated (orthogonal) features give zero loss.
  z = np.linalg.qr(np.random.default_rng(1).normal(size=(64, 8)))[0] * 8.0
  z = z - z.mean(0)
  assert float(losses.barlow_twins(jnp.asarray(z), jnp.asarray(z))) < 1e-2


def test_nt_xent_against_numpy():
  rng = np.random.default_rng(2)
  z1, z2 = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
  for t in (0.1, 0.5):
    np.testing.assert_allclose(float(losses.nt_xent(jnp.asarray(z1), jnp.asarray(z2), t)), _nt_xent_numpy(z1, z2, t),
                               rtol=1e-4)


def test_nt_xent_prefers_matching_views():
  rng = np.random.default_rng(3)
  z = rng.normal(size=(8, 16))
  assert float(losses.nt_xent(z, z + 0.01 * rng.normal(size=z.shape))) < float(losses.nt_xent(z, rng.normal(size=z.shape)))


def test_cross_entropy():
  lp = jax.nn.log_softmax(jnp.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]]))
  np.testing.assert_allclose(float(losses.cross_entropy(lp, jnp.array([0, 2]))),
                             -(float(lp[0, 0]) + float(lp[1, 2])) / 2, rtol=1e-6)


def test_class_weights_by_hand():
  counts = np.array([10, 30, 60, 0, 0, 0, 0])
  np.testing.assert_allclose(losses.class_weights(counts, 0.0), [1, 1, 1, 0, 0, 0, 0])
  # power 1: each present class weighs the same in total; share-weighted mean 1: w = 1 / (3 share).
  np.testing.assert_allclose(losses.class_weights(counts, 1.0), [1 / 0.3, 1 / 0.9, 1 / 1.8, 0, 0, 0, 0], rtol=1e-6)
  w = losses.class_weights(counts, 0.5)  # ∝ share^-1/2, mean 1 over the examples
  raw = np.array([0.1, 0.3, 0.6]) ** -0.5
  np.testing.assert_allclose(w[:3], raw / (raw @ [0.1, 0.3, 0.6]), rtol=1e-6)
  assert abs(w[:3] @ [0.1, 0.3, 0.6] - 1) < 1e-6


def test_weighted_crystal_system_loss_is_the_weighted_mean_of_the_nll():
  rng = np.random.default_rng(0)
  log_probs = jax.nn.log_softmax(jnp.asarray(rng.normal(size=(5, 7)), jnp.float32))
  labels = np.array([0, 2, 2, 6, 1])
  weights = np.array([3.0, 0.5, 1.0, 1, 1, 1, 0.25], np.float32)
  nll = -np.asarray(log_probs)[np.arange(5), labels]
  np.testing.assert_allclose(losses.cross_entropy(log_probs, labels, weights), np.mean(weights[labels] * nll),
                             rtol=1e-6)
  np.testing.assert_allclose(losses.cross_entropy(log_probs, labels), nll.mean(), rtol=1e-6)


def test_the_trainer_weights_the_crystal_systems_by_the_training_split(tiny_corpus):
  """config.loss.crystal_system_balance: the class weights come from the training split's counts (0: none)."""
  from difcon_jax import train  # pylint: disable=g-import-not-at-top
  from difcon_jax.data import corpus
  from difcon_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  import train_helpers  # pylint: disable=g-import-not-at-top
  c = train_helpers.tiny_config(tiny_corpus)
  data = input_pipeline.PeakBatches(tiny_corpus, 'train', 8)
  assert train.crystal_system_weights(c, data) is None
  c.loss.crystal_system_balance = 1.0
  counts = np.bincount(corpus.load_arrays(tiny_corpus, 'train', ('crystal_system',))['crystal_system'], minlength=7)
  np.testing.assert_allclose(train.crystal_system_weights(c, data), losses.class_weights(counts, 1.0))
  assert np.allclose((counts * train.crystal_system_weights(c, data))[counts > 0], counts.sum() / (counts > 0).sum())
