import importlib.util
import pathlib

import pytest

CONFIGS = sorted((pathlib.Path(__file__).parent.parent / 'configs').glob('*.py'))


def _load(path):
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _fields(config, prefix=''):
  """The names 'a.b.c' of every leaf field, nested ones included."""
  out = set()
  for k, v in config.items():
    out |= _fields(v, f'{prefix}{k}.') if hasattr(v, 'items') else {prefix + k}
  return out


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.stem)
def test_configs_load_and_are_complete(path):
  """Every config has exactly the fields of config_base, nested ones included (a misspelt c.model.widht would be
  a new field that the trainer never reads)."""
  from difcon_jax import config_base
  c = _load(path)
  # A config may add evaluation sets (config_base.default_evals says how); each must be a whole evaluator.
  added = set(c.evals) - set(config_base.default_evals())
  for name in added:
    assert _fields(c.evals[name]) == _fields(config_base.evaluator('simulated')), name
  fields = {f for f in _fields(c) if f.split('.')[:2] not in [['evals', n] for n in added]}
  base = _fields(config_base.paper_config())
  assert fields == base, (sorted(fields - base), sorted(base - fields))
  assert c.batch_size % 8 == 0
  assert c.loss.ssl in ('barlow_twins', 'nt_xent')


def test_the_paper_models_differ_where_they_should():
  c = {p.stem: _load(p) for p in CONFIGS}
  assert c['cnn_static'].static_augmentation and not c['cnn_aug'].static_augmentation
  assert c['cnn_static'].loss.ssl_weight == c['cnn_aug'].loss.ssl_weight == 0
  assert c['difcon_barlow'].loss.ssl == 'barlow_twins' and c['difcon_simclr'].loss.ssl == 'nt_xent'
  assert c['difcon_barlow'].loss.ssl_weight > 0 and c['difcon_simclr'].loss.ssl_weight > 0


def test_the_measured_pattern_config_is_the_paper_model_on_lab():
  """configs/difcon_measured.py changes the paper's model only where its docstring says: the `lab` distribution,
  the contrastive weight the CPU recipes use with it and a `lab` evaluation set; its network, optimiser, batch and
  schedule stay paper-size."""
  c = {p.stem: _load(p) for p in CONFIGS}
  measured, paper = c['difcon_measured'], c['difcon_barlow']
  assert measured.augmentation == 'lab' and paper.augmentation == 'train'
  assert measured.loss.ssl_weight == c['cpu'].loss.ssl_weight
  assert 'lab' in measured.evals and 'lab' not in paper.evals
  for field in ('model', 'optimizer', 'batch_size', 'steps', 'corpus', 'grid'):
    assert measured[field] == paper[field], field
