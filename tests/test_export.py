import json
import os

import numpy as np
import pytest

from difcon_jax.inference import model as inference


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
