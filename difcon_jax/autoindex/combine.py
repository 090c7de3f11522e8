"""The network's crystal system and the indexing search's cells, combined into one ranking.

The network ranks the seven crystal systems from the whole pattern; the search (search.py) finds cells that index
the picked lines, level by level from cubic down to monoclinic. Neither is enough alone: the network often
contradicts the lattice the lines imply, and the search cannot call triclinic, says nothing of the extinction
group, and fails on cropped or broadened patterns. This module turns both into one crystal-system distribution:

- `search_pattern`: the evidence of one pattern (lines picked on the model grid, Kα2 partners removed, the search
  run under a time budget): the best cell of each metric system searched, which systems were searched, the
  search's own answer, and whether it ran out of time;
- `features`: what the combination sees of a pattern: log p(crystal system) of the network (7), per metric system
  (cubic, tetragonal, hexagonal, orthorhombic, monoclinic) whether it was searched, whether a cell was found and
  accepted, log(1 + M_N) and the share of lines it leaves unindexed, whether enough lines were picked, and the
  search's answer one-hot over the six lattice classes;
- `Combination`: a multinomial logistic regression from those features to six lattice classes (trigonal and
  hexagonal share one metric and are one class here), fitted with scikit-learn on simulated validation patterns
  (`fit`) and stored as JSON beside the model (COMBINATION_FILE: feature names, standardisation, weights, and the
  record of the fit). At prediction it is NumPy only;
- `combined_probs`: the seven probabilities: the six classes' from the combination, the trigonal/hexagonal class
  split in the network's own ratio (no metric tells them apart: it stays the network's call). A pattern whose
  search ran out of time, or had too few lines to search, keeps the network's probabilities.

The extinction-group and space-group rankings follow the combined crystal system through models.heads.rank (the
combined log-probabilities in place of the crystal-system logits), as they follow the network's alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time

import numpy as np
import tqdm

from difcon_jax.crystallography import spacegroups
from difcon_jax.data import workers as workers_lib
from difcon_jax.autoindex import lines as peaks_lib
from difcon_jax.autoindex import search

COMBINATION_FILE = 'combination.json'
FORMAT = 1
METRICS = search.SYSTEMS  # the five metric systems the search knows
CLASSES = ('triclinic', 'monoclinic', 'orthorhombic', 'tetragonal', 'trigonal/hexagonal', 'cubic')
SYSTEMS = spacegroups.CRYSTAL_SYSTEMS
_CLASS_OF_SYSTEM = np.array([CLASSES.index('trigonal/hexagonal') if s in ('trigonal', 'hexagonal') else CLASSES.index(s)
                             for s in SYSTEMS])
_TRIGONAL, _HEXAGONAL = SYSTEMS.index('trigonal'), SYSTEMS.index('hexagonal')
_FLOOR = 1e-6  # probabilities are floored before their logarithm is a feature


def lattice_class(systems: np.ndarray) -> np.ndarray:
  """The CLASSES index of crystal-system indices [N] (trigonal and hexagonal: one class); -1 stays -1 (none)."""
  systems = np.asarray(systems)
  return np.where(systems >= 0, _CLASS_OF_SYSTEM[np.maximum(systems, 0)], -1)


@dataclasses.dataclass
class Evidence:
  """What the search found for one pattern."""
  two_theta: np.ndarray  # [n] the picked lines (degrees 2θ at the model wavelength), ascending
  searched: tuple[str, ...]  # metric systems searched
  best: dict[str, search.Solution]  # the best cell of each metric system searched that gave one
  chosen: search.Solution | None  # the search's answer (search.index's best: accepted by its rule), or None
  timed_out: bool = False  # the time budget ran out first (or the search's worker was stopped)
  seconds: float = 0.0
  error: str = ''  # why there is no search (a worker that died), else ''

  @property
  def usable(self) -> bool:
    """Whether the combination may use it: the search ran to its end on enough lines."""
    return not self.timed_out and not self.error and len(self.two_theta) >= search.Settings().min_lines


def search_pattern(values: np.ndarray, centres: np.ndarray, wavelength: float, budget: float | None = None,
                   settings: search.Settings = search.Settings()) -> Evidence:
  """The evidence of a pattern on the model grid (values [bins] at bin centres [bins], degrees 2θ at `wavelength`
  Å): lines picked, Kα2 partners removed, then search.index under a time budget (CPU seconds of this process, so
  that a busy machine does not change the answer; None: none)."""
  start = time.perf_counter()
  tt, height = peaks_lib.pick(values, centres)
  tt, _ = peaks_lib.strip_kalpha2(tt, height, wavelength, peaks_lib.doublet(wavelength))
  # The budget is the search's: a fresh worker's first picking also pays its imports.
  deadline = None if budget is None else time.process_time() + budget
  result = search.index(tt, wavelength, settings, deadline=deadline)
  best = {}
  for sol in result.solutions:  # sorted best first
    best.setdefault(sol.system, sol)
  return Evidence(np.sort(tt)[:settings.lines], tuple(result.seconds), best, result.best, result.timed_out,
                  time.perf_counter() - start)


def search_job(job: tuple) -> Evidence:
  """search_pattern(*job), for a worker process (workers.imap pickles module-level functions)."""
  return search_pattern(*job)


def failed_search(job: tuple, reason: str) -> Evidence:
  """The evidence of a pattern whose search worker died or overran the pool's hard limit."""
  return Evidence(np.zeros(0), (), {}, None, timed_out='took longer' in reason, error=reason)


DEFAULT_BUDGET = 1.0  # CPU seconds of search per pattern (predict --index_budget); see docs/benchmarks.md


def search_patterns(x: np.ndarray, centres: np.ndarray, wavelength: float, budget: float | None = DEFAULT_BUDGET,
                    workers: int | None = None, progress: bool = True,
                    settings: search.Settings = search.Settings()) -> list[Evidence]:
  """search_pattern for every pattern of x [N, bins], in a pool of `workers` processes (default: the CPU cores)
  with a progress bar (rate, ETA). A worker that dies or runs past three budgets and 10 s (wall clock) is stopped:
  that pattern's evidence says so and the others go on."""
  jobs = ((values, centres, wavelength, budget, settings) for values in x)
  n = len(x)
  if n == 0:
    return []
  workers = max(1, min(workers or os.cpu_count() or 1, n))
  hard_limit = None if budget is None else 3 * budget + 10
  out = []
  with tqdm.tqdm(total=n, desc='indexing', unit='pattern', file=sys.stderr, disable=not progress) as bar:
    for ev in workers_lib.imap(search_job, jobs, workers, on_failure=failed_search, timeout=hard_limit):
      out.append(ev)
      bar.update()
  return out


def network_probs(logits: dict) -> np.ndarray:
  """[N, 7] the network's crystal-system probabilities from its logits."""
  z = np.asarray(logits['crystal_system'], np.float64)
  z = np.nan_to_num(z - np.nanmax(z, 1, keepdims=True), nan=-1e30)
  e = np.exp(z)
  return e / e.sum(1, keepdims=True)


def feature_names() -> list[str]:
  names = [f'log_p_network_{s}' for s in SYSTEMS]
  for m in METRICS:
    names += [f'{m}_searched', f'{m}_found', f'{m}_accepted', f'{m}_log1p_m', f'{m}_unindexed_share']
  names.append('enough_lines')
  names += [f'search_answer_{c}' for c in CLASSES]
  return names


def features(network_probs: np.ndarray, evidence: Evidence, settings: search.Settings = search.Settings()
             ) -> np.ndarray:
  """The combination's inputs [F] for one pattern (feature_names order): network_probs [7], the search evidence."""
  f = list(np.log(np.clip(np.asarray(network_probs, np.float64), _FLOOR, 1.0)))
  for m in METRICS:
    sol = evidence.best.get(m)
    found = sol is not None
    f += [float(m in evidence.searched), float(found), float(found and sol.accepted(settings)),
          math.log1p(min(sol.m, 1e3)) if found else 0.0, sol.unindexed / max(sol.n, 1) if found else 0.0]
  f.append(float(len(evidence.two_theta) >= settings.min_lines))
  answer = np.zeros(len(CLASSES))
  if evidence.chosen is not None:
    answer[_CLASS_OF_SYSTEM[SYSTEMS.index(evidence.chosen.crystal_system)]] = 1.0
  return np.array(f + list(answer))


@dataclasses.dataclass
class Combination:
  """A fitted combination: standardised features -> six lattice classes (multinomial logistic regression)."""
  names: list[str]
  mean: np.ndarray  # [F]
  scale: np.ndarray  # [F]
  weights: np.ndarray  # [F, 6]
  bias: np.ndarray  # [6]
  record: dict  # how it was fitted (data, patterns, accuracy on them, command)

  def class_probs(self, x: np.ndarray) -> np.ndarray:
    """[N, 6] class probabilities of feature rows x [N, F]."""
    z = ((x - self.mean) / self.scale) @ self.weights + self.bias
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)

  def save(self, path: str) -> None:
    with open(path, 'w') as f:
      json.dump({'format': FORMAT, 'classes': list(CLASSES), 'features': self.names,
                 'mean': self.mean.tolist(), 'scale': self.scale.tolist(), 'weights': self.weights.tolist(),
                 'bias': self.bias.tolist(), 'record': self.record}, f, indent=1)


class CombinationError(ValueError):
  """A combination file that cannot be used (the message names it)."""


def load(path: str) -> Combination:
  """The combination in `path` (COMBINATION_FILE of a model folder)."""
  try:
    with open(path) as f:
      d = json.load(f)
    c = Combination(list(d['features']), np.asarray(d['mean'], float), np.asarray(d['scale'], float),
                    np.asarray(d['weights'], float), np.asarray(d['bias'], float), dict(d.get('record', {})))
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise CombinationError(f'{path}: not a combination file this version reads ({type(e).__name__}: {e})') from None
  if d.get('format') != FORMAT or c.names != feature_names() or c.weights.shape != (len(c.names), len(CLASSES)):
    raise CombinationError(f'{path}: fitted for other features or classes than this version computes; fit it '
                           f'again (python -m difcon_jax.index --fit_combination)')
  return c


def find(model_dir: str | None) -> Combination | None:
  """The combination fitted for the model in `model_dir`, or None when it has none."""
  if not model_dir:
    return None
  path = os.path.join(model_dir, COMBINATION_FILE)
  return load(path) if os.path.exists(path) else None


def combined_probs(network_probs: np.ndarray, evidence: list[Evidence], combination: Combination,
                   settings: search.Settings = search.Settings()) -> np.ndarray:
  """[N, 7] crystal-system probabilities: the combination's six classes, trigonal/hexagonal split as the network
  splits them; the network's own where a pattern's evidence is not usable (timed out, too few lines)."""
  network_probs = np.asarray(network_probs, np.float64)
  out = network_probs.copy()
  usable = np.array([e.usable for e in evidence], bool)
  if not usable.any():
    return out
  x = np.stack([features(p, e, settings) for p, e in zip(network_probs[usable], np.array(evidence)[usable])])
  classes = combination.class_probs(x)  # [n, 6]
  seven = classes[:, _CLASS_OF_SYSTEM]  # the trigonal/hexagonal class in both columns, halved below
  pair = network_probs[usable][:, [_TRIGONAL, _HEXAGONAL]]
  share = np.where(pair.sum(1, keepdims=True) > 0, pair / np.maximum(pair.sum(1, keepdims=True), 1e-300), 0.5)
  seven[:, [_TRIGONAL, _HEXAGONAL]] *= share
  out[usable] = seven
  return out


def fit(network_probs: np.ndarray, evidence: list[Evidence], truth: np.ndarray, record: dict,
        settings: search.Settings = search.Settings(), regularisation: float = 1.0) -> Combination:
  """Fits the combination on labelled patterns: network_probs [N, 7], their evidence, true crystal systems [N]
  (indices into CRYSTAL_SYSTEMS). Only patterns with usable evidence are fitted on (the others keep the network's
  answer anyway). `record` (the data and command) is stored with it, with the patterns used and the fit's accuracy
  on them."""
  from sklearn import linear_model  # pylint: disable=g-import-not-at-top  (needed to fit, not to predict)
  usable = np.array([e.usable for e in evidence], bool)
  x = np.stack([features(p, e, settings) for p, e in zip(network_probs[usable], np.array(evidence)[usable])])
  y = _CLASS_OF_SYSTEM[np.asarray(truth)[usable]]
  mean, scale = x.mean(0), x.std(0)
  scale = np.where(scale > 1e-9, scale, 1.0)
  model = linear_model.LogisticRegression(C=regularisation, max_iter=2000)
  model.fit((x - mean) / scale, y)
  weights = np.zeros((x.shape[1], len(CLASSES)))
  bias = np.full(len(CLASSES), -30.0)  # a class never seen in the fit is never answered
  weights[:, model.classes_] = model.coef_.T
  bias[model.classes_] = model.intercept_
  c = Combination(feature_names(), mean, scale, weights, bias, {})
  fitted = np.argmax(c.class_probs(x), 1)
  c.record = {**record, 'patterns': int(len(evidence)), 'fitted_on': int(usable.sum()),
              'class_counts': {CLASSES[k]: int((y == k).sum()) for k in range(len(CLASSES))},
              'accuracy_on_fit_patterns': float(np.mean(fitted == y)), 'regularisation': regularisation}
  return c
