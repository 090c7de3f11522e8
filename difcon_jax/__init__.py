"""difcon-jax: crystal symmetry from powder X-ray diffraction patterns."""

__version__ = '0.1.0'
