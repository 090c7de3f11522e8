import atexit
import os
import pathlib
import shutil
import tempfile

import pytest

# One persistent XLA compilation cache for this test session, shared by the subprocesses the tests start (they
# inherit the environment): the training tests compile the same small programs many times over. A fresh folder
# each session, removed at the end, so nothing carries over between runs.
_CACHE = tempfile.mkdtemp(prefix='difcon_jax_test_xla_cache_')
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ['JAX_COMPILATION_CACHE_DIR'] = _CACHE
os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
os.environ['JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES'] = '0'

DATA = pathlib.Path(__file__).parent / 'data'
STRUCTURES = DATA / 'structures'


@pytest.fixture
def structures_dir() -> pathlib.Path:
  return STRUCTURES


def literature_cifs() -> list[pathlib.Path]:
  return sorted(p for p in STRUCTURES.glob('*.cif') if 'adp' not in p.name)


@pytest.fixture(scope='session')
def tiny_corpus(tmp_path_factory) -> str:
  """A 120-structure corpus from the bundled sample, shared by the training, prediction and evaluation tests."""
  import train_helpers
  return train_helpers.tiny_corpus(str(tmp_path_factory.mktemp('tiny')))


@pytest.fixture(scope='session')
def tiny_workdir(tiny_corpus, tmp_path_factory) -> str:
  """A workdir trained for two steps on tiny_corpus (config.json, checkpoints)."""
  import train_helpers
  from difcon_jax import train
  work = str(tmp_path_factory.mktemp('tiny_work'))
  train.train_and_evaluate(train_helpers.tiny_config(tiny_corpus, steps=2), work)
  return work
