"""Structures as databases ship them: P1 CIFs (symmetry found by spglib, conventional cell) and archives of CIFs."""

import gzip
import io
import os
import tarfile
import zipfile

import gemmi
import numpy as np
import pytest

from difcon_jax.crystallography import diffraction
from difcon_jax.crystallography import structure as structure_lib
from difcon_jax.data import build
from difcon_jax.data import corpus
from difcon_jax.data import sources
from conftest import STRUCTURES


def p1_cif(s: structure_lib.Structure, cell=None, fract=None, name='p1') -> str:
  """A CIF of every atom in P1, as the Materials Project writes one (no displacement parameters)."""
  cell = cell or s.cell
  fract = s.fract if fract is None else fract
  lines = [f'data_{name}', "_symmetry_space_group_name_H-M   'P 1'", '_symmetry_Int_Tables_number   1']
  lines += [f'{t}   {v:.10f}' for t, v in zip(structure_lib.CELL_TAGS, cell)]
  lines += ['loop_', ' _symmetry_equiv_pos_site_id', ' _symmetry_equiv_pos_as_xyz', "  1  'x, y, z'",
            'loop_', ' _atom_site_type_symbol', ' _atom_site_label', ' _atom_site_fract_x', ' _atom_site_fract_y',
            ' _atom_site_fract_z', ' _atom_site_occupancy']
  for i, (z, x) in enumerate(zip(s.atomic_number, fract)):
    el = gemmi.Element(int(z)).name
    lines.append(f'  {el}  {el}{i}  {x[0]:.10f}  {x[1]:.10f}  {x[2]:.10f}  1')
  return '\n'.join(lines) + '\n'


def primitive_p1(s: structure_lib.Structure):
  """(cell, fract) of the primitive cell of a centred structure, rotated away from its conventional axes."""
  import spglib  # pylint: disable=g-import-not-at-top
  lattice = np.array(gemmi.UnitCell(*s.cell).orth.mat.tolist()).T
  types = np.asarray(s.atomic_number)
  lat, pos, num = spglib.find_primitive((lattice, s.fract, types), symprec=1e-3)
  a, b, c = (np.linalg.norm(v) for v in lat)
  ang = lambda u, v: np.degrees(np.arccos(u @ v / np.linalg.norm(u) / np.linalg.norm(v)))
  return (a, b, c, ang(lat[1], lat[2]), ang(lat[0], lat[2]), ang(lat[0], lat[1])), pos, num


def merged(s, wavelength=1.5406, tt_max=90.0):
  peaks = diffraction.peak_list(s, wavelength, 5.0, tt_max)
  tt, inten = diffraction.merge_coincident(peaks)
  return tt, inten / inten.max()


@pytest.mark.parametrize('name, number', [('quartz', 154), ('corundum', 167), ('si', 227), ('kyanite', 2),
                                          ('forsterite_pbnm', 62), ('baddeleyite', 14)])
def test_p1_structure_gets_its_group_and_the_same_pattern(tmp_path, name, number):
  """A structure rewritten in P1 (every atom, no symmetry) is read back in its space group's conventional cell, and
  its pattern is the symmetric CIF's: the same lines at the same angles with the same intensities. Forsterite's CIF
  is in the Pbnm setting: found in P1 it comes back in the standard Pnma cell (a and c exchanged), same lines."""
  s, _ = structure_lib.read_structure(STRUCTURES / f'{name}.cif', default_b=0.0)
  path = tmp_path / f'{name}_p1.cif'
  path.write_text(p1_cif(s))
  p1, warning = structure_lib.read_structure(path)
  assert warning is None and p1.symmetry_found and not s.symmetry_found
  assert p1.space_group == number == s.space_group
  assert p1.symmetry_ops == len(gemmi.find_spacegroup_by_number(number).operations())
  tt0, i0 = merged(s)
  tt1, i1 = merged(p1)
  assert len(tt0) == len(tt1)
  np.testing.assert_allclose(tt1, tt0, atol=2e-3)
  np.testing.assert_allclose(i1, i0, atol=2e-3)


def test_primitive_p1_cell_comes_back_conventional(tmp_path):
  """Silicon's primitive rhombohedral cell (2 atoms, 60° angles), as the Materials Project ships face-centred
  crystals, is read as the cubic cell of Fd-3m (8 atoms, a = 5.431 Å, 111 first, where Bragg's law puts it)."""
  s, _ = structure_lib.read_structure(STRUCTURES / 'si.cif')
  cell, fract, _ = primitive_p1(s)
  assert len(fract) == 2 and abs(cell[3] - 60) < 1e-6
  path = tmp_path / 'si_prim.cif'
  path.write_text(p1_cif(s, cell, fract[:, :]))
  p1, _ = structure_lib.read_structure(path)
  assert p1.space_group == 227 and len(p1.fract) == 8
  np.testing.assert_allclose(p1.cell, (5.431, 5.431, 5.431, 90, 90, 90), atol=2e-3)
  peaks = diffraction.peak_list(p1, 1.5418, 5, 90)
  expected = 2 * np.degrees(np.arcsin(1.5418 * np.sqrt(3) / (2 * 5.431)))  # 28.465°
  assert abs(peaks.two_theta[0] - expected) < 0.01 and tuple(sorted(np.abs(peaks.hkl[0]))) == (1, 1, 1)


def test_p1_symmetry_search_can_be_turned_off(tmp_path):
  s, _ = structure_lib.read_structure(STRUCTURES / 'nacl.cif')
  path = tmp_path / 'nacl_p1.cif'
  path.write_text(p1_cif(s))
  kept, _ = structure_lib.read_structure(path, find_p1_symmetry=False)
  assert kept.space_group == 1 and not kept.symmetry_found


def _members():
  out = {}
  for name in ('quartz', 'si', 'kyanite'):
    s, _ = structure_lib.read_structure(STRUCTURES / f'{name}.cif')
    out[f'cifs/{name}.cif'] = p1_cif(s, name=name).encode()
  out['cifs/nacl.cif.gz'] = gzip.compress(open(STRUCTURES / 'nacl.cif', 'rb').read())  # symmetric, compressed
  out['cifs/broken.cif'] = b'data_broken\n_cell_length_a 5\n'
  out['cifs/readme.txt'] = b'not a CIF'
  return out


def _write_archive(path, members):
  if str(path).endswith('.zip'):
    with zipfile.ZipFile(path, 'w') as z:
      for n, data in members.items():
        z.writestr(n, data)
    return
  mode = {'.tar': 'w', '.tar.gz': 'w:gz', '.tar.xz': 'w:xz', '.tar.bz2': 'w:bz2'}[
      next(s for s in ('.tar.gz', '.tar.xz', '.tar.bz2', '.tar') if str(path).endswith(s))]
  with tarfile.open(path, mode) as t:
    for n, data in members.items():
      info = tarfile.TarInfo(n)
      info.size = len(data)
      t.addfile(info, io.BytesIO(data))


def _records(out):
  srcs = corpus.data_sources(str(out))
  recs = [src[i] for src in srcs.values() for i in range(len(src))]
  sid = lambda r: r['source_id'].decode() if isinstance(r['source_id'], bytes) else r['source_id']
  return {sid(r): r for r in recs}


@pytest.mark.parametrize('suffix', ['.tar.xz', '.zip', '.tar.gz'])
def test_archive_builds_the_same_corpus_as_the_folder(tmp_path, suffix):
  members = _members()
  folder = tmp_path / 'unpacked'
  for n, data in members.items():
    (folder / os.path.dirname(n)).mkdir(parents=True, exist_ok=True)
    (folder / n).write_bytes(data)
  archive = tmp_path / f'structures{suffix}'
  _write_archive(archive, members)
  assert sources.count(str(archive)) == 5
  from_archive = build.build(str(archive), str(tmp_path / 'a'), workers=2, progress=False)
  from_folder = build.build(str(folder / 'cifs'), str(tmp_path / 'f'), workers=1, progress=False)
  assert from_archive['files'] == 5 and from_archive['space_group_found'] == 3 == from_folder['space_group_found']
  assert sum(from_archive['written'].values()) == 4
  [skip] = from_archive['skipped']
  assert skip['source_id'] == 'cifs/broken.cif' and f'{archive}:cifs/broken.cif' in skip['reason']
  a, f = _records(tmp_path / 'a'), _records(tmp_path / 'f')
  assert sorted(a) == sorted('cifs/' + k for k in f)
  for k, rec in f.items():
    for field in ('two_theta', 'intensity', 'hkl', 'space_group', 'cell'):
      np.testing.assert_array_equal(a['cifs/' + k][field], rec[field])
  assert a['cifs/quartz.cif']['space_group'] == 154 and a['cifs/nacl.cif.gz']['space_group'] == 225
  # The same archive again is recognised (its digest covers the archive's bytes and the settings).
  assert build.previous_build(str(tmp_path / 'a'), build.cif_digest(str(archive))) is not None
  assert build.previous_build(str(tmp_path / 'a'), build.cif_digest(str(archive), symprec=0.01)) is None


def test_damaged_or_foreign_sources_are_refused_before_any_work(tmp_path):
  good = tmp_path / 'good.tar.gz'
  _write_archive(good, _members())
  cut = tmp_path / 'cut.tar.gz'
  cut.write_bytes(good.read_bytes()[:200])
  with pytest.raises(sources.SourceError, match='cut.tar.gz'):
    build.build(str(cut), str(tmp_path / 'out'), workers=1, progress=False)
  assert not os.path.exists(tmp_path / 'out' / 'build_report.json')
  text = tmp_path / 'structures.txt'
  text.write_text('x')
  assert 'neither a folder nor an archive' in sources.check(str(text))
  assert sources.check(str(tmp_path / 'missing')) == 'no such folder or archive'
