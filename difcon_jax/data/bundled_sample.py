"""The bundled sample: synthetic structures with the realistic space-group prior, as gzipped CIFs in the package,
and the corpus built from them (README's command 1; `evaluate` builds it on first use)."""

import os

_HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'sample')
CORPUS = os.path.join('runs', 'sample_corpus')  # where README's command 1 builds it, from the working folder


def cif_dir() -> str:
  """Folder of the bundled sample CIFs, made by
  ``python -m difcon_jax.data.synthetic --count 2000 --prior realistic --seed 0 --out difcon_jax/data/sample/cifs``.
  """
  return os.path.join(_HERE, 'cifs')


def corpus(out: str = CORPUS, progress: bool = True) -> str:
  """The folder of the sample corpus: `out` when it holds the corpus built from the bundled CIFs with the default
  settings (build_report.json's input digest), else built there first (2,000 structures)."""
  from difcon_jax.data import build  # pylint: disable=g-import-not-at-top  (the builder is heavy; rarely needed)
  if build.previous_build(out, build.cif_digest(cif_dir())) is None:
    build.build(cif_dir(), out, progress=progress)
  return out
