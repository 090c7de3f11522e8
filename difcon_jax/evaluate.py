r"""Evaluate a trained model on one of the paper's three test sets (or another set of its config.evals), with its
pictures.

  python -m difcon_jax.evaluate [--checkpoint=DIR [--weights=best|latest]] \
      --set={equivariance,invariance,invariance_nuisance,experimental} [--corpus=DIR] \
      [--data=PATTERNS.npz | --data=FOLDER --labels=labels.csv] [--out=DIR]

- equivariance: held-out structures (the corpus test split), augmented with the train distribution;
- invariance: the same structures with the invariance_test distribution;
- experimental: measured patterns: an .npz with two_theta [n], intensity [N, n], space_group [N] (the layout of
  rruff_dev.npz, Cu Kα), or a folder of pattern files with labels.csv (columns file, space_group[, wavelength]).

Bad input: flags, the checkpoint, the corpus, --data/--labels and the output folder are checked before any work (exit
status 2), and nothing is created before they pass; a flag this run would not read (--labels beside an .npz,
--corpus with --set=experimental, --weights with an exported model) is refused, not ignored (--figure_structures
with --set=experimental is harmless: a warning says it is not used). In a measured set, a pattern that cannot be
used (unreadable file, NaN, a space group that is not 1-230) is left out with its reason and the others are evaluated; patterns.csv in the output folder has one row per pattern
(ok or error) and the exit status is 1 when any was left out.

Writes metrics.json (top-1 / top-5 per head, share of space groups outside the predicted crystal system, the
crystal-system confusion), predictions.csv (one row per pattern: predict's columns, ranked the same way, plus the
true labels), crystal_system_confusion.png and, for the simulated sets, embedding_similarity.png (the paper's
Figure 4 by difcon_jax.similarity: cosine similarities of embeddings of N random test structures x 8 augmentations,
arranged consecutively; within / between / retrieval in metrics.json). Every
number comes from the ranking predict writes (eval_sets.run, models.heads.rank); the sets are built as the
trainer builds them (evaluators.simulated_set, evaluators.measured_set), so top-1 <= top-5 and a
pattern's row here is the row predict writes for it. --report=DIR also writes DIR/index.html (difcon_jax/io/report.py):
the metrics, the confusion matrix, a sortable table with the true labels beside the predictions and, per pattern,
its plots (a measured one as read and on the model grid; a simulated one as rendered) and ranked predictions.

Without --corpus, the simulated sets take the corpus the model trained on; when that is not here (the bundled
model's), the bundled sample corpus's test split (runs/sample_corpus, built on first use): the corpus splits by
compound, so its test compounds are test compounds of every corpus built with the same test fraction.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import sys

from absl import app
from absl import flags
from etils import epath
import jax
import numpy as np

from difcon_jax.io import cli
from difcon_jax import config_base
from difcon_jax.evaluation import sets as eval_sets
from difcon_jax.evaluation import evaluators
from difcon_jax.crystallography import pattern_grid as grid_lib
from difcon_jax.inference import model as inference
from difcon_jax.io import report
from difcon_jax import similarity
from difcon_jax.inference import rows as summary_lib
from difcon_jax.io import workdir as workdir_lib
from difcon_jax.crystallography import spacegroups
from difcon_jax.data import corpus as corpus_lib
from difcon_jax.data import bundled_sample as sample_lib
from difcon_jax.autoindex import combine
from difcon_jax.io import measured
from difcon_jax.io import outputs
from difcon_jax.io import patterns as patterns_lib
from difcon_jax.models import heads

FLAGS = flags.FLAGS
FIGURE_VIEWS = 8  # renderings of each structure in the figure (the paper's eight)
# What the command writes into --out (checked before any work against its inputs and the model's files).
OUTPUT_FILES = ('patterns.csv', 'predictions.csv', 'metrics.json', 'crystal_system_confusion.png',
                'embedding_similarity.png')


def define_flags():
  flags.DEFINE_string('checkpoint', None, 'Training workdir or exported model (default: the bundled model, '
                      'difcon_jax/pretrained/default).')
  flags.DEFINE_enum('weights', 'best', ['best', 'latest'], 'With a training workdir: its best checkpoint (by '
                    'config.best_metric) or its latest one (the step of final_metrics.json).')
  flags.DEFINE_string('set', 'equivariance', 'Test set: experimental (measured patterns, --data) or a simulated '
                      "set of the model's config.evals (equivariance, invariance, invariance_nuisance by default).")
  flags.DEFINE_string('corpus', None, 'Corpus for the simulated sets (default: the set\'s own corpus in the '
                      'model\'s config, else the one the model trained on).')
  flags.DEFINE_string('data', None, 'Measured patterns for --set=experimental (.npz or folder).')
  flags.DEFINE_string('labels', None, 'labels.csv for a folder of measured patterns.')
  flags.DEFINE_string('out', None, 'Output folder (default: CHECKPOINT/eval_SET, or runs/eval_SET for the '
                      'bundled model).')
  flags.DEFINE_integer('batch_size', 64, 'Patterns per model call.')
  flags.DEFINE_integer('examples', None, 'Simulated sets: the first this many test structures (default: all; '
                       'with --index a search of each costs up to --index_budget CPU seconds).')
  flags.DEFINE_integer('figure_structures', 24, 'Structures in the embedding-similarity picture.')
  flags.DEFINE_bool('index', False, 'Score DIFCON+INDEX: search each pattern\'s cells (difcon_jax/autoindex) and '
                    'rank the crystal systems by the network and the cells together (the model\'s combination.json, '
                    'as predict --index); metrics.json gains "index" (network, indexing and combined alone, '
                    'disagreements, search time).')
  flags.DEFINE_float('index_budget', combine.DEFAULT_BUDGET, 'With --index: CPU seconds of cell search per pattern.')
  flags.DEFINE_integer('index_workers', None, 'With --index: search processes (default: the CPU cores).')
  flags.DEFINE_string('report', None, 'Also write an HTML report into this folder (DIR/index.html: metrics, '
                      'confusion matrix, a sortable table with the true labels, plots and bars per pattern).')


def by_system_line(by_system: dict) -> str:
  """One line of crystal-system top-1 per true system with its pattern count ('–' for a system the set lacks)."""
  return 'crystal system top-1 by true system (patterns): ' + ', '.join(
      f"{name} {'–' if v['top1'] is None else format(v['top1'], '.3f')} ({v['examples']})"
      for name, v in by_system.items())


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
  with outputs.write(path, 'wb') as f:
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


def _out_dir() -> str:
  """--out, else eval_SET inside the checkpoint, else (the bundled model) runs/eval_SET in the current folder."""
  return FLAGS.out or os.fspath(epath.Path(FLAGS.checkpoint or 'runs') / f'eval_{FLAGS.set}')


def _keeping(batches, n: int, kept: list):
  """The batches unchanged; the first n patterns they hold (x [count, bins], on the host) appended to `kept`."""
  held = 0
  for b in batches:
    if held < n:
      kept.append(np.asarray(jax.device_get(b.x))[:min(b.count, n - held)])
      held += len(kept[-1])
    yield b


def report_entries(rows: list[dict], grid_x: np.ndarray, x: np.ndarray, items=None) -> list:
  """The report's entries: rows (predictions.csv's, in order), the usable patterns on the grid x [>= shown, bins]
  in the order of the usable rows (as many as the report shows), and for a measured set its items as read."""
  read = {item.name: item for item in items or ()}
  out, j = [], 0
  for row in rows:
    item = read.get(row['file'])
    values = None
    if row['status'] == 'ok':
      values = x[j] if j < len(x) else None
      j += 1
    if len(out) < report.MAX_DETAILS:
      out.append(report.entry(row['file'], row, item.pattern if item else None, item.wavelength if item else None,
                              grid_x, values))
    else:
      out.append(report.Entry(row['file'], row))
  return out


def _listed_files() -> list[str]:
  """The pattern files labels.csv lists (--set=experimental with a folder), which outputs must not overwrite."""
  if FLAGS.set != 'experimental' or not FLAGS.labels or not FLAGS.data or not os.path.isdir(FLAGS.data):
    return []
  try:
    with open(FLAGS.labels, newline='', encoding='utf-8-sig') as f:
      return [os.path.join(FLAGS.data, r['file'].strip()) for r in csv.DictReader(f) if (r.get('file') or '').strip()]
  except (OSError, UnicodeDecodeError, csv.Error, KeyError, AttributeError):
    return []  # read again, and reported, with the set


def _simulated_sets() -> list[str]:
  """The simulated evaluation sets of the model's config.evals (the defaults when its config.json cannot be read
  here: the model's own check reports that)."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  try:
    raw = workdir_lib.read_config(FLAGS.checkpoint or inference.BUNDLED_MODEL) or {}
  except (OSError, ValueError):
    raw = {}
  config = ml_collections.ConfigDict(raw if isinstance(raw, dict) else {})
  return [n for n, spec in evaluators.specs(config).items() if spec['kind'] == 'simulated']


def check_flags() -> bool:
  """Prints one line per bad flag (what is allowed); True when all are fine. Runs before any work."""
  checks = cli.Checks()
  if FLAGS.checkpoint is not None:  # None: the bundled model
    checks.require(workdir_lib.path(FLAGS.checkpoint, workdir_lib.CONFIG).exists(), 'checkpoint', FLAGS.checkpoint,
                   'a training workdir or exported model (with config.json)')
  checks.number('batch_size', FLAGS.batch_size, 1, integer=True)
  checks.number('figure_structures', FLAGS.figure_structures, 1, integer=True)
  checks.number('examples', FLAGS.examples, 1, integer=True, allow_none=True)
  simulated = _simulated_sets()
  checks.require(FLAGS.set == 'experimental' or FLAGS.set in simulated, 'set', FLAGS.set,
                 f'experimental or a simulated set of the model ({", ".join(simulated)})')
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
  if checks.output_dir('out', _out_dir()):
    files = {f'out {name}': os.fspath(epath.Path(_out_dir()) / name) for name in OUTPUT_FILES}
    inputs = [p for p in (FLAGS.data, FLAGS.labels) if p and FLAGS.set == 'experimental'] + _listed_files()
    for flag, path, why in outputs.clashes(files, inputs, inference.model_files(FLAGS.checkpoint))[:1]:
      checks.require(False, flag, _out_dir(), f'{why} ({path})')
  if FLAGS.report is not None:
    checks.output_dir('report', FLAGS.report)
  _refuse_ignored_flags(checks)
  return not checks.report('evaluate')


def _refuse_ignored_flags(checks: cli.Checks) -> None:
  """A flag given where this run would not read it is refused, not silently ignored: the user meant something
  by it (--labels beside an .npz that holds its own labels, --corpus for measured patterns, ...)."""
  given = lambda name: FLAGS[name].present
  measured_set = FLAGS.set == 'experimental'
  checks.require(not (given('corpus') and measured_set), 'corpus', FLAGS.corpus,
                 'only with a simulated set (not with --set=experimental)')
  if given('figure_structures') and measured_set:  # harmless: said, not refused
    print(f'evaluate: warning: --figure_structures={FLAGS.figure_structures} is not used with --set=experimental '
          '(the picture is of simulated structures)', file=sys.stderr)
  for name in ('data', 'labels'):
    checks.require(not given(name) or measured_set, name, FLAGS[name].value, 'only with --set=experimental')
  checks.require(not (given('examples') and measured_set), 'examples', FLAGS.examples,
                 'only with a simulated set (the measured set is evaluated whole)')
  if measured_set and given('labels') and FLAGS.data and FLAGS.data.endswith('.npz'):
    checks.require(False, 'labels', FLAGS.labels, 'only with a folder for --data (an .npz holds its own labels)')
  if given('weights') and FLAGS.checkpoint is not None and not workdir_lib.is_training_workdir(FLAGS.checkpoint):
    checks.require(False, 'weights', FLAGS.weights, 'only with a training workdir for --checkpoint (an exported '
                   'model holds one set of weights)')


@dataclasses.dataclass
class Evaluated:
  """What evaluating one set gives the outputs: its metrics and predictions, the rows of predictions.csv's status
  columns (None: every pattern usable), the patterns on the grid kept for the search and the report, a measured
  set's items as read, numbers added to metrics.json, and how many patterns were left out."""
  metrics: dict
  preds: eval_sets.Predictions
  rows: list[dict] | None = None
  kept: list = dataclasses.field(default_factory=list)
  items: list | None = None
  extra: dict = dataclasses.field(default_factory=dict)
  failed: int = 0


def evaluate_measured(model: inference.Model, out_dir: epath.Path) -> Evaluated | int:
  """--set=experimental: the measured set of --data (evaluators.measured_set), patterns.csv written; the exit
  status when none of its patterns can be used."""
  try:
    items = measured.read_set(FLAGS.data, FLAGS.labels)
    x, sg, names, rows = evaluators.measured_set(model.config, FLAGS.data, FLAGS.labels, items)
  except patterns_lib.PatternError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  outputs.write_rows(out_dir / 'patterns.csv', rows)
  failures = [r['error'] for r in rows if r['status'] != 'ok']
  for f in failures:
    print(f'skipped {f}', file=sys.stderr)
  if not len(x):
    print(f'error: none of the {len(rows)} patterns of {FLAGS.data} could be used; reasons in '
          f'{out_dir / "patterns.csv"}', file=sys.stderr)
    return 1
  metrics, preds = eval_sets.evaluate(model, eval_sets.grid_batches(x, names, FLAGS.batch_size, sg),
                                      keep_logits=FLAGS.index)
  return Evaluated(metrics, preds, rows, [x], items, {'skipped': failures}, len(failures))


def _simulated_corpus(model: inference.Model) -> str | int:
  """--corpus, else the set's corpus in the model's config (its entry's own, else the training corpus), else (not
  here: the bundled model's) the bundled sample corpus, built on first use; the exit status when none can be had."""
  corpus = FLAGS.corpus or evaluators.simulated_corpus(model.config, FLAGS.set)
  try:
    corpus_lib.dataset_dir(corpus)
  except FileNotFoundError as e:
    if FLAGS.corpus is not None:
      print(f'error: {e} (give --corpus)', file=sys.stderr)
      return cli.USAGE_ERROR
    print(f"the set's corpus {corpus} is not here: evaluating on the test split of the bundled sample corpus "
          f'{sample_lib.CORPUS} (built on first use; --corpus=DIR for another)')
    try:
      corpus = sample_lib.corpus()
    except (OSError, ValueError) as e:
      print(f'error: cannot build the sample corpus in {sample_lib.CORPUS} ({e}); build one with `python -m '
            f'difcon_jax.data.build --cifs {sample_lib.cif_dir()} --out DIR` and give --corpus=DIR', file=sys.stderr)
      return cli.USAGE_ERROR
  return corpus


def evaluate_simulated(model: inference.Model, out_dir: epath.Path) -> Evaluated | int:
  """A simulated set of the model's config.evals (evaluators.simulated_set over the test split of the corpus of
  _simulated_corpus), with the embedding-similarity figure; the exit status when it cannot be had."""
  corpus = _simulated_corpus(model)
  if isinstance(corpus, int):
    return corpus
  eval_seed = model.config.get('eval_seed', config_base.paper_config().eval_seed)
  try:
    data = evaluators.simulated_set(model.config, FLAGS.set, corpus=corpus, batch_size=FLAGS.batch_size,
                                    examples=FLAGS.examples, seed=eval_seed, mesh=model.mesh)
  except corpus_lib.CorpusError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  keep = len(data) if FLAGS.index else report.MAX_DETAILS if FLAGS.report else 0  # --index searches them all
  kept = []
  metrics, preds = eval_sets.evaluate(model, _keeping(data, keep, kept), keep_logits=FLAGS.index)
  shown = min(FLAGS.figure_structures, len(data))
  figure = similarity_png(model, corpus, shown, out_dir / 'embedding_similarity.png',
                          f'{shown} test structures x {FIGURE_VIEWS} invariance_test augmentations', eval_seed)
  return Evaluated(metrics, preds, kept=kept, extra=dict(similarity_within_structure=figure['within'],
                                                         similarity_between_structures=figure['between'],
                                                         similarity_retrieval_top1=figure['retrieval_top1']))


def _combination(model: inference.Model):
  """With --index: the model's fitted combination (combine.find); the exit status when it has none or it cannot
  be read. None without --index."""
  if not FLAGS.index:
    return None
  try:
    combination = combine.find(model.folder)
  except combine.CombinationError as e:
    print(f'error: {e}', file=sys.stderr)
    return cli.USAGE_ERROR
  if combination is None:
    print(f'error: --index: the model {model.folder} has no {combine.COMBINATION_FILE}; fit one with python -m '
          f'difcon_jax.index --fit_combination --checkpoint={model.folder} --corpus=CORPUS', file=sys.stderr)
    return cli.USAGE_ERROR
  return combination


def main(argv):
  del argv
  if not check_flags():
    return cli.USAGE_ERROR
  try:
    model = inference.Model(FLAGS.checkpoint, FLAGS.weights)
  except (FileNotFoundError, inference.ModelError) as e:
    print(f'error: {e}', file=sys.stderr)
    return cli.USAGE_ERROR
  combination = _combination(model)
  if isinstance(combination, int):
    return combination
  print(f'model: {model.source}')
  out_dir = epath.Path(_out_dir())
  out_dir.mkdir(parents=True, exist_ok=True)
  done = (evaluate_measured if FLAGS.set == 'experimental' else evaluate_simulated)(model, out_dir)
  if isinstance(done, int):
    return done
  metrics, preds, rows, kept = done.metrics, done.preds, done.rows, done.kept
  evidence = []
  if FLAGS.index:
    x_all = np.concatenate(kept) if kept else np.zeros((0, model.grid.num_bins), np.float32)
    evidence = combine.search_patterns(x_all, grid_lib.bin_centres(model.grid), model.wavelength, FLAGS.index_budget,
                                       FLAGS.index_workers)
    metrics, preds = eval_sets.evaluate_with_index(preds, evidence, combination, eval_sets.TOP_K)
  if rows is None:  # a simulated set: every pattern usable
    rows = [summary_lib.status_row(name) for name in preds.names]
  predicted = summary_lib.prediction_rows(rows, preds.ranked, eval_sets.TOP_K, preds.labels)
  if evidence:
    summary_lib.add_index_columns(predicted, evidence, combine.network_probs(preds.logits))
  outputs.write_rows(out_dir / 'predictions.csv', predicted)
  confusion_png(metrics['crystal_system_confusion'], out_dir / 'crystal_system_confusion.png',
                f'{FLAGS.set}: crystal system (model step {model.step})')
  metrics.update(done.extra, set=FLAGS.set, model_step=model.step)
  with outputs.write(out_dir / 'metrics.json') as f:
    json.dump(metrics, f, indent=1)
  if FLAGS.report:
    x_shown = np.concatenate(kept) if kept else np.zeros((0, model.grid.num_bins), np.float32)
    page = report.write(FLAGS.report, report_entries(predicted, grid_lib.bin_centres(model.grid), x_shown,
                                                     done.items),
                        f'difcon-jax evaluation: {FLAGS.set} set', model.source, model.wavelength, metrics,
                        os.fspath(out_dir / 'predictions.csv'))
    print(f'report: {page}')
  failed = done.failed
  print(f"{FLAGS.set} ({metrics['examples']} patterns{f', {failed} left out' if failed else ''}), top-1 / top-5 "
        'accuracy: ' + '; '.join(f"{h.replace('_', ' ')} {metrics[f'{h}_top1']:.3f} / {metrics[f'{h}_top5']:.3f}"
                                 for h in heads.HEADS) + f' -> {out_dir}')
  print(by_system_line(metrics['crystal_system_top1_by_system']))
  if evidence:
    i = metrics['index']
    print(f"DIFCON+INDEX crystal system top-1 {i['crystal_system_top1_combined']:.3f} (network alone "
          f"{i['crystal_system_top1_network']:.3f}, indexing alone {i['crystal_system_top1_indexing']:.3f}); they "
          f"disagreed on {i['disagreed']:.1%} (network right {i['disagreed_network_right']:.1%}, indexing right "
          f"{i['disagreed_indexing_right']:.1%}, combined right {i['disagreed_combined_right']:.1%}); search out of "
          f"time {i['out_of_time']:.1%}, {i['search_seconds_mean']:.2f} s per pattern")
  return 1 if failed else 0


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
