import pathlib

import pytest

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
