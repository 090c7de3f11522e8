r"""DIFCON (Barlow Twins), the paper's final model (section 4.5), sized for accelerators.

  python -m difcon_jax.train --config=configs/difcon_barlow.py --workdir=runs/difcon_barlow \
      --config.corpus=corpora/icsd

Paper, on ICSD: equivariance CS/EG/SG 88/80/78 %, invariance 79/71/66 %.
"""

from difcon_jax import config_base


def get_config():
  return config_base.paper_config()
