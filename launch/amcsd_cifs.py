r"""The AMCSD mineral structures that the PyPI package larixite bundles, as an archive of CIFs for data.build.

  pip install larixite
  python launch/amcsd_cifs.py --out runs/amcsd_cifs.tar.gz
  python -m difcon_jax.data.build --cifs runs/amcsd_cifs.tar.gz --out runs/amcsd

larixite (MIT) ships an SQLite copy of the American Mineralogist Crystal Structure Database (9,275 entries; at most
9 unique sites each); its CifStructure.ciftext writes each entry as a CIF (cell, symmetry operations, sites,
occupancies, displacements). These are the minerals of the RRUFF patterns: a model trained on them is no longer
blind to the RRUFF compounds, so its numbers on RRUFF are reported apart (docs/results.md). The package's database is
read from a copy (larixite writes to the file it opens). An entry larixite cannot write is skipped and counted.
"""

import io
import os
import shutil
import sqlite3
import sys
import tarfile
import tempfile

from absl import app
from absl import flags
import tqdm

_OUT = flags.DEFINE_string('out', 'runs/amcsd_cifs.tar.gz', 'Archive to write (.tar.gz).')


def main(argv):
  del argv
  try:
    from larixite import amcsd  # pylint: disable=g-import-not-at-top
  except ImportError:
    print('error: needs the larixite package (pip install larixite)', file=sys.stderr)
    return 2
  if not _OUT.value.endswith('.tar.gz'):
    print(f'error: --out={_OUT.value}: a .tar.gz path', file=sys.stderr)
    return 2
  source = os.path.join(os.path.dirname(amcsd.__file__), amcsd.AMCSD_TRIM)
  with tempfile.TemporaryDirectory() as tmp:
    copy = os.path.join(tmp, 'amcsd.db')
    shutil.copy(source, copy)
    ids = [r[0] for r in sqlite3.connect(copy).execute('select id from cif order by id')]
    db = amcsd.AMCSD(copy)
    os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
    partial = _OUT.value + '.partial'
    skipped = 0
    with tarfile.open(partial, 'w:gz') as tar:
      for cif_id in tqdm.tqdm(ids, desc='AMCSD entries', unit='cif', file=sys.stderr):
        try:
          text = db.get_cif(cif_id).ciftext.encode()
        except Exception as e:  # pylint: disable=broad-except  (larixite's own failures, one entry each)
          print(f'skipped AMCSD {cif_id}: {type(e).__name__}: {e}', file=sys.stderr)
          skipped += 1
          continue
        info = tarfile.TarInfo(f'amcsd/{cif_id:07d}.cif')
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    os.replace(partial, _OUT.value)
  print(f'{len(ids) - skipped} AMCSD structures -> {_OUT.value} ({skipped} skipped)')
  return 0


if __name__ == '__main__':
  app.run(main)
