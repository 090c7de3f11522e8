"""The bundled sample: synthetic structures with the realistic space-group prior, as gzipped CIFs in the package."""

import os

_HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'sample')


def cif_dir() -> str:
  """Folder of the bundled sample CIFs, made by
  ``python -m difcon_jax.data.synthetic --count 2000 --prior realistic --seed 0 --out difcon_jax/data/sample/cifs``.
  """
  return os.path.join(_HERE, 'cifs')
