"""The peak simulator against pymatgen's XRDCalculator and against direct formulas."""

import math
import warnings

import numpy as np
import pytest

from difcon_jax.crystallography import diffraction
from difcon_jax.crystallography import structure as structure_lib
from conftest import STRUCTURES, literature_cifs

try:
  from pymatgen.analysis.diffraction import xrd as pymatgen_xrd  # pylint: disable=g-import-not-at-top
  from pymatgen.core import Structure as PmgStructure  # pylint: disable=g-import-not-at-top
except ImportError:  # only the comparisons with pymatgen need it (the test extra); the rest run without
  pymatgen_xrd = None
needs_pymatgen = pytest.mark.skipif(pymatgen_xrd is None, reason='pymatgen is not installed (pip install .[test])')

WAVELENGTH = 1.5406


def _pymatgen(path, **kwargs):
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    s = PmgStructure.from_file(str(path))
    return pymatgen_xrd.XRDCalculator(wavelength=WAVELENGTH, **kwargs).get_pattern(s, two_theta_range=(5, 90))


def _common_clusters(tt_a, i_a, tt_b, i_b, tol=0.005):
  """Sums both lists into the same clusters of nearly coincident peaks; both scaled to strongest = 100."""
  allx = np.sort(np.concatenate([tt_a, tt_b]))
  edges = allx[np.concatenate([[True], np.diff(allx) > tol])]
  a = np.bincount(np.searchsorted(edges, tt_a, 'right') - 1, i_a, len(edges))
  b = np.bincount(np.searchsorted(edges, tt_b, 'right') - 1, i_b, len(edges))
  return a / a.max() * 100, b / b.max() * 100


def _ours(path, **kwargs):
  structure, warning = structure_lib.read_structure(path, **kwargs)
  assert warning is None
  return diffraction.peak_list(structure, WAVELENGTH, 5, 90)


@needs_pymatgen
@pytest.mark.parametrize('path', literature_cifs(), ids=lambda p: p.stem)
def test_agrees_with_pymatgen(path):
  ours = _ours(path)
  ref = _pymatgen(path)
  # Positions: every peak above 0.01 (strongest = 100) of either has one of the other within 0.01°.
  # (pymatgen leaves out peaks below 1e-3; near that edge the two form-factor tables disagree on which.)
  assert np.abs(ours.two_theta[:, None] - ref.x[None, :]).min(0)[ref.y > 0.01].max() < 0.01
  assert np.abs(ours.two_theta[:, None] - ref.x[None, :]).min(1)[ours.scaled() > 0.01].max() < 0.01
  # Intensities: within 1% of the strongest peak everywhere, and within 4% of their own value for peaks above
  # 10%. The rest is the two form-factor tables (IT92 here, pymatgen's own fit there): see the next test.
  a, b = _common_clusters(ours.two_theta, ours.intensity, ref.x, ref.y)
  assert np.abs(a - b).max() < 1.0
  strong = b > 10
  assert (np.abs(a - b)[strong] / b[strong]).max() < 0.04


@needs_pymatgen
@pytest.mark.parametrize('name', ['kyanite', 'quartz', 'forsterite_pbnm', 'ga2o3'])
def test_identical_to_pymatgen_with_its_form_factors(name, monkeypatch):
  params = pymatgen_xrd.ATOMIC_SCATTERING_PARAMS
  import gemmi

  def pymatgen_form_factor(z, stol2):
    coeffs = np.array(params[gemmi.Element(int(z)).name])
    return z - 41.78214 * stol2 * (coeffs[:, 0] * np.exp(-coeffs[:, 1] * np.asarray(stol2)[..., None])).sum(-1)

  monkeypatch.setattr(diffraction, 'form_factor', pymatgen_form_factor)
  path = STRUCTURES / f'{name}.cif'
  ours, ref = _ours(path), _pymatgen(path)
  a, b = _common_clusters(ours.two_theta, ours.intensity, ref.x, ref.y)
  np.testing.assert_allclose(a, b, atol=2e-3)


@needs_pymatgen
def test_isotropic_b_agrees_with_pymatgen_debye_waller(tmp_path):
  text = (STRUCTURES / 'rutile.cif').read_text().replace('_atom_site_occupancy', '_atom_site_occupancy\n_atom_site_B_iso_or_equiv')
  text = text.replace('Ti1 Ti 0.00000 0.00000 0.00000 1.0', 'Ti1 Ti 0.00000 0.00000 0.00000 1.0 0.42')
  text = text.replace('O1 O 0.30480 0.30480 0.00000 1.0', 'O1 O 0.30480 0.30480 0.00000 1.0 0.61')
  path = tmp_path / 'rutile_b.cif'
  path.write_text(text)
  ours = _ours(path)
  ref = _pymatgen(path, debye_waller_factors={'Ti': 0.42, 'O': 0.61})
  a, b = _common_clusters(ours.two_theta, ours.intensity, ref.x, ref.y)
  assert np.abs(a - b).max() < 1.0
  # And B really matters here: without it the high-angle peaks are stronger.
  no_b = _ours(STRUCTURES / 'rutile.cif')
  assert no_b.scaled()[-1] > ours.scaled()[-1] * 1.05


def test_default_b_matches_explicit_b():
  st_default, _ = structure_lib.read_structure(STRUCTURES / 'nacl.cif', default_b=1.0)
  p = diffraction.peak_list(st_default, WAVELENGTH, 5, 90)
  st0, _ = structure_lib.read_structure(STRUCTURES / 'nacl.cif')
  p0 = diffraction.peak_list(st0, WAVELENGTH, 5, 90)
  stol2 = 1 / (4 * p0.d**2)
  np.testing.assert_allclose(p.intensity, p0.intensity * np.exp(-2 * 1.0 * stol2), rtol=1e-10)


def test_anisotropic_displacements_respect_symmetry():
  """Every member of a reflection family must have the same |F|² once the aniso tensors are rotated."""
  structure, _ = structure_lib.read_structure(STRUCTURES / 'rutile_adp.cif')
  peaks = diffraction.peak_list(structure, WAVELENGTH, 5, 120)
  rots = diffraction._laue_rotations(structure)
  for h in peaks.hkl:
    family = np.unique(np.einsum('j,rjk->rk', h, rots), axis=0)
    cell = __import__('gemmi').UnitCell(*structure.cell)
    stol2 = np.array([1 / (4 * cell.calculate_d(list(map(int, x)))**2) for x in family])
    f2 = diffraction.structure_factor_squared(structure, family, stol2)
    np.testing.assert_allclose(f2, f2[0], rtol=1e-9)


def test_isotropic_u_written_as_tensor_gives_isotropic_result(tmp_path):
  # In a monoclinic cell an isotropic U has U^13 = U cos(beta*) in CIF convention.
  st_iso, _ = structure_lib.read_structure(STRUCTURES / 'ga2o3.cif', default_b=8 * math.pi**2 * 0.01)
  import gemmi
  cell = gemmi.UnitCell(*st_iso.cell)
  rc = cell.reciprocal()
  u13 = 0.01 * math.cos(math.radians(rc.beta))
  text = (STRUCTURES / 'ga2o3.cif').read_text()
  labels = [l.split()[0] for l in text.splitlines() if l[:2] in ('Ga', 'O1', 'O2', 'O3')]
  text += 'loop_\n_atom_site_aniso_label\n_atom_site_aniso_U_11\n_atom_site_aniso_U_22\n_atom_site_aniso_U_33\n'
  text += '_atom_site_aniso_U_12\n_atom_site_aniso_U_13\n_atom_site_aniso_U_23\n'
  text += ''.join(f'{lab} 0.01 0.01 0.01 0 {u13:.8f} 0\n' for lab in labels)
  path = tmp_path / 'ga2o3_aniso.cif'
  path.write_text(text)
  st_aniso, _ = structure_lib.read_structure(path)
  np.testing.assert_allclose(st_aniso.beta, st_iso.beta, atol=1e-7)


def test_lorentz_polarisation_formula():
  """LP = (1 + cos²2θ) / (sin²θ cos θ) (unpolarised beam, no monochromator), at angles where it is exact:
  2θ = 60°:  θ = 30°: (1 + 0.5²) / (0.5² · (√3/2)) = 1.25 / 0.2165064 = 10/√3 = 5.7735027
  2θ = 90°:  θ = 45°: (1 + 0²) / (0.5 · (√2/2)) = 1 / 0.3535534 = 2√2 = 2.8284271
  2θ = 120°: θ = 60°: (1 + (-0.5)²) / (0.75 · 0.5) = 1.25 / 0.375 = 10/3 = 3.3333333"""
  np.testing.assert_allclose(diffraction.lorentz_polarisation(np.array([60.0, 90.0, 120.0])),
                             [5.7735027, 2.8284271, 3.3333333], rtol=1e-7)


def test_systematic_absences_vanish():
  structure, _ = structure_lib.read_structure(STRUCTURES / 'si.cif')
  peaks = diffraction.peak_list(structure, WAVELENGTH, 5, 120)
  hkls = {tuple(sorted(map(abs, h))) for h in peaks.hkl}
  assert (1, 1, 1) in hkls and (0, 2, 2) in hkls
  assert (0, 0, 2) not in hkls  # d-glide: 200 absent in diamond
  assert (0, 1, 1) not in hkls  # F centring
  assert (2, 2, 2) not in hkls  # the diamond-structure 222 is absent for a single atom at 8a


def test_multiplicities_cubic():
  structure, _ = structure_lib.read_structure(STRUCTURES / 'nacl.cif')
  peaks = diffraction.peak_list(structure, WAVELENGTH, 5, 90)
  mult = {tuple(sorted(map(abs, h))): m for h, m in zip(peaks.hkl, peaks.multiplicity)}
  assert mult[(1, 1, 1)] == 8 and mult[(0, 0, 2)] == 6 and mult[(0, 2, 2)] == 12 and mult[(1, 1, 3)] == 24


def test_merge_coincident_sums_overlaps():
  # Hand-made positions: 10 and 10.00005 are one peak, 20 alone, 30, 30.00002 and 30.00009 one (neighbours within
  # the 1e-4° tolerance chain), 30.0003 is apart.
  tt = np.array([10.0, 10.00005, 20.0, 30.0, 30.00002, 30.00009, 30.0003])
  inten = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0])
  hand = diffraction.PeakList(tt, np.ones(7), np.zeros((7, 3), int), np.ones(7, int), np.ones(7), inten)
  merged_tt, merged_i = diffraction.merge_coincident(hand)
  np.testing.assert_array_equal(merged_tt, [10.0, 20.0, 30.0, 30.0003])
  np.testing.assert_array_equal(merged_i, [3.0, 4.0, 56.0, 64.0])
  # In a cubic cell 2θ depends on h² + k² + l² alone: one measured peak per value, with the summed intensities of
  # its families (NaCl below 150°: 333 + 511 at 27 and 600 + 442 at 36).
  structure, _ = structure_lib.read_structure(STRUCTURES / 'nacl.cif')
  peaks = diffraction.peak_list(structure, WAVELENGTH, 5, 150)
  n = (peaks.hkl**2).sum(1)
  values = np.unique(n)
  assert {27, 36} <= {int(v) for v in values if (n == v).sum() == 2}
  tt, inten = diffraction.merge_coincident(peaks)
  np.testing.assert_allclose(tt, [peaks.two_theta[n == v].min() for v in values], atol=1e-9)
  np.testing.assert_allclose(inten, [peaks.intensity[n == v].sum() for v in values], rtol=1e-12)
