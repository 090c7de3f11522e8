"""Evaluation sets built from the entries of `config.evals`, and the evaluators that run them: the one place a set
is made from its entry, so that the trainer's periodic evaluation, `evaluate`, the sweep, HAND and the indexing
scorer see the same patterns (`simulated_set`, `measured_set`, `from_config`).

Each entry of config.evals (config_base.evaluator) names one evaluation set:
- kind 'simulated': a corpus's test split (the entry's `corpus`, else config.corpus) rendered with an augmentation
  `distribution` (augment/params.py), the
  same fixed draws at every evaluation (eval_sets.SimulatedSet, seed config.eval_seed), at most
  config.eval_examples patterns;
- kind 'measured': labelled measured patterns (`data`: an .npz like rruff_dev.npz, or a folder with labels.csv;
  `labels`: a labels file for a folder), read once onto the model grid (eval_sets.read_measured); an entry whose
  `data` is None is off.
An evaluator runs every `every` steps (None: config.eval_every) and at the last step, and reports
'{name}/{metric}' for metrics.accuracy_names() and '{name}/crystal_system_majority_share' (what always answering
the most common true crystal system would score).

Checkpoints are chosen on simulated sets only (config_checks refuses a best_metric of a measured set): measured
patterns stay a test set, and a model that was selected on them would say so in its config.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable

import numpy as np

from difcon_jax import config_base
from difcon_jax.evaluation import sets as eval_sets
from difcon_jax.crystallography import pattern_grid as grid_lib
from difcon_jax.evaluation import metrics

KINDS = ('simulated', 'measured')


@dataclasses.dataclass
class Evaluator:
  """One evaluation set and its cadence. `batches()` gives the set's eval_sets.Batch'es (labelled)."""
  name: str
  kind: str
  every: int
  batches: Callable[[], Iterable[eval_sets.Batch]]
  skipped: list[dict] = dataclasses.field(default_factory=list)  # rows of measured patterns that were unusable

  def due(self, step: int, last_step: int) -> bool:
    """Whether this evaluator runs after `step` (its cadence, and always at the last step)."""
    return step % self.every == 0 or step == last_step

  def predictions(self, model: Callable) -> tuple[dict, eval_sets.Predictions]:
    """(metrics.summary of the set, its Predictions) of model(x) -> (logits, aux)."""
    return eval_sets.evaluate(model, self.batches())

  def run(self, model: Callable) -> dict[str, float]:
    """{'{name}/{metric}': value} of model(x) -> (logits, aux) on the set."""
    m, _ = self.predictions(model)
    return scalars(self.name, m)


def scalars(name: str, summary: dict) -> dict[str, float]:
  """The logged numbers of a set's metrics.summary: accuracies and the majority share, under '{name}/'."""
  out = {f'{name}/{k}': float(summary[k]) for k in metrics.accuracy_names()}
  per_class = np.asarray(summary['crystal_system_confusion']).sum(1)
  out[f'{name}/crystal_system_majority_share'] = float(per_class.max() / max(per_class.sum(), 1))
  return out


def specs(config) -> dict:
  """config.evals, or the defaults of config_base for a config written before evaluators were configurable."""
  evals = config.get('evals')
  if evals:
    return dict(evals.items())
  return dict(config_base.default_evals().items())


def corpora(config) -> dict[str, str]:
  """{corpus: what reads it} of a config: config.corpus (training) and the corpus of each simulated set."""
  out = {config.corpus: 'corpus'}
  for name, spec in enabled(config).items():
    if spec['kind'] == 'simulated' and spec.get('corpus'):
      out.setdefault(spec['corpus'], f'evals.{name}.corpus')
  return out


def _simulated_spec(config, name: str):
  spec = specs(config).get(name)
  if spec is None or spec['kind'] != 'simulated':
    raise KeyError(f'{name!r} is not a simulated evaluation set of the config '
                   f'({", ".join(n for n, s in specs(config).items() if s["kind"] == "simulated")})')
  return spec


def simulated_distribution(config, name: str) -> str:
  """The augmentation distribution of simulated set `name` of a config (e.g. 'invariance' -> 'invariance_test')."""
  return _simulated_spec(config, name)['distribution']


def simulated_corpus(config, name: str) -> str:
  """The corpus whose test split simulated set `name` renders: the entry's own `corpus`, else config.corpus (the
  trainer's choice, so that evaluate scores the set the trainer scored)."""
  return _simulated_spec(config, name).get('corpus') or config.corpus


def enabled(config) -> dict:
  """{name: spec} of the evaluators that run: every simulated set, and measured sets that have data."""
  return {n: s for n, s in specs(config).items() if s['kind'] == 'simulated' or s.get('data')}


def metric_names(config) -> list[str]:
  """Every name the configured evaluation reports."""
  return [f'{n}/{m}' for n in enabled(config) for m in metrics.accuracy_names()]


def simulated_set(config, name: str, *, corpus: str | None = None, batch_size: int | None = None,
                  examples: int | None = None, seed: int | None = None, mesh=None, cache: bool = False,
                  split: str = 'test') -> eval_sets.SimulatedSet:
  """Simulated set `name` of config.evals as every evaluation renders it: the entry's distribution on the config's
  grid with the fixed draws of config.eval_seed, over `split` of `corpus` (default: the entry's own corpus, else
  config.corpus). batch_size: default config.eval_batch_size; examples: at most this many (None: the whole split);
  seed: instead of config.eval_seed (the paper's for a config written before it existed); mesh, cache: as
  eval_sets.SimulatedSet. Raises KeyError when `name` is not a simulated set of the config."""
  distribution = simulated_distribution(config, name)
  corpus = corpus or simulated_corpus(config, name)
  if seed is None:
    seed = config.get('eval_seed', config_base.paper_config().eval_seed)
  return eval_sets.SimulatedSet(corpus, distribution, config.num_bins, config.two_theta_max,
                                batch_size or config.eval_batch_size, seed, examples, mesh, split=split, cache=cache)


def measured_set(config, data: str, labels: str | None = None, items=None):
  """A labelled measured set read onto the config's grid at its training wavelength (eval_sets.read_measured:
  data an .npz like rruff_dev.npz, or a folder with `labels`; items: the set already read by measured.read_set).
  Returns (patterns [N, bins], space groups [N], names [N], rows: one per pattern of the set, ok or error)."""
  return eval_sets.read_measured(data, labels, grid_lib.from_config(config),
                                 config.get('wavelength', grid_lib.WAVELENGTH), items)


def from_config(config, mesh=None, cache: bool = True, batch_size: int | None = None,
                corpus: str | None = None) -> dict[str, Evaluator]:
  """{name: Evaluator} of config.evals that are enabled. mesh: devices that share an evaluation batch; cache:
  simulated sets keep their rendered batches on the devices after the first pass (a trainer's periodic
  evaluation renders them once); batch_size, corpus: instead of config.eval_batch_size and the corpora of the
  simulated sets (an entry's own `corpus`, else config.corpus)."""
  out = {}
  for name, spec in enabled(config).items():
    every = spec.get('every') or config.eval_every
    if spec['kind'] == 'simulated':
      data = simulated_set(config, name, corpus=corpus, batch_size=batch_size, examples=config.eval_examples,
                           mesh=mesh, cache=cache)
      out[name] = Evaluator(name, 'simulated', every, lambda data=data: data)
    else:
      x, sgs, names, rows = measured_set(config, spec['data'], spec.get('labels'))
      skipped = [r for r in rows if r['status'] != 'ok']
      out[name] = Evaluator(name, 'measured', every, lambda x=x, names=names, sgs=sgs: eval_sets.grid_batches(
          x, names, batch_size or config.eval_batch_size, sgs), skipped)
  return out
