import os
import pathlib

import pytest

DATA = pathlib.Path(__file__).parent / 'data'
STRUCTURES = DATA / 'structures'


@pytest.fixture
def structures_dir() -> pathlib.Path:
  return STRUCTURES


def literature_cifs() -> list[pathlib.Path]:
  return sorted(p for p in STRUCTURES.glob('*.cif') if 'adp' not in p.name)
