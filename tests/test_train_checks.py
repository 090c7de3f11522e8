"""The trainer's checks before it writes anything: config values, corpora, the grid against the peak windows, the
memory a batch needs, measured evaluation sets, a config file that cannot be loaded."""

import os
import shutil
import sys

import numpy as np
import pytest

from difcon_jax.data import build
from difcon_jax.data import corpus
from difcon_jax.training import config_checks
from difcon_jax.training import memory_check

import input_helpers


def _errors(**fields):
  c = input_helpers.config()
  with c.unlocked():
    for dotted, value in fields.items():
      node = c
      *parents, last = dotted.split('__')
      for p in parents:
        node = node[p]
      node[last] = value
  return config_checks.config_errors(c), c


def test_config_errors_name_each_bad_field():
  import train_helpers
  rng = np.random.default_rng(14)
  base = train_helpers.tiny_config('corpus')
  assert config_checks.config_errors(base) == []
  bad = {'steps': [-1, 0], 'log_every': [0, -5], 'eval_every': [0], 'checkpoint_every': [0],
         'batch_size': [0, -int(rng.integers(1, 99))], 'best_metric': ['nope', 'equivariance/top1'],
         'augmentation': ['trian'], 'ema_decay': [1.0, -0.1], 'two_theta_max': [0.0, 200.0]}
  for field, values in bad.items():
    for v in values:
      c = train_helpers.tiny_config('corpus')
      with c.unlocked():
        c[field] = v
      errors = config_checks.config_errors(c)
      assert len(errors) == 1 and errors[0].startswith(f'config.{field}='), (field, v, errors)
  c = train_helpers.tiny_config('corpus')
  c.optimizer.name = 'sgd'
  c.model.stage_sizes = ()
  assert len(config_checks.config_errors(c)) == 2


@pytest.mark.slow
def test_train_refuses_bad_configs_and_unknown_fields_in_one_line(tmp_path):
  for args in (['--config.steps=-1'], ['--config.best_metric=nope'], ['--config.x=1'], ['--config.model.nope=2']):
    run = input_helpers.run('-m', 'difcon_jax.train', '--config=configs/quickstart.py', f'--workdir={tmp_path / "w"}', *args)
    assert run.returncode == 2 and 'Traceback' not in run.stderr, run.stderr[-1500:]
    lines = [l for l in run.stderr.splitlines() if l.startswith('train: error:')]
    assert len(lines) == 1 and args[0].split('=')[0].removeprefix('--') in lines[0], run.stderr[-800:]
    assert not os.path.exists(tmp_path / 'w' / 'config.json')


def test_damaged_corpora_are_named_before_any_training(tmp_path):
  import train_helpers
  cifs = input_helpers.cifs(tmp_path)
  whole = tmp_path / 'whole'
  build.build(str(cifs), str(whole), workers=1, progress=False, test_fraction=0.5)
  only_train = tmp_path / 'only_train'
  build.build(str(cifs), str(only_train), workers=1, progress=False, test_fraction=0.0)
  with pytest.raises(config_checks.ConfigError, match="no 'test' split") as e:
    config_checks.check_corpus(train_helpers.tiny_config(str(only_train)))
  assert '\n' not in str(e.value)
  with pytest.raises(corpus.CorpusError, match="no 'test' split"):
    corpus.data_sources(str(only_train))['test']
  cut = tmp_path / 'cut'
  shutil.copytree(whole, cut)
  record = next(p for p in (cut / corpus.NAME / corpus.VERSION).iterdir() if 'train.array_record' in p.name)
  os.truncate(record, os.path.getsize(record) // 2)
  with pytest.raises(corpus.CorpusError) as e:
    corpus.load_arrays(str(cut), 'train')
  assert str(e.value).startswith(str(record)) and '\n' not in str(e.value)
  with pytest.raises(config_checks.ConfigError, match=record.name):
    config_checks.check_corpus(train_helpers.tiny_config(str(cut)))


def test_a_grid_too_coarse_for_the_peak_windows():
  import train_helpers
  for bins in (10, 100, 1000):
    c = train_helpers.tiny_config('corpus')
    c.num_bins = bins
    errors = config_checks.config_errors(c)
    assert len(errors) == 1 and errors[0].startswith(f'config.num_bins={bins}:') and 'at least' in errors[0]
  least = int(errors[0].split('at least ')[1].split()[0])
  c.num_bins = least
  assert config_checks.config_errors(c) == []


def test_a_batch_that_cannot_fit_is_refused_before_any_work():
  sys.path.insert(0, input_helpers.ROOT)
  from configs import quickstart  # pylint: disable=g-import-not-at-top
  c = quickstart.get_config()
  per_example = memory_check.bytes_per_example(c, 2)
  assert per_example > 2 * 4 * c.num_bins  # more than the two rendered views alone
  c.batch_size = 100_000
  with pytest.raises(config_checks.ConfigError, match='config.batch_size=100000') as e:
    memory_check.check_memory(c, 2, (64 << 30, 'a 64 GiB device'))
  assert '\n' not in str(e.value) and 'a 64 GiB device' in str(e.value)
  c.batch_size = 32
  memory_check.check_memory(c, 2, (64 << 30, 'a 64 GiB device'))
  with pytest.raises(config_checks.ConfigError):
    memory_check.check_memory(c, 2, (31 * per_example, 'a small device'))


def test_a_missing_config_file_is_one_line(tmp_path):
  run = input_helpers.run('-m', 'difcon_jax.train', f'--config={tmp_path / "nope.py"}', f'--workdir={tmp_path / "w"}')
  lines = input_helpers.error_lines(run)
  assert len(lines) == 1 and '--config' in lines[0] and 'nope.py' in lines[0], run.stderr[-1000:]
  assert not (tmp_path / 'w').exists()


def test_train_refuses_config_values_before_writing_anything(tmp_path):
  work = tmp_path / 'work'
  err = input_helpers.refused(input_helpers.run('-m', 'difcon_jax.train', '--config=configs/quickstart.py', f'--workdir={work}',
                      '--config.views=1', '--config.model.pooling=nope'))
  assert 'config.views=1' in err and 'config.model.pooling' in err
  assert not work.exists()


def test_views_batches_and_devices_are_config_errors():
  errors, _ = _errors(views=1)
  assert errors and errors[0].startswith('config.views=1') and 'ssl_weight' in errors[0]
  errors, _ = _errors(per_device_batch_size=-2, prefetch=0)
  assert [e.split('=')[0] for e in errors] == ['config.per_device_batch_size', 'config.prefetch']
  _, c = _errors(batch_size=9, eval_batch_size=6)
  with pytest.raises(config_checks.ConfigError) as e:
    config_checks.check_config(c, device_count=4)
  assert [l.split('=')[0] for l in str(e.value).splitlines()] == ['config.batch_size', 'config.eval_batch_size']
  _, c = _errors(batch_size=8, eval_batch_size=8)
  config_checks.check_config(c, device_count=4)


def test_a_measured_set_that_is_not_there_or_unreadable(tmp_path):
  bad = tmp_path / 'bad.npz'
  bad.write_bytes(b'garbage')
  for data, expected in ((tmp_path / 'none.npz', 'no such file'), (bad, 'cannot be read'),
                         (tmp_path, 'labels')):
    _, c = _errors()
    c.evals.experimental.data = str(data)
    with pytest.raises(config_checks.ConfigError, match=expected) as e:
      config_checks.check_config(c, device_count=1)
    assert str(e.value).startswith('config.evals.experimental.')


def test_network_fields_are_named_themselves_not_the_grid():
  for fields, named in (({'model__pooling': 'attention', 'model__attention_heads': 3}, 'config.model.attention_heads'),
                        ({'model__norm': 'nope'}, 'config.model.norm'),
                        ({'model__heads_input': 'x'}, 'config.model.heads_input'),
                        ({'model__projector_dims': (0,)}, 'config.model.projector_dims'),
                        ({'model__norm': 'group', 'model__width': 12}, 'config.model.width')):
    errors, _ = _errors(**fields)
    assert errors and errors[0].startswith(named + '='), (fields, errors)
    assert not any(e.startswith('config.num_bins') for e in errors)
