import jax
import jax.numpy as jnp
import numpy as np

from difcon_jax import losses


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
