"""Workdirs and outputs in cloud storage: every read and write goes through etils.epath.

gs:// here is fsspec's in-memory filesystem registered under the gs protocol (what epath's fsspec backend opens
for gs:// when TensorFlow is absent), so the code takes its non-local paths without a bucket or credentials.
Orbax's checkpoints are not covered: for gs:// Orbax writes arrays through TensorStore's own GCS driver.
"""

import json

from etils import epath
import fsspec
from fsspec.implementations.memory import MemoryFileSystem
import numpy as np
import pytest

from difcon_jax.io import cli
from difcon_jax.inference import model as inference
from difcon_jax.io import workdir as workdir_lib
from difcon_jax.io import outputs


class _FakeGcs(MemoryFileSystem):
  protocol = ('gs', 'gcs')
  store = {}  # a store of its own, emptied per test
  pseudo_dirs = ['']


@pytest.fixture
def bucket(monkeypatch):
  for name in ('gs', 'gcs'):
    fsspec.register_implementation(name, _FakeGcs, clobber=True)
  _FakeGcs.store.clear()
  _FakeGcs.pseudo_dirs[:] = ['']
  monkeypatch.setattr(epath.gpath, '_is_tf_installed', lambda: False, raising=False)
  yield epath.Path('gs://bucket')


def test_the_fake_bucket_is_not_the_local_disk(bucket, tmp_path):
  (bucket / 'run' / 'a.txt').write_text('x')
  assert (bucket / 'run' / 'a.txt').exists() and not outputs.is_local('gs://bucket/run') and outputs.is_local(tmp_path)
  assert any(k.endswith('run/a.txt') for k in _FakeGcs.store)


def test_outputs_and_checks(bucket):
  checks = cli.Checks()
  assert checks.output_file('output', 'gs://bucket/out/preds.csv') and checks.output_dir('out', 'gs://bucket/ev')
  with outputs.write('gs://bucket/out/preds.csv', newline='') as f:
    f.write('file,status\na.xy,ok\n')
  with outputs.write(bucket / 'out' / 'e.npy', 'wb') as f:
    np.save(f, np.arange(3))
  assert (bucket / 'out' / 'preds.csv').read_text() == 'file,status\na.xy,ok\n'
  with (bucket / 'out' / 'e.npy').open('rb') as f:
    assert np.load(f).tolist() == [0, 1, 2]


def test_workdir_checks_metrics_and_resume_trim(bucket):
  work = 'gs://bucket/runs/w'
  workdir_lib.check(work)
  (bucket / 'runs' / 'file').write_text('')
  with pytest.raises(workdir_lib.WorkdirError, match='a file, not a folder'):
    workdir_lib.check('gs://bucket/runs/file')
  writer = workdir_lib.MetricWriter(work)
  for step in (1, 2, 3):
    writer.write(step, {'train/loss': float(step)})
  writer.close()
  assert workdir_lib.trim_metrics(work, 2) == 1  # a resume from step 2 drops step 3's row
  writer = workdir_lib.MetricWriter(work)  # ... and the resumed run appends after the kept rows
  writer.write(3, {'train/loss': 30.0})
  writer.close()
  rows = [json.loads(l) for l in (bucket / 'runs' / 'w' / 'metrics.jsonl').read_text().splitlines()]
  assert [(r['step'], r['train/loss']) for r in rows] == [(1, 1.0), (2, 2.0), (3, 30.0)]


def test_an_exported_model_in_the_bucket_predicts_as_the_local_one(bucket):
  local = epath.Path(inference.BUNDLED_MODEL)
  for name in ('config.json', 'model.json', 'variables.msgpack'):
    (bucket / 'models' / 'm' / name).write_bytes((local / name).read_bytes())
  remote = inference.Model('gs://bucket/models/m')
  here = inference.Model()
  assert remote.step == here.step and 'exported model' in remote.source
  x = np.random.default_rng(0).uniform(0, 1, (2, here.config.num_bins)).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(remote(x)[0]['crystal_system']), np.asarray(here(x)[0]['crystal_system']))
