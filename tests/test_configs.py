import importlib.util
import pathlib

import pytest

CONFIGS = sorted((pathlib.Path(__file__).parent.parent / 'configs').glob('*.py'))


def _load(path):
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.stem)
def test_configs_load_and_are_complete(path):
  from difcon_jax import config_base
  c = _load(path)
  assert set(c.keys()) == set(config_base.paper_config().keys())
  assert c.batch_size % 8 == 0
  assert c.loss.ssl in ('barlow_twins', 'nt_xent')


def test_the_paper_models_differ_where_they_should():
  c = {p.stem: _load(p) for p in CONFIGS}
  assert c['cnn_static'].static_augmentation and not c['cnn_aug'].static_augmentation
  assert c['cnn_static'].loss.ssl_weight == c['cnn_aug'].loss.ssl_weight == 0
  assert c['difcon_barlow'].loss.ssl == 'barlow_twins' and c['difcon_simclr'].loss.ssl == 'nt_xent'
  assert c['difcon_barlow'].loss.ssl_weight > 0 and c['difcon_simclr'].loss.ssl_weight > 0
