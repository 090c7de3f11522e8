r"""Evaluate a trained model on one of the paper's three test sets, with its pictures.

  python -m difcon_jax.evaluate [--checkpoint=DIR [--weights=best|latest]] \
      --set={equivariance,invariance,experimental} [--corpus=DIR] \
      [--data=PATTERNS.npz | --data=FOLDER --labels=labels.csv] [--out=DIR]

- equivariance: held-out structures (the corpus test split), augmented with the train distribution;
- invariance: the same structures with the invariance_test distribution;
- experimental: measured patterns: an .npz with two_theta [n], intensity [N, n], space_group [N] (the layout of
  rruff_dev.npz, Cu Kα), or a folder of pattern files with labels.csv (columns file, space_group[, wavelength]).

Bad input: flags, the checkpoint, the corpus, --data/--labels and the output folder are checked before any work (exit
status 2). In a measured set, a pattern that cannot be used (unreadable file, NaN, a space group that is not 1-230)
is left out with its reason and the others are evaluated; patterns.csv in the output folder has one row per pattern
(ok or error) and the exit status is 1 when any was left out.

Writes metrics.json (top-1 / top-5 per head, share of space groups outside the predicted crystal system, the
crystal-system confusion), predictions.csv (one row per pattern: predict's columns, ranked the same way, plus the
true labels), crystal_system_confusion.png and, for the simulated sets, embedding_similarity.png (the paper's
Figure 4 by difcon_jax.similarity: cosine similarities of embeddings of N random test structures x 8 augmentations,
arranged consecutively; within / between / retrieval in metrics.json). Every
number comes from the ranking predict writes (eval_sets.run, models.heads.rank), so top-1 <= top-5 and a
pattern's row here is the row predict writes for it.
"""

from __future__ import annotations

import csv
import json
import os
import sys

from absl import app
from absl import flags
from etils import epath
import numpy as np

from difcon_jax import cli
from difcon_jax import config_base
from difcon_jax import eval_sets
from difcon_jax import inference
from difcon_jax import metrics as metrics_lib
from difcon_jax import similarity
from difcon_jax.crystallography import spacegroups
from difcon_jax.data import corpus as corpus_lib
from difcon_jax.io import patterns as patterns_lib

FLAGS = flags.FLAGS
HEADS = metrics_lib.HEADS
FIGURE_VIEWS = 8  # renderings of each structure in the figure (the paper's eight)


def define_flags():
  flags.DEFINE_string('checkpoint', None, 'Training workdir or exported model (default: the bundled model, '
                      'difcon_jax/pretrained/default).')
  flags.DEFINE_enum('weights', 'best', ['best', 'latest'], 'With a training workdir: its best checkpoint (by '
                    'config.best_metric) or its latest one (the step of final_metrics.json).')
  flags.DEFINE_enum('set', 'equivariance', ['equivariance', 'invariance', 'invariance_nuisance', 'experimental'],
                    'Test set.')
  flags.DEFINE_string('corpus', None, 'Corpus for the simulated sets (default: the one the model trained on).')
  flags.DEFINE_string('data', None, 'Measured patterns for --set=experimental (.npz or folder).')
  flags.DEFINE_string('labels', None, 'labels.csv for a folder of measured patterns.')
  flags.DEFINE_string('out', None, 'Output folder (default: CHECKPOINT/eval_SET).')
  flags.DEFINE_integer('batch_size', 64, 'Patterns per model call.')
  flags.DEFINE_integer('figure_structures', 24, 'Structures in the embedding-similarity picture.')


def confusion_png(m, path, title):
  """Draws a crystal-system confusion matrix m [7, 7] (rows: true)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  m = np.asarray(m)
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
  with cli.atomic_write(path, 'wb') as f:
    fig.savefig(f, format='png', dpi=120)
  plt.close(fig)


def similarity_png(model, corpus, n, path, title, seed) -> dict:
  """The paper's Figure 4 for one model (difcon_jax.similarity): n test structures x 8 invariance_test
  augmentations, consecutive; returns its within / between / retrieval summary."""
  x, structure = similarity.render_views(corpus, n, FIGURE_VIEWS, 'invariance_test', model.config.num_bins,
                                         model.config.two_theta_max, seed)
  sim = similarity.cosine_similarity(similarity.embed(model, x, FLAGS.batch_size))
  summary = similarity.block_summary(sim, structure)
  similarity.plot([sim], [title], [summary], path, FIGURE_VIEWS)
  return summary


def prediction_rows(preds: eval_sets.Predictions, rows: list[dict] | None = None, k: int = eval_sets.TOP_K):
  """predictions.csv: predict's row of every pattern (its columns, the same ranking) and the true labels.

  rows: the measured set's one row per pattern ({'file', 'status', 'error', 'warning', ...}, in order; the usable
  ones are preds' patterns in the same order); None for a simulated set (every pattern usable)."""
  if rows is None:
    rows = [{'file': name, 'status': 'ok', 'error': '', 'warning': ''} for name in preds.names]
  out, j = [], 0
  for row in rows:
    row = {c: row[c] for c in ('file', 'status', 'error', 'warning')}
    if row['status'] == 'ok':
      row.update(inference.prediction_columns(preds.ranked, j, k))
      sg = int(preds.labels['space_group'][j])
      row.update(true_crystal_system=spacegroups.CRYSTAL_SYSTEMS[int(preds.labels['crystal_system'][j])],
                 true_extinction_group=spacegroups.extinction_group_label(int(preds.labels['extinction_group'][j])),
                 true_extinction_group_index=int(preds.labels['extinction_group'][j]), true_space_group=sg,
                 true_space_group_symbol=spacegroups.symbol(sg))
      j += 1
    out.append(row)
  return out


def write_csv(path: str, rows: list[dict]) -> None:
  fields = list(dict.fromkeys(k for r in rows for k in r))
  with cli.atomic_write(path, newline='') as f:
    writer = csv.DictWriter(f, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)


def _out_dir() -> str:
  """--out, else eval_SET inside the checkpoint, else (the bundled model) eval_SET in the current folder."""
  return FLAGS.out or os.fspath(epath.Path(FLAGS.checkpoint or '.') / f'eval_{FLAGS.set}')


def check_flags() -> bool:
  """Prints one line per bad flag (what is allowed); True when all are fine. Runs before any work."""
  checks = cli.Checks()
  if FLAGS.checkpoint is not None:  # None: the bundled model
    checks.require((epath.Path(FLAGS.checkpoint) / 'config.json').exists(), 'checkpoint', FLAGS.checkpoint,
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
  model = inference.Model(FLAGS.checkpoint, FLAGS.weights)
  print(f'model: {model.source}')
  out_dir = epath.Path(_out_dir())
  out_dir.mkdir(parents=True, exist_ok=True)
  eval_seed = model.config.get('eval_seed', config_base.paper_config().eval_seed)
  extra = {}
  failed = 0
  if FLAGS.set == 'experimental':
    try:
      x, sg, names, rows = eval_sets.read_measured(FLAGS.data, FLAGS.labels, model.grid, model.wavelength)
    except patterns_lib.PatternError as e:
      print(f'error: {e}', file=sys.stderr)
      return 1
    write_csv(out_dir / 'patterns.csv', rows)
    failures = [r['error'] for r in rows if r['status'] != 'ok']
    failed = len(failures)
    for f in failures:
      print(f'skipped {f}', file=sys.stderr)
    if not len(x):
      print(f'error: none of the {len(rows)} patterns of {FLAGS.data} could be used; reasons in '
            f'{out_dir / "patterns.csv"}', file=sys.stderr)
      return 1
    metrics, preds = eval_sets.evaluate(model, eval_sets.grid_batches(x, names, FLAGS.batch_size, sg))
    extra['skipped'] = failures
  else:
    corpus = FLAGS.corpus or model.config.corpus
    try:
      corpus_lib.dataset_dir(corpus)
    except FileNotFoundError as e:
      print(f'error: {e} (give --corpus)', file=sys.stderr)
      return cli.USAGE_ERROR
    rows = None
    data = eval_sets.SimulatedSet(corpus, eval_sets.SIMULATED[FLAGS.set], model.config.num_bins,
                                  model.config.two_theta_max, FLAGS.batch_size, eval_seed, mesh=model.mesh)
    metrics, preds = eval_sets.evaluate(model, data)
    shown = min(FLAGS.figure_structures, len(data))
    figure = similarity_png(model, corpus, shown, out_dir / 'embedding_similarity.png',
                            f'{shown} test structures x {FIGURE_VIEWS} invariance_test augmentations', eval_seed)
    extra.update(similarity_within_structure=figure['within'], similarity_between_structures=figure['between'],
                 similarity_retrieval_top1=figure['retrieval_top1'])
  write_csv(out_dir / 'predictions.csv', prediction_rows(preds, rows))
  confusion_png(metrics['crystal_system_confusion'], out_dir / 'crystal_system_confusion.png',
                f'{FLAGS.set}: crystal system (model step {model.step})')
  metrics.update(extra, set=FLAGS.set, model_step=model.step)
  with cli.atomic_write(out_dir / 'metrics.json') as f:
    json.dump(metrics, f, indent=1)
  print(f"{FLAGS.set} ({metrics['examples']} patterns{f', {failed} left out' if failed else ''}): " + '  '.join(
      f"{h} {metrics[f'{h}_top1']:.3f}/{metrics[f'{h}_top5']:.3f}" for h in HEADS) + f'  -> {out_dir}')
  return 1 if failed else 0


if __name__ == '__main__':
  define_flags()
  app.run(main)
