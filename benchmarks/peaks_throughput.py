r"""Peak-list throughput: difcon-jax against pymatgen's XRDCalculator on the same CIFs, in one run.

  python benchmarks/peaks_throughput.py [--cifs DIR] [--limit N] [--two_theta_max 90] [--json]

Both sides read the CIF and compute the reflection list, one process, one structure at a time.
"""

import json
import os
import platform
import time
import warnings

from absl import app
from absl import flags

_CIFS = flags.DEFINE_string('cifs', None, 'Folder of CIFs (default: the bundled synthetic sample).')
_LIMIT = flags.DEFINE_integer('limit', 200, 'Structures to time.')
_TT_MAX = flags.DEFINE_float('two_theta_max', 90.0, 'Highest 2θ.')
_JSON = flags.DEFINE_bool('json', False, 'Print one JSON line at the end.')


def main(argv):
  del argv
  from difcon_jax.crystallography import diffraction
  from difcon_jax.crystallography import structure
  from difcon_jax.data import corpus
  from difcon_jax.data import bundled_sample as sample
  from pymatgen.analysis.diffraction.xrd import XRDCalculator
  from pymatgen.core import Structure
  paths = corpus.find_cifs(_CIFS.value or sample.cif_dir())[:_LIMIT.value]
  calc = XRDCalculator(wavelength=1.5406)

  def ours(p):
    s, _ = structure.read_structure(p, check_symmetry=False)
    return diffraction.peak_list(s, 1.5406, 5.0, _TT_MAX.value)

  def theirs(p):
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')
      return calc.get_pattern(Structure.from_file(p), two_theta_range=(5.0, _TT_MAX.value))

  ours(paths[0]), theirs(paths[0])  # imports and caches warm
  result = {}
  for name, fn in (('difcon_jax', ours), ('pymatgen', theirs)):
    t = time.perf_counter()
    for p in paths:
      fn(p)
    result[f'{name}_structures_per_s'] = len(paths) / (time.perf_counter() - t)
  result.update(ratio=result['difcon_jax_structures_per_s'] / result['pymatgen_structures_per_s'],
                structures=len(paths), two_theta_max=_TT_MAX.value, machine=f'{platform.processor() or platform.machine()}, '
                f'{os.cpu_count()} cores')
  print(f"difcon-jax {result['difcon_jax_structures_per_s']:.1f} structures/s, pymatgen "
        f"{result['pymatgen_structures_per_s']:.1f} structures/s, ratio {result['ratio']:.1f}x "
        f"({len(paths)} structures, 2θ 5-{_TT_MAX.value}°)")
  if _JSON.value:
    print(json.dumps(result))


if __name__ == '__main__':
  app.run(main)
