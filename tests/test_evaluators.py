"""Evaluation sets come from config.evals: a measured set or another simulated set is a config change, each set
runs at its own cadence, and checkpoints are never chosen on measured patterns."""

import json
import os

import pytest

from difcon_jax import config_base
from difcon_jax.evaluation import sets as eval_sets
from difcon_jax.evaluation import evaluators
from difcon_jax.inference import model as inference
from difcon_jax import train
from difcon_jax.training import config_checks

import train_helpers


@pytest.mark.slow
def test_sets_from_the_config_run_at_their_own_cadence(tiny_corpus, tmp_path):
  c = train_helpers.tiny_config(tiny_corpus, steps=2)
  c.evals.experimental.data = train_helpers.measured_npz(tiny_corpus, tmp_path / 'measured.npz')
  c.evals.experimental.every = 1
  c.evals.ideal = config_base.evaluator('simulated', 'ideal')  # a set the defaults do not have
  work = str(tmp_path / 'w')
  train.train_and_evaluate(c, work)
  rows = [json.loads(l) for l in open(os.path.join(work, 'metrics.jsonl'))]
  evaluated = {}
  for r in rows:
    for k in r:
      if k.endswith('/crystal_system_top1'):
        evaluated.setdefault(k.split('/')[0], []).append(r['step'])
  assert evaluated == {'experimental': [1, 2], 'equivariance': [2], 'invariance': [2], 'invariance_nuisance': [2],
                       'ideal': [2]}
  final = json.load(open(os.path.join(work, 'final_metrics.json')))
  exp_rows = [r for r in rows if 'experimental/crystal_system_top1' in r]
  # The measured set's majority share is that of its six labels; the final numbers are the last evaluation's.
  assert final['experimental/crystal_system_top1'] == exp_rows[-1]['experimental/crystal_system_top1']
  assert 0 < final['experimental/crystal_system_majority_share'] <= 1
  assert json.load(open(os.path.join(work, 'config.json')))['evals']['ideal']['distribution'] == 'ideal'
  assert sorted(os.listdir(os.path.join(work, 'best'))) == ['2']  # chosen when its metric's set ran: step 2
  # The trainer's measured numbers are those `evaluate --weights=latest` computes from the saved model.
  model = inference.Model(work, 'latest')
  x, sgs, names, _ = eval_sets.read_measured(c.evals.experimental.data, None, model.grid, model.wavelength)
  m, _ = eval_sets.evaluate(model, eval_sets.grid_batches(x, names, 4, sgs))
  for k in ('crystal_system_top1', 'space_group_top5', 'extinction_group_top1'):
    assert final[f'experimental/{k}'] == m[k]


def test_checkpoints_are_not_chosen_on_measured_patterns(tiny_corpus):
  c = train_helpers.tiny_config(tiny_corpus)
  c.evals.experimental.data = 'patterns.npz'
  assert 'experimental/crystal_system_top1' in evaluators.metric_names(c)
  c.best_metric = 'experimental/crystal_system_top1'
  errors = config_checks.config_errors(c)
  assert len(errors) == 1 and errors[0].startswith("config.best_metric='experimental/crystal_system_top1': a metric "
                                                   'of a simulated evaluation set')
  c.best_metric = 'invariance_nuisance/space_group_top5'
  assert config_checks.config_errors(c) == []
  c.evals.invariance.distribution = 'nope'
  c.evals.invariance.every = 0
  assert [e.split(':')[0] for e in config_checks.config_errors(c)] == [
      "config.evals.invariance.distribution='nope'", 'config.evals.invariance.every=0']


def test_a_config_without_evals_gets_the_paper_sets():
  """config.json of models trained before config.evals existed: the default sets, by the same names."""
  import ml_collections
  old = ml_collections.ConfigDict({'eval_every': 10})
  assert evaluators.simulated_distribution(old, 'invariance') == 'invariance_test'
  assert list(evaluators.enabled(old)) == ['equivariance', 'invariance', 'invariance_nuisance']


def test_a_simulated_set_may_render_another_corpus(tiny_corpus, tmp_path):
  """evals.NAME.corpus: the held-out structures of another corpus (real structures for a run on synthetic ones);
  a missing one is refused before anything is written, named by its field."""
  import pytest  # pylint: disable=g-import-not-at-top
  c = train_helpers.tiny_config(tiny_corpus)
  c.evals.other = config_base.evaluator('simulated', 'ideal', corpus=str(tmp_path / 'nowhere'))
  assert evaluators.corpora(c) == {c.corpus: 'corpus', str(tmp_path / 'nowhere'): 'evals.other.corpus'}
  with pytest.raises(config_checks.ConfigError, match=r'config\.evals\.other\.corpus=.*nowhere: no corpus there'):
    config_checks.check_corpus(c)
  c.evals.other.corpus = tiny_corpus
  config_checks.check_corpus(c)
  sets = evaluators.from_config(c, cache=False, batch_size=4)
  assert sets['other'].batches().data._path == tiny_corpus and len(sets['other'].batches()) > 0
