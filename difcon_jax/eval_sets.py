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

from difcon_jax import metrics
from difcon_jax import summary
from difcon_jax.augment import kernel as augment_kernel
from difcon_jax.augment import params as augment_params
from difcon_jax.data import input_pipeline
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


class SimulatedSet:
  """A corpus split rendered with one augmentation distribution (the paper's equivariance and invariance sets).

  Args:
    corpus: corpus folder; split: its split ('test').
    distribution: augmentation distribution (augment/params.py).
    num_bins, two_theta_max: the model grid.
    batch_size: patterns per batch; examples: at most this many (None: the whole split).
    seed: the evaluation seed (config.eval_seed).
    mesh: devices that share a batch whose size they divide (None: one device).
    cache: keep the rendered batches (on the devices) after the first pass, so that a trainer's periodic
      evaluation renders its sets once (examples x bins x 4 bytes each).
  """

  def __init__(self, corpus: str, distribution: str, num_bins: int, two_theta_max: float, batch_size: int,
               seed: int, examples: int | None = None, mesh=None, split: str = 'test', cache: bool = False):
    self.split = split
    self._cache: list[Batch] | None = [] if cache else None
    self.data = input_pipeline.PeakBatches(corpus, split, batch_size, shuffle=False)
    self.count = min(self.data.size, examples or self.data.size)
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


def run(model: Callable, batches: Iterable[Batch], k: int = TOP_K, embeddings: bool = False) -> Predictions:
  """Ranks every pattern of a set: model(x [batch, bins]) -> (logits, aux) (inference.Model, or the trainer's
  jitted apply); k: labels ranked per head; embeddings: keep aux['embedding'] too."""
  names, on_device, counts, labels = [], [], [], []
  for b in batches:
    logits, aux = model(b.x)
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
      cat(emb) if embeddings else None)


def evaluate(model: Callable, batches: Iterable[Batch], k: int = TOP_K) -> tuple[dict, Predictions]:
  """(metrics.summary of the set, its Predictions) for a labelled set."""
  preds = run(model, batches, k)
  if preds.labels is None:
    raise ValueError('evaluate needs a labelled set')
  return metrics.summary({h: i for h, (i, _) in preds.ranked.items()}, preds.labels), preds
