"""The bundled sample: synthetic structures for every space group, as gzipped CIFs inside the package."""

import os

_HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'sample')


def cif_dir() -> str:
  """Folder of the bundled sample CIFs (made by ``python -m difcon_jax.data.synthetic --per_group 3 --seed 0``)."""
  return os.path.join(_HERE, 'cifs')
