r"""HAND (paper section 4.2): randomised decision trees on hand-made features of the peak list.

  python -m difcon_jax.hand --corpus=DIR [--experimental=PATTERNS.npz] [--out=DIR]

Features (after Suzuki et al.): the first ten peak positions (2θ at Cu Kα 1.5418 Å, peaks of at least
--min_intensity of the strongest) and the number of such peaks in 0-90°. Separate ExtraTrees classifiers for
crystal system, extinction group and space group, trained on the corpus train split; evaluated on the test split
(the equivariance set), on those structures rendered with the invariance_test augmentations and, when given, on
measured patterns (peaks picked from the profile in both). Reports how
often the predicted space group falls outside the predicted crystal system.
"""

from __future__ import annotations

import json
import os

from absl import app
from absl import flags
import numpy as np

from difcon_jax.crystallography import spacegroups
from difcon_jax.data import corpus as corpus_lib

FLAGS = flags.FLAGS
HEADS = ('crystal_system', 'extinction_group', 'space_group')


def define_flags():
  flags.DEFINE_string('corpus', None, 'Corpus folder.')
  flags.DEFINE_string('experimental', None, 'Measured patterns (.npz like rruff_dev.npz) to evaluate on.')
  flags.DEFINE_string('out', None, 'Folder for metrics.json (default: print only).')
  flags.DEFINE_float('min_intensity', 0.01, 'Peaks weaker than this share of the strongest are ignored.')
  flags.DEFINE_integer('trees', 300, 'Trees per classifier.')


def features(two_theta: np.ndarray, intensity: np.ndarray, min_intensity: float = 0.01) -> np.ndarray:
  """[n, 11]: first ten peak positions in 0-90° (0 where fewer) and the peak count there."""
  out = np.zeros((len(two_theta), 11), np.float32)
  for i, (tt, y) in enumerate(zip(two_theta, intensity)):
    keep = (tt > 0) & (tt <= 90) & (y >= min_intensity * max(y.max(), 1e-12))
    pos = np.sort(tt[keep])
    out[i, :min(10, len(pos))] = pos[:10]
    out[i, 10] = len(pos)
  return out


def picked_peaks(pattern: np.ndarray, grid_step: float, prominence: float = 0.02):
  """Peak positions and heights picked from a profile on the training grid."""
  from scipy.signal import find_peaks  # pylint: disable=g-import-not-at-top
  idx, props = find_peaks(pattern, prominence=prominence)
  return (idx + 0.5) * grid_step, pattern[idx]


class Hand:
  """Three ExtraTrees classifiers."""

  def __init__(self, trees: int = 300, seed: int = 0):
    from sklearn.ensemble import ExtraTreesClassifier  # pylint: disable=g-import-not-at-top
    self.models = {h: ExtraTreesClassifier(n_estimators=trees, random_state=seed, n_jobs=-1) for h in HEADS}

  def fit(self, x, labels):
    for h in HEADS:
      self.models[h].fit(x, labels[h])
    return self

  def predict(self, x) -> dict:
    return {h: self.models[h].predict(x) for h in HEADS}

  def top5(self, x, labels) -> dict:
    out = {}
    for h in HEADS:
      proba = self.models[h].predict_proba(x)
      classes = self.models[h].classes_
      best = classes[np.argsort(-proba, 1)[:, :5]]
      out[h] = float(np.mean(np.any(best == labels[h][:, None], 1)))
    return out


def evaluate(model: Hand, x, labels) -> dict:
  pred = model.predict(x)
  top5 = model.top5(x, labels)
  out = {}
  for h in HEADS:
    out[f'{h}_top1'] = float(np.mean(pred[h] == labels[h]))
    out[f'{h}_top5'] = top5[h]
  sg_cs = np.array([spacegroups.crystal_system_index(int(s)) for s in pred['space_group']])
  out['space_group_outside_predicted_crystal_system'] = float(np.mean(sg_cs != pred['crystal_system']))
  out['examples'] = int(len(x))
  return out


def run(corpus: str, experimental: str | None = None, min_intensity: float = 0.01, trees: int = 300) -> dict:
  train = corpus_lib.load_arrays(corpus, 'train')
  test = corpus_lib.load_arrays(corpus, 'test')
  model = Hand(trees).fit(features(train['two_theta'], train['intensity'], min_intensity),
                          {h: train[h] for h in HEADS})
  labels = {h: test[h] for h in HEADS}
  results = {'equivariance': evaluate(model, features(test['two_theta'], test['intensity'], min_intensity), labels)}
  # Invariance: the test structures rendered with the invariance_test distribution, peaks picked from the profile.
  import jax  # pylint: disable=g-import-not-at-top
  from difcon_jax.augment import kernel as augment_kernel  # pylint: disable=g-import-not-at-top
  from difcon_jax.augment import params as augment_params  # pylint: disable=g-import-not-at-top
  grid = augment_params.grid_config()
  render = augment_kernel.make_augment_fn(augment_params.config('invariance_test'))
  picked = []
  for start in range(0, len(test['two_theta']), 64):
    x = np.asarray(render(jax.random.fold_in(jax.random.key(7), start), test['two_theta'][start:start + 64],
                          test['intensity'][start:start + 64]))
    picked += [picked_peaks(np.maximum(v, 0), 120.0 / grid.num_bins) for v in x]
  x_inv = np.stack([features([t], [y], min_intensity)[0] for t, y in picked])
  results['invariance'] = evaluate(model, x_inv, labels)
  if experimental:
    from difcon_jax import inference  # pylint: disable=g-import-not-at-top
    from difcon_jax.io import patterns  # pylint: disable=g-import-not-at-top
    d = np.load(experimental)
    tts, ys, sgs = [], [], []
    for i in range(len(d['intensity'])):
      p = patterns.Pattern(d['two_theta'].astype(np.float64), np.maximum(d['intensity'][i], 0), 1.5418, str(i))
      g = inference.to_grid(p, grid, None).values
      tt, y = picked_peaks(g, 120.0 / grid.num_bins)
      tts.append(tt)
      ys.append(y)
      sgs.append(int(d['space_group'][i]))
    x = np.stack([features([t], [y], min_intensity)[0] for t, y in zip(tts, ys)])
    sgs = np.array(sgs)
    labels = {'space_group': sgs, 'crystal_system': np.array([spacegroups.crystal_system_index(s) for s in sgs]),
              'extinction_group': np.array([spacegroups.extinction_group(s) for s in sgs])}
    results['experimental'] = evaluate(model, x, labels)
  return results


def main(argv):
  del argv
  if not FLAGS.corpus:
    raise app.UsageError('--corpus is required')
  results = run(FLAGS.corpus, FLAGS.experimental, FLAGS.min_intensity, FLAGS.trees)
  for name, m in results.items():
    print(f"HAND {name} ({m['examples']}): " + '  '.join(f"{h} {m[f'{h}_top1']:.3f}" for h in HEADS) +
          f"  SG outside predicted CS {m['space_group_outside_predicted_crystal_system']:.3f}")
  if FLAGS.out:
    os.makedirs(FLAGS.out, exist_ok=True)
    with open(os.path.join(FLAGS.out, 'metrics.json'), 'w') as f:
      json.dump(results, f, indent=1)


if __name__ == '__main__':
  define_flags()
  app.run(main)
