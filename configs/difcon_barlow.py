r"""DIFCON (Barlow Twins), the paper's final model (section 4.5), sized for accelerators.

  python -m difcon_jax.train --config=configs/difcon_barlow.py --workdir=runs/difcon_barlow \
      [--config.corpus=corpora/icsd]

Paper, on ICSD: equivariance CS/EG/SG 88/80/78 %, invariance 79/71/66 %. Here it trains on the real structures of
runs/mp by default (python -m difcon_jax.data.build --cifs ../shared/data/mp_structures.tar.xz --out runs/mp), or on
any corpus given with --config.corpus. Untested at this size until an accelerator run: nothing here has been
trained beyond compiling its step.
"""

from difcon_jax import config_base


def get_config():
  return config_base.paper_config()
