r"""A Figure-2-like picture: one structure's ideal pattern and augmented draws.

  python -m difcon_jax.augment --plot out.png [--cif FILE.cif] [--distribution train] [--draws 2] [--seed 0]
"""

import os

from absl import app
from absl import flags
import jax
import numpy as np

_PLOT = flags.DEFINE_string('plot', None, 'Output PNG.', required=True)
_CIF = flags.DEFINE_string('cif', None, 'Structure (default: α-quartz from the test structures).')
_DIST = flags.DEFINE_string('distribution', 'train', 'Distribution of the augmented draws.')
_DRAWS = flags.DEFINE_integer('draws', 2, 'Augmented draws to show.')
_SEED = flags.DEFINE_integer('seed', 0, 'PRNG seed.')


def main(argv):
  del argv
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  from difcon_jax.augment import kernel, params
  from difcon_jax.crystallography import diffraction, structure, wavelength

  path = _CIF.value or os.path.join(os.path.dirname(__file__), '..', '..', 'tests', 'data', 'structures',
                                    'quartz.cif')
  try:
    s, _ = structure.read_structure(path)
  except structure.StructureError as e:
    raise app.UsageError(str(e))
  peaks = diffraction.peak_list(s, wavelength.CU_KA, 0.0, 120.0)
  tt, y = diffraction.merge_coincident(peaks)
  tt, y = tt[None].astype(np.float32), (y / y.max())[None].astype(np.float32)
  ideal = kernel.make_augment_fn(params.config('ideal'))(jax.random.key(0), tt, y)[0]
  aug_fn = kernel.make_augment_fn(params.config(_DIST.value))
  keys = jax.random.split(jax.random.key(_SEED.value), _DRAWS.value)
  x = (np.arange(ideal.shape[0]) + 0.5) * kernel.bin_width(params.grid_config())
  fig, axes = plt.subplots(_DRAWS.value + 1, 1, figsize=(11, 2.2 * (_DRAWS.value + 1)), sharex=True)
  axes[0].plot(x, ideal, lw=0.7, color='tab:blue')
  axes[0].set_title(f'{s.formula} ({s.space_group}): ideal', fontsize=9, loc='left')
  for i, (ax, k) in enumerate(zip(axes[1:], keys)):
    ax.plot(x, aug_fn(k, tt, y)[0], lw=0.7, color=('tab:red', 'tab:orange', 'tab:green')[i % 3])
    ax.set_title(f'{_DIST.value} draw {i + 1}', fontsize=9, loc='left')
  axes[-1].set_xlabel('2θ (degrees, Cu Kα 1.5418 Å)')
  fig.tight_layout()
  fig.savefig(_PLOT.value, dpi=130)
  print(f'wrote {_PLOT.value}')


if __name__ == '__main__':
  app.run(main)
