r"""A Figure-2-like picture: one structure's ideal pattern and augmented draws.

  python -m difcon_jax.augment --plot out.png [--cif FILE.cif] [--distribution train] [--draws 2] [--seed 0]

The structure is --cif, else the first structure of the bundled sample (difcon_jax/data/sample); the README's
picture of α-quartz is --cif=tests/data/structures/quartz.cif.

With --distribution lab, one more panel per laboratory effect shows it alone (coloured) over the same pattern
without it (grey): peak widths, the Kα doublet, displacement, preferred orientation, background and noise.
"""

from absl import app
from absl import flags
import jax
import numpy as np

from difcon_jax.io import cli

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string('plot', None, 'Output PNG.', required=True)
  flags.DEFINE_string('cif', None, 'Structure (default: the first of the bundled sample).')
  flags.DEFINE_string('distribution', 'train', 'Distribution of the augmented draws.')
  flags.DEFINE_integer('draws', 2, 'Augmented draws to show.')
  flags.DEFINE_integer('seed', 0, 'PRNG seed of the draws.')

# (title, draw values, zoom: 'low' / 'high' angle peak or None for the whole pattern), each over the lab
# baseline of kernel.LAB_EFFECTS_OFF with a lab instrument's width at low angle (W = 2e-3: 0.045°).
_LAB_EFFECTS = (
    ('peak widths: instrument (Caglioti U, V, W) + 80 nm crystallites (Scherrer) + microstrain 4e-4',
     dict(U=5e-3, V=-1e-3, crystallite_size=80.0, microstrain=4e-4), 'high'),
    ('Cu Kα1/Kα2 doublet, ratio 0.5: the split grows with 2θ', dict(kalpha2_ratio=0.5), 'high'),
    ('zero shift 0.02° + sample displacement 0.1° cos θ', dict(zero_shift=0.02, displacement=0.1), 'low'),
    ('preferred orientation: March-Dollase r = 0.7 along [001]', dict(march_dollase_r=0.7), None),
    ('background: Chebyshev polynomial, amorphous hump, low-angle rise; counting noise (5,000 counts at the top)',
     dict(background_level=0.04, background_chebyshev=[0.2, -0.1, 0.1, 0.0], hump_amplitude=0.08,
          hump_centre=22.0, hump_fwhm=8.0, low_angle_amplitude=0.3, low_angle_decay=4.0,
          counting_noise=0.014), None),
)


def _lab_effect_patterns(kernel, params, tt, y, hkl, cell):
  """[1 + effects, bins]: the lab baseline, then each effect alone."""
  cfg = params.config('lab')
  base = jax.tree.map(np.asarray, kernel.sample_draws(jax.random.key(0), cfg, 1, tt.shape[1]))
  base = kernel.override_draws(base, **{**kernel.LAB_EFFECTS_OFF, 'W': 2e-3, 'preferred_direction': [0, 0, 1]})
  variants = [base] + [kernel.override_draws(base, **values) for _, values, _ in _LAB_EFFECTS]
  draws = {k: np.concatenate([v[k] for v in variants]) for k in base}
  render = jax.vmap(lambda d: kernel.render(tt[0], y[0], d, cfg, hkl[0], cell[0]))
  return np.asarray(jax.jit(render)(draws))


def main(argv):
  del argv
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  from difcon_jax.augment import kernel
  from difcon_jax.augment import params
  from difcon_jax.crystallography import diffraction
  from difcon_jax.crystallography import structure

  from difcon_jax.crystallography import pattern_grid as grid_lib
  from difcon_jax.data import corpus
  from difcon_jax.data import bundled_sample as sample
  path = FLAGS.cif or corpus.find_cifs(sample.cif_dir())[0]
  if FLAGS.distribution not in params.DISTRIBUTIONS:
    raise app.UsageError(f'--distribution: one of {", ".join(params.DISTRIBUTIONS)}')
  try:
    s, _ = structure.read_structure(path)
  except structure.StructureError as e:
    raise app.UsageError(str(e))
  peaks = diffraction.peak_list(s, grid_lib.WAVELENGTH, grid_lib.TWO_THETA_MIN, grid_lib.TWO_THETA_MAX)
  tt, y = diffraction.merge_coincident(peaks)
  hkl = diffraction.merged_hkl(peaks)[None].astype(np.int16)
  cell = np.asarray(s.cell, np.float32)[None]
  tt, y = tt[None].astype(np.float32), (y / y.max())[None].astype(np.float32)
  ideal = kernel.make_augment_fn(params.config('ideal'))(jax.random.key(0), tt, y)[0]
  aug_fn = kernel.make_augment_fn(params.config(FLAGS.distribution))
  keys = jax.random.split(jax.random.key(FLAGS.seed), FLAGS.draws)
  x = grid_lib.bin_centres(grid_lib.config())
  lab = FLAGS.distribution in params.LAB_DISTRIBUTIONS
  rows = FLAGS.draws + 1 + (len(_LAB_EFFECTS) if lab else 0)
  fig, axes = plt.subplots(rows, 1, figsize=(11, 2.2 * rows))
  axes[0].plot(x, ideal, lw=0.7, color='tab:blue')
  axes[0].set_title(f'{s.formula} ({s.space_group}): ideal', fontsize=9, loc='left')
  for i, (ax, k) in enumerate(zip(axes[1:], keys)):
    ax.plot(x, aug_fn(k, tt, y, hkl, cell)[0], lw=0.7, color=('tab:red', 'tab:orange', 'tab:green')[i % 3])
    ax.set_title(f'{FLAGS.distribution} draw {i + 1}', fontsize=9, loc='left')
  if lab:
    patterns = _lab_effect_patterns(kernel, params, tt, y, hkl, cell)
    strongest = lambda lo, hi: tt[0][(tt[0] >= lo) & (tt[0] < hi)][np.argmax(y[0][(tt[0] >= lo) & (tt[0] < hi)])]
    zoom = {'low': strongest(15.0, 35.0), 'high': strongest(60.0, 90.0)}
    for ax, (title, _, where), pattern in zip(axes[FLAGS.draws + 1:], _LAB_EFFECTS, patterns[1:]):
      if where is None:  # the whole pattern, the baseline mirrored below
        ax.plot(x, -patterns[0], lw=0.7, color='0.6')
      else:
        ax.plot(x, patterns[0], lw=0.7, color='0.6')
        ax.set_xlim(zoom[where] - 0.8, zoom[where] + 0.8)
        window = np.abs(x - zoom[where]) < 0.8
        ax.set_ylim(0, 1.1 * max(pattern[window].max(), patterns[0][window].max()))
      ax.plot(x, pattern, lw=0.8, color='tab:purple')
      ax.set_title(f'lab effect: {title} (grey: without it)', fontsize=9, loc='left')
  for ax in axes:
    ax.set_xlabel(f'2θ (degrees, at {grid_lib.WAVELENGTH} Å)', fontsize=8)
  fig.tight_layout()
  fig.savefig(FLAGS.plot, dpi=130)
  print(f'wrote {FLAGS.plot}')


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
