r"""predict with and without the indexing search, in one run: patterns per second of predict_files.

  python benchmarks/predict_index_throughput.py [--patterns 200] [--budget 1.0] [--workers N] [--json]

The patterns are the bundled sample corpus's test structures rendered with the `lab` distribution, written as
two-column .xy files at Cu Kα (what a user's files look like); both sides read the same files with the bundled
model: the baseline is `predict --noindex`, the other `predict` as it runs by default (the search under --budget CPU
seconds per pattern in a pool of --workers processes, then the combination).

Wall-clock rates depend on what else the machine runs; the CPU seconds per pattern (this process and its search
processes, from getrusage) do not, so the script also gives the time 1,000 patterns would take on this machine's
cores with nothing beside it (cpu seconds / cores: the search pool keeps every core busy).
"""

import json
import os
import platform
import resource
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

_PATTERNS = flags.DEFINE_integer('patterns', 200, 'Patterns to predict.')
_BUDGET = flags.DEFINE_float('budget', 1.0, 'CPU seconds of search per pattern.')
_WORKERS = flags.DEFINE_integer('workers', None, 'Search processes (default: the CPU cores).')
_JSON = flags.DEFINE_bool('json', False, 'Print one JSON line at the end.')


def write_patterns(folder: str, n: int) -> list[str]:
  """n lab-rendered test patterns of the sample corpus as .xy files (Cu Kα, 5-90°), their paths."""
  import jax  # pylint: disable=g-import-not-at-top
  from difcon_jax.evaluation import sets as eval_sets
  from difcon_jax.crystallography import pattern_grid as grid  # pylint: disable=g-import-not-at-top
  from difcon_jax.data import bundled_sample as sample  # pylint: disable=g-import-not-at-top
  g = grid.config()
  data = eval_sets.SimulatedSet(sample.corpus(progress=False), 'lab', g.num_bins, g.two_theta_max, 64, 1, n)
  centres = grid.bin_centres(g)
  keep = (centres >= 5) & (centres <= 90)
  paths = []
  for b in data:
    for x in np.asarray(jax.device_get(b.x))[:b.count]:
      path = os.path.join(folder, f'{len(paths):05d}.xy')
      np.savetxt(path, np.stack([centres[keep], 1000 * np.maximum(x[keep], 0)], 1), fmt='%.3f',
                 header='wavelength 1.5406')
      paths.append(path)
  return paths


def cpu_seconds() -> tuple[float, float]:
  """User + system CPU seconds of this process, and of its ended child processes (the search pool's)."""
  own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
  return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def main(argv):
  del argv
  from difcon_jax.inference import model as inference
  from difcon_jax import predict  # pylint: disable=g-import-not-at-top
  from difcon_jax.autoindex import combine  # pylint: disable=g-import-not-at-top
  model = inference.Model()
  combination = combine.find(model.folder)
  with tempfile.TemporaryDirectory() as folder:
    paths = write_patterns(folder, _PATTERNS.value)
    predict.predict_files(paths[:2], model, None, progress=False)  # compile and warm caches
    result = {}
    for name, index in (('network', False), ('network_and_index', True)):
      start, cpu = time.perf_counter(), cpu_seconds()
      predict.predict_files(paths, model, None, progress=False, index=index, combination=combination,
                            index_budget=_BUDGET.value, index_workers=_WORKERS.value)
      result[f'{name}_patterns_per_s'] = len(paths) / (time.perf_counter() - start)
      own, children = np.subtract(cpu_seconds(), cpu) / len(paths)
      result[f'{name}_cpu_s_per_pattern'] = own + children
      result[f'{name}_child_cpu_s_per_pattern'] = children
  result.update(ratio=result['network_and_index_patterns_per_s'] / result['network_patterns_per_s'],
                patterns=len(paths), budget_s=_BUDGET.value, combination=combination is not None,
                seconds_per_1000_with_index=1000 / result['network_and_index_patterns_per_s'],
                idle_machine_seconds_per_1000_with_index=1000 * result['network_and_index_cpu_s_per_pattern']
                / os.cpu_count(),
                machine=f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores')
  print(f"predict: network alone {result['network_patterns_per_s']:.1f} patterns/s, with the indexing search "
        f"{result['network_and_index_patterns_per_s']:.2f} patterns/s (ratio {result['ratio']:.3f}; 1,000 patterns "
        f"in {result['seconds_per_1000_with_index'] / 60:.1f} min); {len(paths)} patterns, budget {_BUDGET.value} s; "
        f"{result['network_and_index_cpu_s_per_pattern']:.2f} CPU s per pattern, so 1,000 patterns in "
        f"{result['idle_machine_seconds_per_1000_with_index'] / 60:.1f} min on {os.cpu_count()} idle cores")
  if _JSON.value:
    print(json.dumps(result))


if __name__ == '__main__':
  app.run(main)
