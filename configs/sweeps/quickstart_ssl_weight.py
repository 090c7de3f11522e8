r"""A small sweep on this CPU: the quickstart model with and without the Barlow Twins loss, and HAND.

  python launch/sweep.py --sweep=configs/sweeps/quickstart_ssl_weight.py --root=runs/quick_sweep
"""

from difcon_jax import sweeps


def get_sweep():
  base = {'name': 'quickstart', 'config': 'configs/quickstart.py', 'overrides': {'corpus': 'runs/sample_corpus'}}
  hand = {'name': 'HAND', 'hand': True, 'corpus': 'runs/sample_corpus'}
  return [hand] + sweeps.grid(base, loss__ssl_weight=[0.0, 0.005])
