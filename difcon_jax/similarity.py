r"""The paper's Figure 4: how well a model's embedding ignores experimental effects.

  python -m difcon_jax.similarity --corpus=runs/realistic_100k \
      --checkpoint=runs/cpu_ablation/CNNstatic_seed=0_ --label=CNNstatic \
      --checkpoint=runs/cpu_ablation/DIFCON-Barlow_seed=0_ --label=DIFCON-Barlow --out=docs/figure4.png

PHASES structures drawn at random from the corpus's test split are each rendered VIEWS times with the invariance
set's experimental effects (zero shift, noise on both axes, impurity peaks, profile variation, ...) and arranged
consecutively; the figure shows, per model, the cosine similarities of the embeddings the heads read (the
penultimate features of a plain CNN, the representation of DIFCON). A model whose embedding ignores the effects
shows VIEWS x VIEWS blocks on the diagonal. Next to the figure (OUT with .json) and on stdout, per model:
- within: mean similarity of two views of the same structure (the blocks, off their diagonal);
- between: mean similarity of views of different structures;
- retrieval_top1: share of patterns whose most similar other pattern is a view of the same structure.

Bad input: the flags, the models' folders, the corpus (its test split must hold --phases structures) and the
outputs are checked before any model is loaded (one line each, exit status 2): the figure and its .json must be two
files (an --out ending in .json is refused), and neither may overwrite a model's files or the corpus.
"""

from __future__ import annotations

import io
import json
import os
import sys

from absl import app
from absl import flags
import jax
import numpy as np

from difcon_jax.io import cli
from difcon_jax.evaluation import sets as eval_sets
from difcon_jax.inference import model as inference
from difcon_jax.io import workdir as workdir_lib
from difcon_jax.augment import kernel as augment_kernel
from difcon_jax.augment import params as augment_params
from difcon_jax.data import corpus as corpus_lib
from difcon_jax.data import input_pipeline
from difcon_jax.io import outputs

FLAGS = flags.FLAGS


def render_views(corpus: str, phases: int, views: int, distribution: str, num_bins: int, two_theta_max: float,
                 seed: int, split: str = 'test') -> tuple[np.ndarray, np.ndarray]:
  """Patterns [phases * views, bins] (each structure's views consecutive) and their structures' split indices
  [phases * views]. The structures are a random choice of `phases` of the split; view v of structure i is drawn
  from fold_in(fold_in(key(seed), v), i), so the set is the same for every model it is shown to."""
  fields = input_pipeline.fields_of(corpus_lib.data_sources(corpus)[split][0])
  arrays = corpus_lib.load_arrays(corpus, split, fields)
  size = len(arrays['two_theta'])
  if phases > size:
    raise ValueError(f'{corpus}: the {split} split has {size} structures, fewer than --phases={phases}')
  chosen = np.sort(np.random.default_rng(seed).choice(size, phases, replace=False))
  cfg = augment_params.config(distribution, num_bins, two_theta_max)
  take = lambda k: arrays[k][chosen] if k in arrays else None
  render = jax.jit(lambda key, idx, tt, y, hkl, cell: augment_kernel.augment_examples(key, idx, tt, y, cfg,
                                                                                      None, hkl, cell))
  per_view = [np.asarray(render(jax.random.fold_in(jax.random.key(seed), v), chosen, take('two_theta'),
                                take('intensity'), take('hkl'), take('cell'))) for v in range(views)]
  x = np.stack(per_view, axis=1).reshape(phases * views, -1)  # [phases, views, bins] -> structure-major rows
  return x, np.repeat(chosen, views)


def cosine_similarity(embeddings: np.ndarray) -> np.ndarray:
  """[N, N] cosine similarities of the rows of embeddings [N, dim]."""
  e = np.asarray(embeddings, np.float64)
  e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
  return e @ e.T


def block_summary(similarity: np.ndarray, structure: np.ndarray) -> dict:
  """within / between means and retrieval top-1 of a similarity matrix whose rows belong to `structure` [N]."""
  same = structure[:, None] == structure[None, :]
  off_diagonal = ~np.eye(len(structure), dtype=bool)
  within = similarity[same & off_diagonal].mean()
  between = similarity[~same].mean()
  masked = np.where(off_diagonal, similarity, -np.inf)
  nearest = masked.argmax(axis=1)
  return {'within': float(within), 'between': float(between), 'contrast': float(within - between),
          'retrieval_top1': float((structure[nearest] == structure).mean())}


def embed(model: inference.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
  return eval_sets.run(model, eval_sets.grid_batches(x, [str(i) for i in range(len(x))], batch_size),
                       embeddings=True).embeddings


def plot(matrices: list[np.ndarray], labels: list[str], summaries: list[dict], path: str, views: int) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, len(matrices), figsize=(5.2 * len(matrices), 4.6), squeeze=False)
  for ax, m, label, s in zip(axes[0], matrices, labels, summaries):
    im = ax.imshow(m, vmin=-1, vmax=1, cmap='RdBu_r', interpolation='nearest')
    ax.set_title(f"{label}\nwithin {s['within']:.2f}, between {s['between']:.2f}, "
                 f"retrieval {s['retrieval_top1']:.2f}", fontsize=9)
    ax.set_xlabel(f'pattern ({views} views of each structure, consecutive)')
    fig.colorbar(im, ax=ax, fraction=0.046)
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=110)
  plt.close(fig)
  # A 256-colour palette: the matrices are noisy, so the full-colour PNG is several times larger for no visible gain.
  from PIL import Image  # pylint: disable=g-import-not-at-top  (matplotlib's own dependency)
  image = Image.open(io.BytesIO(buffer.getvalue())).convert('RGB').quantize(256)
  with outputs.write(path, 'wb') as f:
    image.save(f, format='png', optimize=True)


def define_flags():
  flags.DEFINE_multi_string('checkpoint', [], 'Training workdir or exported model (repeat for side by side; '
                            'none: the bundled model).')
  flags.DEFINE_multi_string('label', [], 'Name of each --checkpoint in the figure (default: its folder).')
  flags.DEFINE_string('corpus', None, 'Corpus whose test split gives the structures.', required=True)
  flags.DEFINE_integer('phases', 100, 'Structures.')
  flags.DEFINE_integer('views', 8, 'Renderings of each structure.')
  flags.DEFINE_string('distribution', 'invariance_test', 'Augmentation distribution of the renderings.')
  flags.DEFINE_integer('seed', 0, 'Choice of structures and draws.')
  flags.DEFINE_integer('batch_size', 200, 'Patterns per forward pass.')
  flags.DEFINE_enum('weights', 'latest', ['best', 'latest'], 'Checkpoint of a training workdir.')
  flags.DEFINE_string('out', 'similarity.png', 'Figure (PNG); the numbers go to the same name with .json.')


def _json_path(out: str) -> str:
  return os.path.splitext(out)[0] + '.json'


def check_flags() -> bool:
  """Prints one line per bad flag (what is allowed); True when all are fine. Before any model is loaded or any
  pattern rendered, and nothing is created."""
  checks = cli.Checks()
  checks.number('phases', FLAGS.phases, 2, integer=True)  # 'between' needs two structures
  checks.number('views', FLAGS.views, 2, integer=True)  # 'within' needs two views of a structure
  checks.number('batch_size', FLAGS.batch_size, 1, integer=True)
  checks.number('seed', FLAGS.seed, 0, 2**32 - 1, integer=True)
  checks.require(FLAGS.distribution in augment_params.DISTRIBUTIONS, 'distribution', FLAGS.distribution,
                 f'one of {", ".join(augment_params.DISTRIBUTIONS)}')
  paths = FLAGS.checkpoint or [None]
  checks.require(not FLAGS.label or len(FLAGS.label) == len(paths), 'label', ','.join(FLAGS.label),
                 f'one per --checkpoint ({len(paths)} given)')
  for p in FLAGS.checkpoint:
    checks.require(workdir_lib.path(p, workdir_lib.CONFIG).exists(), 'checkpoint', p,
                   'a training workdir or exported model (with config.json)')
  _check_corpus(checks)
  if checks.output_file('out', FLAGS.out):
    protected = [f for p in paths for f in inference.model_files(p)]
    protected += [(FLAGS.corpus, 'the corpus')] if FLAGS.corpus else []
    for flag, path, why in outputs.clashes({'out': FLAGS.out, 'out numbers': _json_path(FLAGS.out)},
                                           protected=protected):
      extra = ' (the numbers go to the same name with .json: give the figure a .png name)' \
          if path == _json_path(FLAGS.out) else ''
      checks.require(False, flag, FLAGS.out, f'{why} ({path}){extra}')
  return not checks.report('similarity')


def _check_corpus(checks: cli.Checks) -> None:
  """--corpus: a corpus whose test split holds at least --phases structures."""
  try:
    size = corpus_lib.splits(FLAGS.corpus).get('test', 0)
  except (FileNotFoundError, corpus_lib.CorpusError) as e:
    checks.require(False, 'corpus', FLAGS.corpus, str(e).split(': ', 1)[-1])
    return
  checks.require(size >= 2, 'corpus', FLAGS.corpus, f'a corpus with a test split of at least 2 structures (it has '
                 f'{size})')
  if size >= 2 and isinstance(FLAGS.phases, int) and FLAGS.phases > size:
    checks.require(False, 'phases', FLAGS.phases, f'at most {size}, the structures of the test split of '
                   f'{FLAGS.corpus}')


def load_models(paths: list, labels: list[str]) -> list[inference.Model]:
  """The models, all on the first one's grid. Raises inference.ModelError naming the model that fails."""
  models = []
  for path, label in zip(paths, labels):
    try:
      model = inference.Model(path, FLAGS.weights)
    except FileNotFoundError as e:
      raise inference.ModelError(str(e)) from None
    first = (models or [model])[0].config
    if (model.config.num_bins, model.config.two_theta_max) != (first.num_bins, first.two_theta_max):
      raise inference.ModelError(f'{label}: another grid ({model.config.num_bins} bins to '
                                 f'{model.config.two_theta_max}°) than {labels[0]} ({first.num_bins} bins to '
                                 f'{first.two_theta_max}°); models shown side by side must read one grid')
    models.append(model)
  return models


def main(argv):
  del argv
  if not check_flags():
    return cli.USAGE_ERROR
  paths = FLAGS.checkpoint or [None]
  labels = FLAGS.label or [os.path.basename(os.path.normpath(p)) if p else 'bundled' for p in paths]
  try:
    models = load_models(paths, labels)
  except inference.ModelError as e:
    print(f'similarity: error: {e}', file=sys.stderr)
    return cli.USAGE_ERROR
  grid = models[0].config
  try:
    x, structure = render_views(FLAGS.corpus, FLAGS.phases, FLAGS.views, FLAGS.distribution, grid.num_bins,
                                grid.two_theta_max, FLAGS.seed)
  except (ValueError, corpus_lib.CorpusError) as e:  # a split cut short or damaged since the check
    print(f'similarity: error: {e}', file=sys.stderr)
    return 1
  matrices, summaries = [], []
  for model, label in zip(models, labels):
    sim = cosine_similarity(embed(model, x, FLAGS.batch_size))
    summary = {'model': label, 'source': model.source, **block_summary(sim, structure)}
    print(f"{label} ({model.source}): within {summary['within']:.3f}  between {summary['between']:.3f}  "
          f"contrast {summary['contrast']:.3f}  retrieval top-1 {summary['retrieval_top1']:.3f}")
    matrices.append(sim)
    summaries.append(summary)
  meta = {'corpus': FLAGS.corpus, 'phases': FLAGS.phases, 'views': FLAGS.views,
          'distribution': FLAGS.distribution, 'seed': FLAGS.seed, 'models': summaries}
  try:
    plot(matrices, labels, summaries, FLAGS.out, FLAGS.views)
    with outputs.write(_json_path(FLAGS.out)) as f:
      json.dump(meta, f, indent=1)
  except outputs.OutputError as e:
    print(f'similarity: error: {e}', file=sys.stderr)
    return 1
  print(f'-> {FLAGS.out}')
  return 0


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
