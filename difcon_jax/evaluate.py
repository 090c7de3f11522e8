r"""Evaluate a trained model on one of the paper's three test sets, with its pictures.

  python -m difcon_jax.evaluate [--checkpoint=DIR] --set={equivariance,invariance,experimental} \
      [--corpus=DIR] [--data=PATTERNS.npz | --data=FOLDER --labels=labels.csv] [--out=DIR]

- equivariance: held-out structures (the corpus test split), augmented with the train distribution;
- invariance: the same structures with the invariance_test distribution;
- experimental: measured patterns: an .npz with two_theta [n], intensity [N, n], space_group [N] (the layout of
  rruff_dev.npz, Cu Kα), or a folder of pattern files with labels.csv (columns file, space_group[, wavelength]).

Bad input: flags, the checkpoint, the corpus, --data/--labels and the output folder are checked before any work (exit
status 2). In a measured set, a pattern that cannot be used (unreadable file, NaN, a space group that is not 1-230)
is left out with its reason and the others are evaluated; patterns.csv in the output folder has one row per pattern
(ok or error) and the exit status is 1 when any was left out.

Writes metrics.json (top-1 / top-5 per head, share of space groups outside the predicted crystal system),
crystal_system_confusion.png and, for the simulated sets, embedding_similarity.png (the paper's Figure 4: cosine
similarities of embeddings of N structures x 8 augmentations, arranged consecutively).
"""

from __future__ import annotations

import csv
import json
import os
import sys

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from difcon_jax import cli
from difcon_jax import inference
from difcon_jax.augment import kernel as augment_kernel
from difcon_jax.augment import params as augment_params
from difcon_jax.crystallography import spacegroups
from difcon_jax.data import corpus as corpus_lib
from difcon_jax.data import input_pipeline
from difcon_jax.io import labelled
from difcon_jax.io import patterns as patterns_lib

FLAGS = flags.FLAGS
HEADS = ('crystal_system', 'extinction_group', 'space_group')


def define_flags():
  flags.DEFINE_string('checkpoint', None, 'Training workdir or exported model (default: the bundled model, '
                      'difcon_jax/pretrained/default).')
  flags.DEFINE_enum('set', 'equivariance', ['equivariance', 'invariance', 'experimental'], 'Test set.')
  flags.DEFINE_string('corpus', None, 'Corpus for the simulated sets (default: the one the model trained on).')
  flags.DEFINE_string('data', None, 'Measured patterns for --set=experimental (.npz or folder).')
  flags.DEFINE_string('labels', None, 'labels.csv for a folder of measured patterns.')
  flags.DEFINE_string('out', None, 'Output folder (default: CHECKPOINT/eval_SET).')
  flags.DEFINE_integer('batch_size', 64, 'Patterns per model call.')
  flags.DEFINE_integer('figure_structures', 24, 'Structures in the embedding-similarity picture.')


def accuracies(logits_list, labels) -> dict:
  """Top-1 / top-5 per head over concatenated batches, and how often the top space group leaves the top CS."""
  from difcon_jax.evaluation import topk_hits  # pylint: disable=g-import-not-at-top
  from difcon_jax.models import resnet1d  # pylint: disable=g-import-not-at-top
  out = {}
  preds = {h: [] for h in HEADS}
  top5 = {h: [] for h in HEADS}
  joint_top = []
  for logits, lab in zip(logits_list, labels):
    p = resnet1d.predict(logits)
    hits = topk_hits(logits, {h: jnp.asarray(lab[h]) for h in HEADS}, 5)
    for h in HEADS:
      preds[h].append(np.asarray(p[h]))
      top5[h].append(np.asarray(hits[h]))
    joint_top.append(np.asarray(jnp.argmax(resnet1d.space_group_log_probs(logits), -1)))
  truth = {h: np.concatenate([l[h] for l in labels]) for h in HEADS}
  for h in HEADS:
    out[f'{h}_top1'] = float(np.mean(np.concatenate(preds[h]) == truth[h]))
    out[f'{h}_top5'] = float(np.mean(np.concatenate(top5[h])))
  cs_pred = np.concatenate(preds['crystal_system'])
  sg_joint = np.concatenate(joint_top)
  out['space_group_outside_predicted_crystal_system'] = float(np.mean(
      np.array([spacegroups.crystal_system_index(int(s)) for s in sg_joint]) != cs_pred))
  out['examples'] = int(len(cs_pred))
  return out, truth['crystal_system'], cs_pred


def confusion_png(truth, pred, path, title):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  m = np.zeros((7, 7), int)
  np.add.at(m, (truth, pred), 1)
  fig, ax = plt.subplots(figsize=(6, 5))
  im = ax.imshow(m / np.maximum(m.sum(1, keepdims=True), 1), cmap='Blues', vmin=0, vmax=1)
  for i in range(7):
    for j in range(7):
      if m[i, j]:
        ax.text(j, i, m[i, j], ha='center', va='center', fontsize=8)
  names = [s[:5] for s in spacegroups.CRYSTAL_SYSTEMS]
  ax.set_xticks(range(7), names, rotation=45)
  ax.set_yticks(range(7), names)
  ax.set_xlabel('predicted')
  ax.set_ylabel('true')
  ax.set_title(title, fontsize=9)
  fig.colorbar(im, ax=ax, label='share of true class')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return m


def similarity_png(model, data, aug_cfg, n, path, title):
  """Cosine similarities of embeddings: n structures x 8 augmentations, consecutive (the paper's Figure 4)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  n = min(n, data.size)
  b = data.batch(0) if data.local_batch >= n else {k: np.concatenate([data.batch(s)[k] for s in range(
      -(-n // data.local_batch))]) for k in ('two_theta', 'intensity')}
  tt = np.repeat(b['two_theta'][:n], 8, 0)
  y = np.repeat(b['intensity'][:n], 8, 0)
  x = augment_kernel.make_augment_fn(aug_cfg)(jax.random.key(123), tt, y)
  emb = np.concatenate([np.asarray(model(np.asarray(x[i:i + 64]))[1]['embedding']) for i in range(0, len(x), 64)])
  emb = emb / np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-12)
  sim = emb @ emb.T
  fig, ax = plt.subplots(figsize=(6, 5))
  im = ax.imshow(sim, cmap='viridis', vmin=-1, vmax=1)
  ax.set_title(title, fontsize=9)
  fig.colorbar(im, ax=ax, label='cosine similarity')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  block = np.kron(np.eye(n, dtype=bool), np.ones((8, 8), bool))
  return float(sim[block].mean()), float(sim[~block].mean())


def _simulated(model, corpus, distribution, batch_size):
  data = input_pipeline.PeakBatches(corpus, 'test', batch_size, shuffle=False)
  aug_cfg = augment_params.config(distribution, model.config.num_bins, model.config.two_theta_max)
  fn = augment_kernel.make_augment_fn(aug_cfg)
  logits, labels = [], []
  for s in range(-(-data.size // batch_size)):
    b = data.batch(s)
    if s * batch_size + batch_size > data.size:  # the last batch wraps around: keep only the new examples
      keep = data.size - s * batch_size
      b = {k: v[:keep] for k, v in b.items()}
    x = fn(jax.random.fold_in(jax.random.key(2024), s), b['two_theta'], b['intensity'])
    logits.append(model(np.asarray(x))[0])
    labels.append({h: b[h] for h in HEADS})
  return logits, labels, data, aug_cfg


MAX_POINTS_PER_BIN = 2  # finer patterns are averaged down to this many points per model bin before preprocessing


def _measured(model, data_path, labels_path, batch_size):
  """(grid patterns [N, bins], space groups [N], names, rows) of a measured set; rows: one per pattern,
  {'file', 'status', 'error', 'warning'}. Raises PatternError when the set as a whole cannot be read."""
  del batch_size
  if data_path.endswith('.npz'):
    items = labelled.read_npz(data_path, inference.TRAINING_WAVELENGTH)
  else:
    items = labelled.read_folder(data_path, labels_path)
  grids, sgs, names, rows = [], [], [], []
  for item in items:
    row = {'file': item.name, 'status': 'error', 'error': item.error, 'warning': '',
           'space_group': item.space_group or ''}
    rows.append(row)
    if item.pattern is None:
      continue
    try:
      pattern = patterns_lib.coarsen(item.pattern, MAX_POINTS_PER_BIN * model.grid.num_bins)
      g = inference.to_grid(pattern, model.grid, item.wavelength)
    except (patterns_lib.PatternError, ValueError, FloatingPointError) as e:
      row['error'] = str(e) if str(e).startswith(item.name) else f'{item.name}: {e}'
      continue
    row.update(status='ok', warning='; '.join([*pattern.warnings, *g.warnings]))
    grids.append(g.values)
    sgs.append(item.space_group)
    names.append(item.name)
  grids = np.stack(grids) if grids else np.zeros((0, model.grid.num_bins), np.float32)
  return grids, np.array(sgs, dtype=np.int64), names, rows


def _out_dir() -> str:
  """--out, else eval_SET inside the checkpoint, else (the bundled model) eval_SET in the current folder."""
  return FLAGS.out or os.path.join(FLAGS.checkpoint or '.', f'eval_{FLAGS.set}')


def check_flags() -> bool:
  """Prints one line per bad flag (what is allowed); True when all are fine. Runs before any work."""
  checks = cli.Checks()
  if FLAGS.checkpoint is not None:  # None: the bundled model
    checks.require(os.path.exists(os.path.join(FLAGS.checkpoint, 'config.json')), 'checkpoint', FLAGS.checkpoint,
                   'a training workdir or exported model (with config.json)')
  checks.number('batch_size', FLAGS.batch_size, 1, integer=True)
  checks.number('figure_structures', FLAGS.figure_structures, 1, integer=True)
  if FLAGS.set == 'experimental':
    if checks.require(bool(FLAGS.data), 'data', FLAGS.data, 'with --set=experimental: an .npz or a folder'):
      if FLAGS.data.endswith('.npz'):
        checks.require(os.path.isfile(FLAGS.data), 'data', FLAGS.data, 'an .npz file that exists')
      else:
        checks.require(os.path.isdir(FLAGS.data), 'data', FLAGS.data, 'an .npz file or a folder that exists')
        checks.require(bool(FLAGS.labels) and os.path.isfile(FLAGS.labels), 'labels', FLAGS.labels,
                       'with a folder for --data: a labels.csv (file, space_group[, wavelength]) that exists')
  elif FLAGS.corpus is not None:
    try:
      corpus_lib.dataset_dir(FLAGS.corpus)
    except FileNotFoundError as e:
      checks.require(False, 'corpus', FLAGS.corpus, str(e).split(': ', 1)[-1])
  checks.output_dir('out', _out_dir())
  return not checks.report('evaluate')


def main(argv):
  del argv
  if not check_flags():
    return cli.USAGE_ERROR
  model = inference.Model(FLAGS.checkpoint)
  print(f'model: {model.source}')
  out_dir = _out_dir()
  os.makedirs(out_dir, exist_ok=True)
  extra = {}
  failed = 0
  if FLAGS.set == 'experimental':
    try:
      x, sg, names, rows = _measured(model, FLAGS.data, FLAGS.labels, FLAGS.batch_size)
    except patterns_lib.PatternError as e:
      print(f'error: {e}', file=sys.stderr)
      return 1
    with cli.atomic_write(os.path.join(out_dir, 'patterns.csv'), newline='') as f:
      writer = csv.DictWriter(f, fieldnames=['file', 'status', 'error', 'warning', 'space_group'])
      writer.writeheader()
      writer.writerows(rows)
    failures = [r['error'] for r in rows if r['status'] != 'ok']
    failed = len(failures)
    for f in failures:
      print(f'skipped {f}', file=sys.stderr)
    if not len(x):
      print(f'error: none of the {len(rows)} patterns of {FLAGS.data} could be used; reasons in '
            f'{os.path.join(out_dir, "patterns.csv")}', file=sys.stderr)
      return 1
    logits, labels = [], []
    for i in range(0, len(x), FLAGS.batch_size):
      logits.append(model(x[i:i + FLAGS.batch_size])[0])
      s = sg[i:i + FLAGS.batch_size]
      labels.append({'space_group': s, 'crystal_system': np.array([spacegroups.crystal_system_index(int(v)) for v in s]),
                     'extinction_group': np.array([spacegroups.extinction_group(int(v)) for v in s])})
    extra['skipped'] = failures
  else:
    corpus = FLAGS.corpus or model.config.corpus
    try:
      corpus_lib.dataset_dir(corpus)
    except FileNotFoundError as e:
      print(f'error: {e} (give --corpus)', file=sys.stderr)
      return cli.USAGE_ERROR
    dist = 'train' if FLAGS.set == 'equivariance' else 'invariance_test'
    logits, labels, data, aug_cfg = _simulated(model, corpus, dist, FLAGS.batch_size)
    inv_cfg = augment_params.config('invariance_test', model.config.num_bins, model.config.two_theta_max)
    within, between = similarity_png(model, data, inv_cfg, FLAGS.figure_structures,
                                     os.path.join(out_dir, 'embedding_similarity.png'),
                                     f'{FLAGS.figure_structures} test structures x 8 invariance_test augmentations')
    extra.update(similarity_within_structure=within, similarity_between_structures=between)
  metrics, truth, pred = accuracies(logits, labels)
  confusion = confusion_png(truth, pred, os.path.join(out_dir, 'crystal_system_confusion.png'),
                            f'{FLAGS.set}: crystal system (model step {model.step})')
  metrics.update(extra, set=FLAGS.set, model_step=model.step, crystal_system_confusion=confusion.tolist())
  with cli.atomic_write(os.path.join(out_dir, 'metrics.json')) as f:
    json.dump(metrics, f, indent=1)
  print(f"{FLAGS.set} ({metrics['examples']} patterns{f', {failed} left out' if failed else ''}): " + '  '.join(
      f"{h} {metrics[f'{h}_top1']:.3f}/{metrics[f'{h}_top5']:.3f}" for h in HEADS) + f'  -> {out_dir}')
  return 1 if failed else 0


if __name__ == '__main__':
  define_flags()
  app.run(main)
