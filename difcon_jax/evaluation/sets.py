"""Evaluation sets and the one function that runs a model over a set: the trainer's periodic evaluation, the
evaluate command and predict all go through `run` (ranking by `models.heads.rank`, metrics by `metrics.summary`).

Sets are iterables of `Batch`es of patterns on the model grid, padded to one batch size so that a model compiles
once:
- `SimulatedSet`: a corpus split rendered with one augmentation distribution; each pattern's draws come from
  fold_in(key(seed), its index), so a pattern is the same in every evaluation, batch size and device count;
- `grid_batches`: patterns already on the grid (measured sets read by `read_measured`, predict's files).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Iterable, Iterator

import jax
from jax.sharding import NamedSharding, PartitionSpec as P
import numpy as np

from difcon_jax.evaluation import metrics
from difcon_jax.inference import rows as summary
from difcon_jax.augment import kernel as augment_kernel
from difcon_jax.augment import params as augment_params
from difcon_jax.data import input_pipeline
from difcon_jax.autoindex import combine
from difcon_jax.io import labelled
from difcon_jax.io import measured
from difcon_jax.models import heads

TOP_K = max(metrics.TOP_K)


@dataclasses.dataclass
class Batch:
  x: jax.Array | np.ndarray  # [batch_size, bins]; rows past `count` are padding
  names: list[str]  # [count]
  labels: dict[str, np.ndarray] | None  # {head: [count]}, None for unlabelled patterns
  count: int


@dataclasses.dataclass
class Predictions:
  names: list[str]  # [N]
  ranked: dict[str, tuple[np.ndarray, np.ndarray]]  # {head: (labels [N, k'], probabilities [N, k'])}
  labels: dict[str, np.ndarray] | None  # {head: [N]}
  embeddings: np.ndarray | None  # [N, dim] when asked for
  logits: dict | None = None  # {head: [N, classes]} ('space_group': one array per crystal system) when asked for


class SimulatedSet:
  """A corpus split rendered with one augmentation distribution (the paper's equivariance and invariance sets).

  Args:
    corpus: corpus folder; split: its split ('test').
    distribution: augmentation distribution (augment/params.py).
    num_bins, two_theta_max: the model grid.
    batch_size: patterns per batch; examples: at most this many (None: the whole split), from the split's
      `start`-th example on (a set disjoint from the first examples', which the trainer evaluates on).
    seed: the evaluation seed (config.eval_seed).
    mesh: devices that share a batch whose size they divide (None: one device).
    cache: keep the rendered batches (on the devices) after the first pass, so that a trainer's periodic
      evaluation renders its sets once (examples x bins x 4 bytes each).
  """

  def __init__(self, corpus: str, distribution: str, num_bins: int, two_theta_max: float, batch_size: int,
               seed: int, examples: int | None = None, mesh=None, split: str = 'test', cache: bool = False,
               start: int = 0):
    self.split = split
    self._cache: list[Batch] | None = [] if cache else None
    self.data = input_pipeline.PeakBatches(corpus, split, batch_size, shuffle=False, start=start)
    if not 0 <= start < self.data.size:
      raise ValueError(f'{corpus}: the {split} split has {self.data.size} examples; cannot start at {start}')
    self.count = min(self.data.size - start, examples or self.data.size)
    self.batch_size = batch_size
    self.aug_cfg = augment_params.config(distribution, num_bins, two_theta_max)
    self._sharding = NamedSharding(mesh, P('data')) if mesh is not None else None

    def render(batch, mesh):
      return augment_kernel.augment_examples(jax.random.key(seed), batch['index'], batch['two_theta'],
                                             batch['intensity'], self.aug_cfg, mesh, batch.get('hkl'),
                                             batch.get('cell'))

    self._render_sharded = jax.jit(functools.partial(render, mesh=mesh)) if mesh is not None else None
    self._render = jax.jit(functools.partial(render, mesh=None))

  def __len__(self) -> int:
    return self.count

  def __iter__(self) -> Iterator[Batch]:
    batches = -(-self.count // self.batch_size)
    if self._cache is not None and len(self._cache) == batches:
      yield from self._cache
      return
    for batch in self._render_batches(batches):
      if self._cache is not None:
        self._cache.append(batch)
      yield batch

  def _render_batches(self, batches: int) -> Iterator[Batch]:
    for s in range(batches):
      b = self.data.batch(s)  # the last batch wraps around to the split's start: padding
      n = min(self.batch_size, self.count - s * self.batch_size)
      b = {k: v for k, v in b.items() if k in ('index', 'two_theta', 'intensity', 'hkl', 'cell', *heads.HEADS)}
      if self._render_sharded is not None and len(b['two_theta']) % jax.device_count() == 0:
        x = self._render_sharded(jax.device_put({k: b[k] for k in b if k not in heads.HEADS}, self._sharding))
      else:
        x = self._render({k: b[k] for k in b if k not in heads.HEADS})
      names = [f'{self.split}[{i}]' for i in b['index'][:n]]
      yield Batch(x, names, {h: np.asarray(b[h][:n], np.int64) for h in heads.HEADS}, n)


def grid_batches(x: np.ndarray, names: list[str], batch_size: int, space_groups=None) -> Iterator[Batch]:
  """Batches of patterns on the grid x [N, bins], the last one padded with zeros to batch_size (one compiled
  shape); labelled with the space groups [N] (1-230) when given."""
  labels = metrics.labels_of_space_groups(space_groups) if space_groups is not None else None
  for start in range(0, len(x), batch_size):
    chunk = np.asarray(x[start:start + batch_size], np.float32)
    n = len(chunk)
    if n < batch_size:
      chunk = np.concatenate([chunk, np.zeros((batch_size - n,) + chunk.shape[1:], np.float32)])
    yield Batch(chunk, list(names[start:start + n]),
                {h: v[start:start + n] for h, v in labels.items()} if labels is not None else None, n)


def read_measured(data_path: str, labels_path: str | None, grid, training_wavelength: float,
                  items: list[labelled.Item] | None = None):
  """A labelled measured set on the model grid (io.measured: an .npz, Cu Kα, in the layout of rruff_dev.npz, or a
  folder with labels.csv); items: the set already read by `measured.read_set` (None: read it here).

  Returns (patterns [N, bins], space groups [N], names [N], rows): rows has one entry per pattern of the set,
  {'file', 'status' ('ok' or 'error'), 'error', 'warning', 'space_group'}, the usable ones being the N in order.
  Raises PatternError when the set as a whole cannot be read.
  """
  if items is None:
    items = measured.read_set(data_path, labels_path)
  records = [measured.load_item(item, grid, training_wavelength) for item in items]
  good = [m for m in records if m.ok]
  rows = [{**summary.status_row(m.name, m.error, m.warnings), 'space_group': m.space_group or ''} for m in records]
  return (measured.stack(records, grid.num_bins), np.array([m.space_group for m in good], dtype=np.int64),
          [m.name for m in good], rows)


@functools.partial(jax.jit, static_argnums=1)
def _rank(logits, k):
  return heads.rank(logits, k)


def rerank(logits: dict, crystal_system_probs: np.ndarray, k: int = TOP_K) -> dict:
  """The ranking of models.heads.rank with other crystal-system probabilities [N, 7] in place of the network's
  (the combined answer of autoindex.combine): {head: (labels [N, k'], probabilities [N, k'])} on the host."""
  with_cs = {**logits, 'crystal_system': np.log(np.clip(crystal_system_probs, 1e-30, 1.0)).astype(np.float32)}
  return jax.tree.map(np.asarray, jax.device_get(_rank(with_cs, k)))


def with_index(preds: Predictions, evidence: list, combination, k: int = TOP_K) -> tuple[Predictions, np.ndarray]:
  """(preds ranked again with the crystal-system probabilities that autoindex.combine makes of the network's and the
  search's evidence [N], those probabilities [N, 7]); preds must hold the logits (run(keep_logits=True))."""
  probs = combine.combined_probs(combine.network_probs(preds.logits), evidence, combination)
  return dataclasses.replace(preds, ranked=rerank(preds.logits, probs, k)), probs


def run(model: Callable, batches: Iterable[Batch], k: int = TOP_K, embeddings: bool = False,
        keep_logits: bool = False) -> Predictions:
  """Ranks every pattern of a set: model(x [batch, bins]) -> (logits, aux) (inference.Model, or the trainer's
  jitted apply); k: labels ranked per head; embeddings: keep aux['embedding'] too; keep_logits: the logits too
  (to rank again with another crystal-system distribution, autoindex.combine)."""
  names, on_device, counts, labels, kept = [], [], [], [], []
  for b in batches:
    logits, aux = model(b.x)
    if keep_logits:
      kept.append(jax.tree.map(lambda v, n=b.count: np.asarray(v)[:n], jax.device_get(logits)))
    on_device.append((_rank(logits, k), aux['embedding'] if embeddings else None))  # fetched once, at the end
    counts.append(b.count)
    names += b.names
    if b.labels is not None:
      labels.append(b.labels)
  fetched = jax.device_get(on_device)
  ranked = [{h: (np.asarray(i[:n]), np.asarray(p[:n])) for h, (i, p) in top.items()}
            for (top, _), n in zip(fetched, counts)]
  emb = [np.asarray(e)[:n] for (_, e), n in zip(fetched, counts)] if embeddings else []
  cat = lambda parts: np.concatenate(parts) if parts else np.zeros((0, 0))
  return Predictions(
      names, {h: (cat([r[h][0] for r in ranked]), cat([r[h][1] for r in ranked])) for h in heads.HEADS},
      {h: cat([l[h] for l in labels]) for h in heads.HEADS} if labels else None,
      cat(emb) if embeddings else None,
      jax.tree.map(lambda *parts: np.concatenate(parts), *kept) if kept else None)


def evaluate(model: Callable, batches: Iterable[Batch], k: int = TOP_K, keep_logits: bool = False
             ) -> tuple[dict, Predictions]:
  """(metrics.summary of the set, its Predictions) for a labelled set."""
  preds = run(model, batches, k, keep_logits=keep_logits)
  if preds.labels is None:
    raise ValueError('evaluate needs a labelled set')
  return metrics.summary({h: i for h, (i, _) in preds.ranked.items()}, preds.labels), preds


def evaluate_with_index(preds: Predictions, evidence: list, combination, k: int = TOP_K) -> tuple[dict, Predictions]:
  """(metrics.summary of the combined ranking (with_index), its Predictions) of a labelled set whose network
  predictions (run(keep_logits=True)) and search evidence [N] are given, and in the summary 'index': the
  crystal-system top-1 of the network alone, of indexing alone (the search's answer; none: wrong) and combined,
  the share of patterns whose search ran out of time or had too few lines, the share where network and indexing
  disagreed (their lattices: trigonal and hexagonal are one) and who was right then, and the search's seconds per
  pattern."""
  combined, _ = with_index(preds, evidence, combination, k)
  summary_ = metrics.summary({h: i for h, (i, _) in combined.ranked.items()}, combined.labels)
  truth = np.asarray(preds.labels['crystal_system'])
  network = np.asarray(preds.ranked['crystal_system'][0])[:, 0]
  both = np.asarray(combined.ranked['crystal_system'][0])[:, 0]
  systems = list(combine.SYSTEMS)
  alone = np.array([systems.index(e.chosen.crystal_system) if e.chosen else -1 for e in evidence])
  disagree = (alone >= 0) & (combine.lattice_class(alone) != combine.lattice_class(network))
  n = max(len(truth), 1)
  seconds = np.array([e.seconds for e in evidence])
  summary_['index'] = {
      'crystal_system_top1_network': float(np.mean(network == truth)),
      'crystal_system_top1_indexing': float(np.mean(alone == truth)),
      'crystal_system_top1_combined': float(np.mean(both == truth)),
      'no_cell': float(np.mean([e.usable and e.chosen is None for e in evidence])),
      'out_of_time': float(np.mean([e.timed_out for e in evidence])),
      'too_few_lines_or_failed': float(np.mean([not e.usable and not e.timed_out for e in evidence])),
      'disagreed': float(disagree.sum() / n),
      'disagreed_network_right': float((disagree & (network == truth)).sum() / n),
      'disagreed_indexing_right': float((disagree & (alone == truth)).sum() / n),
      'disagreed_combined_right': float((disagree & (both == truth)).sum() / n),
      'search_seconds_mean': float(seconds.mean()) if len(seconds) else 0.0,
      'search_seconds_median': float(np.median(seconds)) if len(seconds) else 0.0,
  }
  return summary_, combined
