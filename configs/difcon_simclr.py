r"""DIFCON with SimCLR's NT-Xent instead of Barlow Twins (paper section 4.5); needs large batches.

  python -m difcon_jax.train --config=configs/difcon_simclr.py --workdir=runs/difcon_simclr --config.corpus=...
"""

from difcon_jax import config_base


def get_config():
  c = config_base.paper_config()
  c.loss.ssl = 'nt_xent'
  c.loss.ssl_weight = 1.0
  c.loss.temperature = 0.1
  c.model.projector_dims = (2048, 128)
  return c
