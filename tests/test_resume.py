"""Resuming a training: a changed model or recipe refused before the workdir is touched, each step written once,
damaged checkpoints passed over, fewer steps than the checkpoint refused."""

import json
import os
import shutil

import numpy as np
import pytest

from difcon_jax.inference import model as inference
from difcon_jax.io import workdir as workdir_lib
from difcon_jax.training import config_checks
from difcon_jax.training import resume_checks

import input_helpers


def _cut(folder):
  for dirpath, _, names in os.walk(folder):
    for n in names:
      path = os.path.join(dirpath, n)
      os.truncate(path, os.path.getsize(path) // 2)


@pytest.mark.slow
def test_a_changed_model_is_refused_before_the_workdir_is_touched(tiny_workdir, tmp_path):
  from difcon_jax import train
  import train_helpers
  work = tmp_path / 'work'
  shutil.copytree(tiny_workdir, work)
  corpus = json.load(open(work / 'config.json'))['corpus']
  before = {p: (work / p).read_bytes() for p in ('config.json', 'metrics.jsonl')}
  for field, value in (('width', 16), ('embedding_dim', 24)):
    c = train_helpers.tiny_config(corpus, steps=4)
    c.model[field] = value
    with pytest.raises(config_checks.ConfigError, match='different model') as e:
      train.train_and_evaluate(c, str(work))
    assert 'config.json' in str(e.value) and '\n' not in str(e.value)
    assert {p: (work / p).read_bytes() for p in before} == before


@pytest.mark.slow
def test_a_resume_with_another_corpus_or_recipe_is_refused_before_the_workdir_is_touched(tiny_workdir, tmp_path):
  """Same model, other training: another corpus, learning rate or augmentation range would silently go on with
  other data or another recipe; steps (the cadence fields) may change."""
  from difcon_jax import train
  import train_helpers
  work = tmp_path / 'work'
  shutil.copytree(tiny_workdir, work)
  corpus = json.load(open(work / 'config.json'))['corpus']
  other = tmp_path / 'other_corpus'
  shutil.copytree(corpus, other)
  before = {p: (work / p).read_bytes() for p in ('config.json', 'metrics.jsonl')}
  changes = {'corpus': lambda c: setattr(c, 'corpus', str(other)),
             'optimizer.learning_rate': lambda c: setattr(c.optimizer, 'learning_rate', 0.5),
             'augment.U': lambda c: c.update({'augment': {'U': (0.001, 0.002)}})}
  for field, change in changes.items():
    c = train_helpers.tiny_config(corpus, steps=4)
    with c.unlocked():
      change(c)
    with pytest.raises(config_checks.ConfigError, match='another config') as e:
      train.train_and_evaluate(c, str(work))
    assert f'{field}:' in str(e.value) and 'config.json' in str(e.value) and '\n' not in str(e.value)
    assert {p: (work / p).read_bytes() for p in before} == before
  c = train_helpers.tiny_config(corpus, steps=3)  # the same recipe, one step more: resumed
  train.train_and_evaluate(c, str(work))
  assert max(json.loads(l)['step'] for l in open(work / 'metrics.jsonl')) == 3


def test_a_config_json_of_an_older_trainer_resumes_under_its_own_config(tmp_path):
  """Before config.json held the rendered augmentation ranges it held the overrides (unset): the same config is no
  change, an override is one, and a field the old record lacks is none."""
  import train_helpers
  c = train_helpers.tiny_config(str(tmp_path))
  old = json.loads(c.to_json_best_effort())
  assert not any(old['augment'].values())  # the overrides, none set
  del old['ema_decay']
  assert resume_checks.resume_changes(old, c) == ([], [])
  c.augment = {'U': (0.001, 0.002)}
  c.steps = 9
  refused, allowed = resume_checks.resume_changes(old, c)
  assert [r[0] for r in refused] == ['augment.U'] and allowed == [('steps', 2, 9)]


@pytest.mark.slow
def test_resume_writes_each_step_once(tiny_workdir, tmp_path):
  """Rows written after the last checkpoint by a killed run are dropped and written once more."""
  from difcon_jax import train
  import train_helpers
  work = tmp_path / 'work'
  shutil.copytree(tiny_workdir, work)
  with open(work / 'metrics.jsonl', 'a') as f:  # a run that died at step 3, after its log, before its checkpoint
    f.write(json.dumps({'step': 3, 'train/loss': 99.0}) + '\n')
  c = train_helpers.tiny_config(json.load(open(work / 'config.json'))['corpus'], steps=3)
  train.train_and_evaluate(c, str(work))
  rows = [json.loads(l) for l in open(work / 'metrics.jsonl')]
  keys = [(r['step'], 'train/loss' in r) for r in rows]
  assert len(keys) == len(set(keys)) and 99.0 not in [r.get('train/loss') for r in rows]
  assert max(r['step'] for r in rows) == 3


def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(tmp_path):
  import jax
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
  from difcon_jax import train
  config, work = input_helpers.workdir(tmp_path, (1, 2))
  _cut(work / 'checkpoints' / '2')
  model = inference.Model(str(work), 'latest')
  assert model.step == 1 and 'damaged' in model.source and 'checkpoints/2' in model.source
  replicated = NamedSharding(Mesh(np.array(jax.devices()), ('data',)), P())
  state, latest, _ = train.restore_or_init(config, train.create_model(config), train.create_optimizer(config),
                                           str(work), replicated)
  assert int(state.step) == 1 and latest.all_steps() == [1]
  assert (work / 'checkpoints' / '2.damaged').is_dir()  # moved aside, not deleted
  _cut(work / 'checkpoints' / '1')
  with pytest.raises(inference.ModelError, match='no checkpoint can be restored'):
    inference.Model(str(work), 'latest')


def test_late_reports_of_a_failed_checkpoint_read_are_dropped():
  """Orbax closes its event loop at a read's first error; tensorstore's other reads then report 'Event loop is
  closed' as unraisable exceptions, dozens of tracebacks after the error was handled. Only those are dropped."""
  code = ('import sys\nfrom difcon_jax.io import workdir\nworkdir.drop_closed_loop_reports()\n'
          'class Late:\n  def __del__(self):\n    raise RuntimeError(sys.argv[1])\n'
          'for _ in range(5):\n  Late()\n')
  dropped = input_helpers.run('-c', code, 'Event loop is closed')
  shown = input_helpers.run('-c', code, 'something else')
  assert dropped.returncode == 0 and 'Traceback' not in dropped.stderr, dropped.stderr
  assert shown.stderr.count('something else') == 5


def test_a_resume_with_fewer_steps_than_the_checkpoint_is_refused(tmp_path):
  import jax.numpy as jnp
  import orbax.checkpoint as ocp
  from difcon_jax import train
  config = input_helpers.config()
  config.steps = 4
  work = tmp_path / 'work'
  work.mkdir()
  (work / 'config.json').write_text(json.dumps(resume_checks.recorded_config(config)))
  model, tx = train.create_model(config), train.create_optimizer(config)
  state = train.init_state(config, model, tx, jnp.zeros((1, config.num_bins)))
  latest, _ = workdir_lib.checkpoint_managers(str(work), 2, config.best_metric)
  latest.save(4, args=ocp.args.StandardSave(state.replace(step=jnp.asarray(4, jnp.int32))))
  latest.wait_until_finished()
  resume_checks.check_checkpoint_matches(state, str(latest.directory), 4, str(work), config)  # same steps: fine
  config.steps = 2
  with pytest.raises(config_checks.ConfigError, match=r'config.steps=2: .* step 4'):
    resume_checks.check_checkpoint_matches(state, str(latest.directory), 4, str(work), config)
