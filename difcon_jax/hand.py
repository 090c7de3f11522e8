r"""HAND (paper section 4.2): randomised decision trees on hand-made features of the peak list.

  python -m difcon_jax.hand --corpus=DIR [--experimental=PATTERNS.npz] [--out=DIR]

Features (after Suzuki et al.): the first ten peak positions (2θ at the training wavelength, peaks of at least
--min_intensity of the strongest) and the number of such peaks in 0-90°. Separate ExtraTrees classifiers for
crystal system, extinction group and space group, trained on the corpus train split; evaluated on the test split
(the equivariance set), on those structures rendered with the invariance_test augmentations and, when given, on
measured patterns (peaks picked from the profile in both). The invariance patterns are those the network is
evaluated on (evaluators.simulated_set, the same seed), the measured ones are read as evaluate reads them
(evaluators.measured_set, through io/measured.py), and the metrics are the network's (metrics.summary of each
classifier's ranking), with how often the predicted space group falls outside the predicted crystal system.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app
from absl import flags
from etils import epath
import numpy as np

from difcon_jax.io import cli
from difcon_jax import config_base
from difcon_jax.evaluation import evaluators
from difcon_jax.crystallography import pattern_grid as grid_lib
from difcon_jax.evaluation import metrics
from difcon_jax.data import corpus as corpus_lib
from difcon_jax.io import measured
from difcon_jax.io import outputs
from difcon_jax.io import patterns as patterns_lib
from difcon_jax.models import heads

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string('corpus', None, 'Corpus folder.')
  flags.DEFINE_string('experimental', None, 'Measured patterns (.npz like rruff_dev.npz) to evaluate on.')
  flags.DEFINE_string('out', None, 'Folder for metrics.json (default: print only).')
  flags.DEFINE_float('min_intensity', 0.01, 'Peaks weaker than this share of the strongest are ignored.')
  flags.DEFINE_integer('trees', 300, 'Trees per classifier.', lower_bound=1)
  flags.DEFINE_integer('min_samples_leaf', 1, 'Fewest training examples per leaf. Each node of the space-group '
                       'trees stores 230 class weights, so fully grown trees on a large corpus need tens of GB '
                       '(100 trees on 90,000 structures: more than 19 GB); a larger leaf bounds that.', lower_bound=1)
  flags.DEFINE_integer('seed', 0, 'Seed of the trees.')
  flags.DEFINE_integer('eval_seed', config_base.paper_config().eval_seed,
                       'Seed of the invariance set\'s draws (the trainer\'s config.eval_seed).')


def features(two_theta: np.ndarray, intensity: np.ndarray, min_intensity: float = 0.01) -> np.ndarray:
  """[n, 11]: first ten peak positions in 0-90° (0 where fewer) and the peak count there."""
  out = np.zeros((len(two_theta), 11), np.float32)
  for i, (tt, y) in enumerate(zip(two_theta, intensity)):
    keep = (tt > 0) & (tt <= 90) & (y >= min_intensity * max(y.max(), 1e-12))
    pos = np.sort(tt[keep])
    out[i, :min(10, len(pos))] = pos[:10]
    out[i, 10] = len(pos)
  return out


def picked_peaks(pattern: np.ndarray, grid, prominence: float = 0.02):
  """Peak positions (bin centres, degrees) and heights picked from a profile on the grid."""
  from scipy.signal import find_peaks  # pylint: disable=g-import-not-at-top
  idx, _ = find_peaks(pattern, prominence=prominence)
  return grid_lib.bin_centres(grid)[idx], pattern[idx]


class Hand:
  """Three ExtraTrees classifiers."""

  def __init__(self, trees: int = 300, seed: int = 0, min_samples_leaf: int = 1):
    from sklearn.ensemble import ExtraTreesClassifier  # pylint: disable=g-import-not-at-top
    self.models = {h: ExtraTreesClassifier(n_estimators=trees, random_state=seed, n_jobs=-1,
                                            min_samples_leaf=min_samples_leaf) for h in heads.HEADS}

  def fit(self, x, labels):
    for h in heads.HEADS:
      self.models[h].fit(x, labels[h])
    return self

  def rank(self, x, k: int = 5) -> dict:
    """{head: [N, k] labels, most probable first} (ties: the lower label first, as the trees' predict)."""
    out = {}
    for h in heads.HEADS:
      proba = self.models[h].predict_proba(x)
      out[h] = self.models[h].classes_[np.argsort(-proba, 1, kind='stable')[:, :k]]
    return out


def evaluate(model: Hand, x, labels) -> dict:
  """metrics.summary of the classifiers' rankings on features x with their labels."""
  return metrics.summary(model.rank(x), labels)


def run(corpus: str, experimental: str | None = None, min_intensity: float = 0.01, trees: int = 300,
        seed: int = 0, eval_seed: int = config_base.paper_config().eval_seed, min_samples_leaf: int = 1) -> dict:
  train = corpus_lib.load_arrays(corpus, 'train')
  test = corpus_lib.load_arrays(corpus, 'test')
  model = Hand(trees, seed, min_samples_leaf).fit(features(train['two_theta'], train['intensity'], min_intensity),
                                {h: train[h] for h in heads.HEADS})
  labels = {h: test[h] for h in heads.HEADS}
  results = {'equivariance': evaluate(model, features(test['two_theta'], test['intensity'], min_intensity), labels)}
  # Invariance: the network's invariance set (the test structures, invariance_test draws), peaks picked.
  config = config_base.paper_config()
  grid = grid_lib.from_config(config)
  data = evaluators.simulated_set(config, 'invariance', corpus=corpus, batch_size=64, seed=eval_seed)
  picked, inv_labels = [], []
  for b in data:
    picked += [picked_peaks(np.maximum(v, 0), grid) for v in np.asarray(b.x)[:b.count]]
    inv_labels.append(b.labels)
  x_inv = np.stack([features([t], [y], min_intensity)[0] for t, y in picked])
  results['invariance'] = evaluate(model, x_inv, {h: np.concatenate([l[h] for l in inv_labels]) for h in heads.HEADS})
  if experimental:
    x, sgs, _, _ = evaluators.measured_set(config, experimental)
    picked = [picked_peaks(g, grid) for g in x]
    x = np.stack([features([t], [y], min_intensity)[0] for t, y in picked])
    results['experimental'] = evaluate(model, x, metrics.labels_of_space_groups(sgs))
  return results


def check_flags() -> bool:
  """Prints one line per bad flag; True when all are fine. Before any work."""
  checks = cli.Checks()
  try:
    corpus_lib.dataset_dir(FLAGS.corpus)
  except FileNotFoundError as e:
    checks.require(False, 'corpus', FLAGS.corpus, str(e).split(': ', 1)[-1])
  checks.number('min_intensity', FLAGS.min_intensity, 0, 1, hi_open=True)
  checks.number('seed', FLAGS.seed, 0, 2**32 - 1, integer=True)  # the trees' random_state
  checks.number('eval_seed', FLAGS.eval_seed, 0, 2**32 - 1, integer=True)
  if FLAGS.experimental:
    _check_experimental(checks)
  if FLAGS.out and checks.output_dir('out', FLAGS.out):
    corpus_files = [(os.path.join(FLAGS.corpus, name), f'the corpus\'s {name}') for name in (corpus_lib.NAME,
                                                                                          'build_report.json')]
    for flag, path, why in outputs.clashes({'out': os.path.join(FLAGS.out, 'metrics.json')},
                                           [FLAGS.experimental] if FLAGS.experimental else [], corpus_files):
      checks.require(False, flag, FLAGS.out, f'{why} ({path})')
  return not checks.report('hand')


def _check_experimental(checks: cli.Checks) -> None:
  """--experimental: an .npz of measured patterns that can be read (read here, before minutes of training the
  trees, rather than after them)."""
  if not checks.require(FLAGS.experimental.endswith('.npz') and os.path.isfile(FLAGS.experimental), 'experimental',
                        FLAGS.experimental, 'an .npz file that exists (the layout of rruff_dev.npz)'):
    return
  try:
    measured.read_set(FLAGS.experimental, None)
  except (patterns_lib.PatternError, OSError, ValueError) as e:
    checks.require(False, 'experimental', FLAGS.experimental, f'a readable .npz of measured patterns ({e})')


def main(argv):
  del argv
  if not FLAGS.corpus:
    raise app.UsageError('--corpus is required')
  if not check_flags():
    return cli.USAGE_ERROR
  try:
    results = run(FLAGS.corpus, FLAGS.experimental, FLAGS.min_intensity, FLAGS.trees, FLAGS.seed, FLAGS.eval_seed,
                  FLAGS.min_samples_leaf)
  except (corpus_lib.CorpusError, patterns_lib.PatternError) as e:
    print(f'hand: error: {e}', file=sys.stderr)
    return 1
  for name, m in results.items():
    print(f"HAND {name} ({m['examples']}): " + '  '.join(f"{h} {m[f'{h}_top1']:.3f}" for h in heads.HEADS) +
          f"  SG outside predicted CS {m['space_group_outside_predicted_crystal_system']:.3f}")
  if FLAGS.out:
    out = epath.Path(FLAGS.out)
    out.mkdir(parents=True, exist_ok=True)
    with outputs.write(out / 'metrics.json') as f:
      json.dump(results, f, indent=1)


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
