"""The corpus: one record per structure with its padded Bragg peak arrays and labels, as a TFDS dataset.

Records are written with a TFDS GeneratorBasedBuilder in the array_record format and read back with
``tfds.data_source`` (random access, no TensorFlow needed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

from absl import logging
import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import shuffle as tfds_shuffle

from difcon_jax.crystallography import pattern_grid as grid
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

  # TFDS prints "Downloading and preparing dataset Unknown size (download: Unknown size, ...)" and "... downloaded
  # and prepared" to stdout on every build, though nothing is downloaded here: logged instead, seen with
  # --verbosity=1.
  def _log_download_bytes(self) -> None:
    logging.debug('writing the %s dataset to %s', self.name, self.data_dir)

  def _log_download_done(self) -> None:
    logging.debug('wrote the %s dataset to %s', self.name, self.data_dir)

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
  # The corpus builder shows its own progress; TFDS's bars (generating, shuffling a split) with --verbosity=1.
  tfds.display_progress_bar(logging.level_debug())
  builder = _Builder(records=records, spec=spec, data_dir=out_dir, file_format='array_record')
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(verify_ssl=False))
  return os.fspath(builder.data_dir)


def dataset_dir(path: str) -> str:
  """Accepts the build's --out folder or the dataset's own version folder."""
  for candidate in (path, os.path.join(path, NAME, VERSION)):
    if os.path.exists(os.path.join(candidate, 'dataset_info.json')):
      return candidate
  raise FileNotFoundError(f'{path}: no {NAME} dataset here (expected dataset_info.json)')


class CorpusError(ValueError):
  """A corpus that cannot be read; the message names the file and the problem."""


def metadata(path: str) -> dict:
  """What the build recorded about every record ({'wavelength', 'two_theta_max', 'max_peaks'}; {} for a corpus
  without it). Raises FileNotFoundError when there is no corpus at path, CorpusError for a damaged metadata.json."""
  meta = os.path.join(dataset_dir(path), 'metadata.json')
  if not os.path.exists(meta):
    return {}
  try:
    with open(meta) as f:
      info = json.load(f)
  except (OSError, ValueError) as e:
    raise CorpusError(f'{meta}: cannot be read ({type(e).__name__}: {e}); the corpus is damaged, build it again') \
        from None
  if not isinstance(info, dict):
    raise CorpusError(f'{meta}: not a JSON object; the corpus is damaged, build it again')
  return info


class _Splits(dict):
  """{split: source}; asking for a split the corpus lacks raises CorpusError (not a bare KeyError)."""

  def __init__(self, sources: dict, path: str):
    super().__init__(sources)
    self.path = path

  def __missing__(self, split):
    raise CorpusError(f'{self.path}: no {split!r} split in this corpus (it has {", ".join(self) or "none"}); every '
                      f'structure went to the other split: build it from more structures (or another --test_fraction)')


def _builder(path: str):
  """The TFDS builder of a corpus, its record files checked: each must be there and hold as many records as
  dataset_info.json says (a file cut short by a kill or a full disk is named here, not by a reader error later)."""
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
  folder = dataset_dir(path)
  try:
    builder = tfds.builder_from_directory(folder)
    splits = builder.info.splits
  except Exception as e:  # pylint: disable=broad-except  (any damage to the dataset's JSON files)
    raise CorpusError(f'{os.path.join(folder, "dataset_info.json")}: cannot be read ({type(e).__name__}: '
                      f'{str(e).splitlines()[0] if str(e) else ""}); the corpus is damaged, build it again') from None
  for split, info in splits.items():
    for file, expected in zip(info.filepaths, info.shard_lengths):
      try:
        reader = array_record_module.ArrayRecordReader(os.fspath(file))
        count = reader.num_records()
        reader.close()
      except Exception as e:  # pylint: disable=broad-except  (a missing, cut or garbled record file)
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CorpusError(f'{file}: the {split} records cannot be read ({text}); the file is cut or damaged, '
                          'build the corpus again') from None
      if count != expected:
        raise CorpusError(f'{file}: {count} records where dataset_info.json says {expected}; the file is cut or '
                          'damaged, build the corpus again')
  return builder


def data_sources(path: str) -> dict[str, object]:
  """Random-access sources per split (``source[i]`` is one record of numpy arrays). Raises FileNotFoundError (no
  corpus), CorpusError (damaged files; later, a split the corpus lacks)."""
  builder = _builder(path)
  return _Splits({split: builder.as_data_source(split=split) for split in builder.info.splits}, path)


def splits(path: str) -> dict[str, int]:
  """{split: records} of a corpus, its files checked (FileNotFoundError, CorpusError)."""
  return {split: info.num_examples for split, info in _builder(path).info.splits.items()}


def load_arrays(path: str, split: str, fields=None) -> dict[str, np.ndarray]:
  """A whole split as stacked numpy arrays, every field or those named (small corpora, the in-memory input
  pipeline, tests and the HAND baseline). A record that cannot be read raises CorpusError naming its file."""
  source = data_sources(path)[split]
  recs = []
  for i in range(len(source)):
    try:
      recs.append(source[i])
    except Exception as e:  # pylint: disable=broad-except  (a garbled chunk inside a record file)
      text = str(e).splitlines()[0] if str(e) else type(e).__name__
      raise CorpusError(f'{dataset_dir(path)}: record {i} of the {split} split cannot be read ({text}); the '
                        'record files are damaged, build the corpus again') from None
  return {k: np.stack([r[k] for r in recs]) for k in (fields or recs[0])} if recs else {}
