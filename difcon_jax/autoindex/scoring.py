"""The indexing baseline on the project's test sets, scored by metrics.py like every other model.

Sets (each gives observed lines and the true crystal system):
- `exact`: the first `examples` structures of a corpus split, lines straight from their peak lists
  (peaks.from_peak_list: the positions a careful manual picking would give, as the paper's NTREOR runs had);
- `equivariance`, `invariance`: the same structures rendered as the network is evaluated on them
  (evaluators.simulated_set with the `train` / `invariance_test` distributions and the evaluation seed: the same
  patterns), lines picked by peaks.pick;
- `experimental`: measured patterns read as `evaluate` reads them (evaluators.measured_set: on the model grid at
  the training wavelength), lines picked, Kα2 partners removed (Cu).

The prediction is the crystal system of the best cell; "no solution" is counted wrong (as class NO_SOLUTION in
the confusion matrix). The crystal-system accuracy is metrics.accuracies' top-1 of a one-column ranking.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Iterator

import numpy as np

from difcon_jax import config_base
from difcon_jax.crystallography import pattern_grid as grid_lib
from difcon_jax.evaluation import metrics
from difcon_jax.crystallography import spacegroups
from difcon_jax.autoindex import lines as peaks_lib
from difcon_jax.autoindex import search

SETS = ('exact', 'equivariance', 'invariance', 'experimental')
NO_SOLUTION = len(spacegroups.CRYSTAL_SYSTEMS)  # the 8th class of the confusion matrix
_TRIGONAL = spacegroups.CRYSTAL_SYSTEMS.index('trigonal')
_HEXAGONAL = spacegroups.CRYSTAL_SYSTEMS.index('hexagonal')


@dataclasses.dataclass
class Item:
  name: str
  two_theta: np.ndarray  # [n] observed lines, degrees at `wavelength`
  crystal_system: int  # the true label, index into CRYSTAL_SYSTEMS
  volume: float | None = None  # Å³ of the true cell, when known


def corpus_examples(corpus: str, split: str, examples: int | None) -> int:
  """How many structures `corpus_items` yields: the first `examples` of the split, or all of it."""
  from difcon_jax.data import corpus as corpus_lib  # pylint: disable=g-import-not-at-top
  size = len(corpus_lib.data_sources(corpus)[split])
  return min(size, examples or size)


def corpus_items(corpus: str, split: str, which: str, examples: int | None, eval_seed: int,
                 batch_size: int = 64) -> Iterator[Item]:
  """Observed lines of the first `examples` structures of a corpus split: 'exact' from the peak lists,
  'equivariance' / 'invariance' picked from the rendered evaluation patterns."""
  from difcon_jax.data import corpus as corpus_lib  # pylint: disable=g-import-not-at-top
  source = corpus_lib.data_sources(corpus)[split]
  n = min(len(source), examples or len(source))
  records = [source[i] for i in range(n)]  # the first n, as SimulatedSet takes them
  volume = _volumes(np.array([r['cell'] for r in records], np.float64).reshape(-1, 6))
  if which == 'exact':
    for i, r in enumerate(records):
      tt, _ = peaks_lib.from_peak_list(r['two_theta'], r['intensity'])
      yield Item(f'{split}[{i}]', tt, int(r['crystal_system']), volume[i])
    return
  from difcon_jax.evaluation import evaluators  # pylint: disable=g-import-not-at-top  (jax: only the rendered sets need it)
  config = config_base.paper_config()
  centres = grid_lib.bin_centres(grid_lib.from_config(config))
  data = evaluators.simulated_set(config, which, corpus=corpus, batch_size=batch_size, examples=n, seed=eval_seed,
                                  split=split)
  i = 0
  for b in data:
    for x, cs in zip(np.asarray(b.x)[:b.count], b.labels['crystal_system']):
      tt, _ = peaks_lib.pick(x, centres)
      yield Item(f'{split}[{i}]', tt, int(cs), volume[i])
      i += 1


def measured_items(path: str) -> tuple[list[Item], list[dict]]:
  """Observed lines of a measured set (evaluators.measured_set) and the rows of its unusable patterns."""
  from difcon_jax.evaluation import evaluators  # pylint: disable=g-import-not-at-top  (jax: only the read sets need it)
  config = config_base.paper_config()
  centres = grid_lib.bin_centres(grid_lib.from_config(config))
  x, sgs, names, rows = evaluators.measured_set(config, path)
  lines = peaks_lib.doublet(config.wavelength)  # read_measured takes an .npz as Cu Kα
  items = []
  for values, sg, name in zip(x, sgs, names):
    tt, h = peaks_lib.pick(values, centres)
    tt, _ = peaks_lib.strip_kalpha2(tt, h, config.wavelength, lines)
    items.append(Item(name, tt, spacegroups.crystal_system_index(int(sg))))
  return items, [r for r in rows if r['status'] != 'ok']


def _volumes(cell: np.ndarray) -> np.ndarray:
  """[n] volumes (Å³) of cells [n, 6] (a, b, c Å; alpha, beta, gamma degrees)."""
  a, b, c = cell[:, 0], cell[:, 1], cell[:, 2]
  ca, cb, cg = (np.cos(np.deg2rad(cell[:, i])) for i in (3, 4, 5))
  return a * b * c * np.sqrt(np.maximum(1 - ca**2 - cb**2 - cg**2 + 2 * ca * cb * cg, 0.0))


def run(items, wavelength: float, settings: search.Settings = search.Settings(), progress=None) -> dict:
  """Indexes every item; returns arrays: predicted [N] (crystal-system index, NO_SOLUTION when none), truth [N],
  seconds [N], m [N] (M_N of the best cell, 0 when none), volume_ratio [N] (found / true cell volume, NaN when
  unknown or no solution), and per-system search seconds {system: [searched patterns' seconds]}."""
  pred, truth, seconds, m, ratio, names = [], [], [], [], [], []
  by_system: dict[str, list[float]] = {s: [] for s in search.SYSTEMS}
  for item in items:
    start = time.perf_counter()
    result = search.index(item.two_theta, wavelength, settings)
    seconds.append(time.perf_counter() - start)
    best = result.best
    pred.append(NO_SOLUTION if best is None else spacegroups.CRYSTAL_SYSTEMS.index(best.crystal_system))
    truth.append(item.crystal_system)
    m.append(0.0 if best is None else best.m)
    ratio.append(np.nan if best is None or not item.volume else best.volume / item.volume)
    names.append(item.name)
    for s, t in result.seconds.items():
      by_system[s].append(t)
    if progress is not None:
      progress.update(1)
  return {'predicted': np.array(pred, np.int64), 'truth': np.array(truth, np.int64),
          'seconds': np.array(seconds), 'm': np.array(m), 'volume_ratio': np.array(ratio), 'names': names,
          'system_seconds': by_system}


def summary(out: dict) -> dict:
  """The set's numbers: crystal-system top-1 (metrics.accuracies), the share without a solution, the 8-class
  confusion (rows: truth; column 7: no solution), top-1 with trigonal and hexagonal taken as one class (what the
  metric cannot tell apart costs), the share of correct answers whose cell has the true volume (within 2%: not a
  sub- or supercell), and seconds per pattern (mean, median, by true crystal system, by system searched)."""
  pred, truth = out['predicted'], out['truth']
  n = len(truth)
  acc = metrics.accuracies({'crystal_system': pred[:, None]}, {'crystal_system': truth}, ks=(1,))
  merge = lambda x: np.where(x == _TRIGONAL, _HEXAGONAL, x)
  merged = metrics.accuracies({'crystal_system': merge(pred)[:, None]}, {'crystal_system': merge(truth)}, ks=(1,))
  right = pred == truth
  ratio = out['volume_ratio'][right]
  known = np.isfinite(ratio)
  seconds = out['seconds']
  return {
      'examples': int(n),
      'crystal_system_top1': acc['crystal_system_top1'] if n else 0.0,
      'no_solution': float(np.mean(pred == NO_SOLUTION)) if n else 0.0,
      'crystal_system_top1_trigonal_hexagonal_merged': merged['crystal_system_top1'] if n else 0.0,
      'true_cell_volume_among_correct': float(np.mean(np.abs(ratio[known] - 1) <= 0.02)) if known.any() else None,
      'crystal_system_confusion': metrics.confusion(truth, pred, NO_SOLUTION + 1)[:NO_SOLUTION].tolist(),
      'seconds_per_pattern_mean': float(seconds.mean()) if n else 0.0,
      'seconds_per_pattern_median': float(np.median(seconds)) if n else 0.0,
      'seconds_by_true_system': {spacegroups.CRYSTAL_SYSTEMS[c]: float(seconds[truth == c].mean())
                                 for c in np.unique(truth)},
      'seconds_by_system_searched': {s: {'patterns': len(t), 'mean': float(np.mean(t))}
                                     for s, t in out['system_seconds'].items() if t},
  }
