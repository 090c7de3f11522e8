"""The corpus: one record per structure with its padded Bragg peak arrays and labels, as a TFDS dataset.

Records are written with a TFDS GeneratorBasedBuilder in the array_record format and read back with
``tfds.data_source`` (random access, no TensorFlow needed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import shuffle as tfds_shuffle

from difcon_jax import grid
from difcon_jax.crystallography import spacegroups

NAME = 'difcon_corpus'
VERSION = '1.0.0'
SPLITS = ('train', 'test')


@dataclasses.dataclass(frozen=True)
class CorpusSpec:
  """What every record of a corpus shares."""
  max_peaks: int = 512
  wavelength: float = grid.WAVELENGTH  # Å
  two_theta_max: float = grid.TWO_THETA_MAX  # degrees


def find_cifs(root: str) -> list[str]:
  """Every .cif and .cif.gz below root, sorted (so that a build is reproducible)."""
  found = []
  for dirpath, _, names in os.walk(root):
    found += [os.path.join(dirpath, n) for n in names if n.lower().endswith(('.cif', '.cif.gz'))]
  return sorted(found)


def split_of(formula: str, space_group: int, test_fraction: float = 0.1) -> str:
  """Deterministic split by compound: all entries of one (formula, space group) land in the same split."""
  key = f'{formula.replace(" ", "")}|{int(space_group)}'.encode()
  u = int.from_bytes(hashlib.sha256(key).digest()[:8], 'big') / 2.0**64
  return 'test' if u < test_fraction else 'train'


def features(spec: CorpusSpec) -> tfds.features.FeaturesDict:
  p = spec.max_peaks
  return tfds.features.FeaturesDict({
      'two_theta': tfds.features.Tensor(shape=(p,), dtype=np.float32, doc='peak positions, degrees 2θ; 0 = pad'),
      'intensity': tfds.features.Tensor(shape=(p,), dtype=np.float32, doc='M|F|²LP, strongest = 1; 0 = pad'),
      'hkl': tfds.features.Tensor(shape=(p, 3), dtype=np.int16,
                                  doc='hkl of the strongest reflection family in each peak; 0 = pad'),
      'num_peaks': tfds.features.Scalar(dtype=np.int32, doc='number of real peaks'),
      'crystal_system': tfds.features.ClassLabel(names=spacegroups.CRYSTAL_SYSTEMS),
      'extinction_group': tfds.features.ClassLabel(num_classes=spacegroups.num_extinction_groups()),
      'space_group': tfds.features.Scalar(dtype=np.int32, doc='ITA number 1-230'),
      'cell': tfds.features.Tensor(shape=(6,), dtype=np.float32, doc='a, b, c (Å), alpha, beta, gamma (°)'),
      'formula': tfds.features.Text(),
      'source_id': tfds.features.Text(),
  })


class _Builder(tfds.core.GeneratorBasedBuilder):
  """Writes records that were computed beforehand (the corpus builder does the work in parallel)."""
  name = NAME
  VERSION = tfds.core.Version(VERSION)

  def __init__(self, *, records: dict[str, list[dict]], spec: CorpusSpec, **kwargs):
    self._records = records
    self._spec = spec
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self, features=features(self._spec),
        description=(f'Bragg peak lists at {self._spec.wavelength} Å, 2θ <= {self._spec.two_theta_max}°, '
                     f'at most {self._spec.max_peaks} peaks per structure (the strongest kept).'),
        metadata=tfds.core.MetadataDict(wavelength=self._spec.wavelength, max_peaks=self._spec.max_peaks,
                                        two_theta_max=self._spec.two_theta_max))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(split) for split in SPLITS if self._records.get(split)}

  def _generate_examples(self, split):
    for rec in self._records[split]:
      yield rec['source_id'], rec


def write(records: dict[str, list[dict]], spec: CorpusSpec, out_dir: str) -> str:
  """Writes the splits as a TFDS dataset under out_dir; returns the dataset directory."""
  # TFDS's writer keeps a split in memory up to MAX_MEM_BUFFER_SIZE (1 GB) and beyond it spills to disk through
  # tf.io.gfile, which needs TensorFlow (not a dependency here). The records are in memory already: let the
  # buffer hold them (a 200,000-structure corpus is about 1.4 GB).
  tfds_shuffle.MAX_MEM_BUFFER_SIZE = max(tfds_shuffle.MAX_MEM_BUFFER_SIZE, 64 << 30)
  builder = _Builder(records=records, spec=spec, data_dir=out_dir, file_format='array_record')
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(verify_ssl=False))
  return os.fspath(builder.data_dir)


def dataset_dir(path: str) -> str:
  """Accepts the build's --out folder or the dataset's own version folder."""
  for candidate in (path, os.path.join(path, NAME, VERSION)):
    if os.path.exists(os.path.join(candidate, 'dataset_info.json')):
      return candidate
  raise FileNotFoundError(f'{path}: no {NAME} dataset here (expected dataset_info.json)')


def metadata(path: str) -> dict:
  """What the build recorded about every record ({'wavelength', 'two_theta_max', 'max_peaks'}; {} for a corpus
  without it). Raises FileNotFoundError when there is no corpus at path."""
  meta = os.path.join(dataset_dir(path), 'metadata.json')
  if not os.path.exists(meta):
    return {}
  with open(meta) as f:
    return json.load(f)


def data_sources(path: str) -> dict[str, object]:
  """Random-access sources per split (``source[i]`` is one record of numpy arrays)."""
  builder = tfds.builder_from_directory(dataset_dir(path))
  return {split: builder.as_data_source(split=split) for split in builder.info.splits}


def load_arrays(path: str, split: str, fields=None) -> dict[str, np.ndarray]:
  """A whole split as stacked numpy arrays, every field or those named (small corpora, the in-memory input
  pipeline, tests and the HAND baseline)."""
  source = data_sources(path)[split]
  recs = [source[i] for i in range(len(source))]
  return {k: np.stack([r[k] for r in recs]) for k in (fields or recs[0])} if recs else {}
