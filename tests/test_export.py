import json
import os

import numpy as np
import pytest

from difcon_jax.inference import model as inference
import shutil
import input_helpers


def test_exported_model_predicts_as_its_workdir(tiny_workdir, tmp_path):
  out = str(tmp_path / 'exported')
  info = inference.export(tiny_workdir, out, 'tiny')
  assert sorted(os.listdir(out)) == ['config.json', 'model.json', 'variables.msgpack']
  assert json.load(open(os.path.join(out, 'model.json')))['step'] == info['step'] == 2
  from_workdir, exported = inference.Model(tiny_workdir), inference.Model(out)
  assert exported.step == from_workdir.step and exported.source.startswith('exported model tiny')
  x = np.random.default_rng(0).random((2, from_workdir.config.num_bins)).astype(np.float32)
  (la, aa), (lb, ab) = from_workdir(x), exported(x)
  np.testing.assert_array_equal(np.asarray(la['crystal_system']), np.asarray(lb['crystal_system']))
  np.testing.assert_array_equal(np.asarray(aa['embedding']), np.asarray(ab['embedding']))
  # No optimiser state travels: the export is the inference weights only.
  size = os.path.getsize(os.path.join(out, 'variables.msgpack'))
  assert size < 4 * 1.2 * info['parameters'] + 100_000


def test_model_json_names_the_workdir_as_given(tiny_workdir, tmp_path, monkeypatch):
  """A shipped model.json says runs/NAME, not the exporting machine's absolute folders."""
  monkeypatch.chdir(os.path.dirname(tiny_workdir))
  name = os.path.basename(tiny_workdir)
  info = inference.export(name, str(tmp_path / 'exported'), 'tiny')
  assert info['workdir'] == name == json.load(open(tmp_path / 'exported' / 'model.json'))['workdir']


def test_a_folder_without_a_model_is_refused(tmp_path):
  with pytest.raises(FileNotFoundError, match='no config.json'):
    inference.Model(str(tmp_path))


def test_the_bundled_model_is_the_default_and_predicts():
  model = inference.Model()  # no path: difcon_jax/pretrained/default
  info = json.load(open(os.path.join(inference.BUNDLED_MODEL, 'model.json')))
  assert model.source == f"bundled model {info['name']} (step {info['step']})" and info['step'] == model.step
  x = np.zeros((2, model.config.num_bins), np.float32)
  x[:, 3000:3010] = 1.0
  logits, aux = model(x)
  assert logits['crystal_system'].shape == (2, 7) and np.isfinite(np.asarray(aux['embedding'])).all()


def _fake_training_workdir(folder):
  folder.mkdir(parents=True)
  (folder / 'config.json').write_text('{}')
  (folder / 'checkpoints').mkdir()
  return folder


def test_export_refuses_a_missing_workdir_and_its_own_workdir(tmp_path):
  run = input_helpers.run('-m', 'difcon_jax.export', f'--workdir={tmp_path / "nowhere"}', f'--out={tmp_path / "exp"}',
             '--name=x')
  assert len(input_helpers.error_lines(run)) == 1 and '--workdir=' in run.stderr
  assert not (tmp_path / 'nowhere').exists() and not (tmp_path / 'exp').exists()
  _, work = input_helpers.workdir(tmp_path, (1,))
  before = (work / 'config.json').read_bytes()
  run = input_helpers.run('-m', 'difcon_jax.export', f'--workdir={work}', f'--out={work}', '--name=x')
  assert len(input_helpers.error_lines(run)) == 1 and 'config.json' in run.stderr
  assert (work / 'config.json').read_bytes() == before and not (work / 'variables.msgpack').exists()


def test_damaged_exported_models_are_named_in_one_line(tmp_path):
  good = inference.BUNDLED_MODEL
  config = json.load(open(os.path.join(good, 'config.json')))
  weights = open(os.path.join(good, 'variables.msgpack'), 'rb').read()
  rng = np.random.default_rng(1)
  other = json.loads(json.dumps(config))
  other['model']['width'] = config['model']['width'] * 2
  cases = {  # file -> (content, words in the error)
      'variables.msgpack': [(weights[:len(weights) // 2], 'cut or damaged'), (b'', 'empty'),
                            (rng.bytes(5000), 'variables.msgpack')],
      'config.json': [('{"num_bins": 12', 'not valid JSON'), ('{}', 'empty'), ('"text"', 'not a JSON object'),
                      (json.dumps({**config, 'num_bins': 'many'}), 'num_bins'),
                      (json.dumps({**config, 'two_theta_max': None}), 'two_theta_max'),
                      (json.dumps(other), 'another model')],
      'model.json': [(None, 'missing'), ('[1, 2]', 'not a JSON object'), ('{"name": "x", "step": "ten"}', 'step')],
  }
  for name, variants in cases.items():
    for k, (content, words) in enumerate(variants):
      folder = tmp_path / f'{name}{k}'
      shutil.copytree(good, folder)
      if content is None:
        os.remove(folder / name)
      elif isinstance(content, bytes):
        (folder / name).write_bytes(content)
      else:
        (folder / name).write_text(content)
      with pytest.raises(inference.ModelError) as e:
        inference.Model(str(folder))
      message = str(e.value)
      assert '\n' not in message and words in message and str(folder) in message, (name, k, message)


def test_export_refuses_another_runs_folder_and_foreign_files(tmp_path):
  mine = _fake_training_workdir(tmp_path / 'mine')
  other = _fake_training_workdir(tmp_path / 'other')
  err = input_helpers.refused(input_helpers.run('-m', 'difcon_jax.export', f'--workdir={mine}', f'--out={other}', '--name=x'))
  assert f'--out={other}' in err and 'training workdir' in err
  notes = tmp_path / 'notes'
  notes.mkdir()
  (notes / 'thesis.tex').write_text('mine')
  model = tmp_path / 'model'
  model.mkdir()
  (model / 'model.json').write_text(json.dumps({'name': 'v2', 'workdir': str(other)}))
  for out, why in ((notes, 'thesis.tex'), (model, 'exported from')):
    assert why in input_helpers.refused(input_helpers.run('-m', 'difcon_jax.export', f'--workdir={mine}', f'--out={out}', '--name=x'))
  assert (notes / 'thesis.tex').read_text() == 'mine' and (other / 'config.json').read_text() == '{}'
