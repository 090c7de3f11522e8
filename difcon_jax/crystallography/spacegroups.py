"""Space-group tables: number -> crystal system, number -> extinction group.

Crystal systems follow the paper's number ranges (trigonal and rhombohedral groups 143-167 form one class).

Extinction groups are derived, not typed in: two space groups of one crystal system share an extinction group
exactly when their ITA reference settings (gemmi's first setting of each number; hexagonal axes for R groups)
have the same set of systematically absent reflections. A reflection h is systematically absent when some
symmetry operation (R, t) leaves it fixed (h R = h) while h.t is not an integer. The set is taken over all hkl
with |h|, |k|, |l| <= 12, enough to see every screw axis (6_1 needs l = 1..5) and every glide and centring.
This gives 112 classes (see ``num_extinction_groups``); ITA's table of extinction symbols, which Park et al. count
as 101, differs only in how a few groups with identical absences but different Laue classes are listed
(see docs/extinction_groups.md).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import sys

import gemmi
import numpy as np

CRYSTAL_SYSTEMS = ('triclinic', 'monoclinic', 'orthorhombic', 'tetragonal', 'trigonal', 'hexagonal', 'cubic')
# First space-group number of each crystal system, and one past the last.
_CS_BOUNDS = (1, 3, 16, 75, 143, 168, 195, 231)
NUM_SPACE_GROUPS = _CS_BOUNDS[-1] - 1  # ITA numbers 1-230
_HKL_BOX = 12
# The derived table, stored so that importing costs nothing; tests re-derive it and compare.
_TABLE_FILE = pathlib.Path(__file__).with_name('extinction_groups.json')


def crystal_system_index(space_group: int) -> int:
  """Index into CRYSTAL_SYSTEMS of a space group number 1-230."""
  _check_number(space_group)
  return int(np.searchsorted(_CS_BOUNDS, space_group, side='right') - 1)


def crystal_system(space_group: int) -> str:
  return CRYSTAL_SYSTEMS[crystal_system_index(space_group)]


def space_groups_of_system(cs_index: int) -> range:
  """Space-group numbers of the crystal system with index cs_index."""
  return range(_CS_BOUNDS[cs_index], _CS_BOUNDS[cs_index + 1])


def symbol(space_group: int) -> str:
  """Short Hermann-Mauguin symbol of the ITA reference setting, e.g. 'P21/c', 'R-3m'."""
  _check_number(space_group)
  name = gemmi.find_spacegroup_by_number(space_group).short_name()
  # gemmi names the hexagonal-axes setting of the rhombohedral groups 'H...'; their symbol is 'R...'.
  return 'R' + name[1:] if name.startswith('H') else name


def _check_number(space_group: int) -> None:
  if not 1 <= int(space_group) <= 230:
    raise ValueError(f'space group number must be 1-230, got {space_group}')


def _absent_mask(space_group: int, hkl: np.ndarray) -> np.ndarray:
  """Boolean [n] mask of systematically absent reflections hkl [n, 3] in the reference setting."""
  ops = gemmi.find_spacegroup_by_number(space_group).operations()
  absent = np.zeros(len(hkl), dtype=bool)
  for op in ops:  # all operations, centring included
    rot = np.array(op.rot, dtype=np.int64)  # scaled by op.DEN
    tran = np.array(op.tran, dtype=np.int64)
    fixed = np.all(hkl @ rot == hkl * op.DEN, axis=1)
    phase = (hkl @ tran) % op.DEN
    absent |= fixed & (phase != 0)
  return absent


@dataclasses.dataclass(frozen=True)
class ExtinctionTable:
  """group_of[sg] is the extinction-group index (0-based) of space group sg (index 0 unused)."""
  group_of: tuple[int, ...]
  members: tuple[tuple[int, ...], ...]  # space groups of each extinction group, ascending

  @property
  def num_groups(self) -> int:
    return len(self.members)


def derive_extinction_table() -> ExtinctionTable:
  """Derives the table from gemmi's symmetry operations (a few seconds)."""
  r = np.arange(-_HKL_BOX, _HKL_BOX + 1)
  hkl = np.stack(np.meshgrid(r, r, r, indexing='ij'), -1).reshape(-1, 3)
  keys: dict[tuple[int, bytes], list[int]] = {}
  for sg in range(1, 231):
    key = (crystal_system_index(sg), np.packbits(_absent_mask(sg, hkl)).tobytes())
    keys.setdefault(key, []).append(sg)
  members = sorted((tuple(v) for v in keys.values()), key=lambda m: m[0])
  group_of = [-1] * 231
  for i, m in enumerate(members):
    for sg in m:
      group_of[sg] = i
  return ExtinctionTable(tuple(group_of), tuple(members))


@functools.cache
def extinction_table() -> ExtinctionTable:
  """The stored table (written by ``python -m difcon_jax.crystallography.spacegroups``)."""
  members = tuple(tuple(m) for m in json.loads(_TABLE_FILE.read_text())['members'])
  group_of = [-1] * 231
  for i, m in enumerate(members):
    for sg in m:
      group_of[sg] = i
  return ExtinctionTable(tuple(group_of), members)


def extinction_group(space_group: int) -> int:
  """Extinction-group index (0-based) of a space group number."""
  _check_number(space_group)
  return extinction_table().group_of[space_group]


def extinction_group_label(index: int) -> str:
  """Readable name of an extinction group: its lowest-numbered member's symbol and the member count."""
  m = extinction_table().members[index]
  return symbol(m[0]) + (f' (+{len(m) - 1})' if len(m) > 1 else '')


def num_extinction_groups() -> int:
  return extinction_table().num_groups


def _write_table() -> None:
  table = derive_extinction_table()
  doc = {'rule': 'same crystal system and same systematically absent hkl (|h|,|k|,|l| <= 12) in the ITA '
                 'reference setting',
         'num_groups': table.num_groups,
         'members': [list(m) for m in table.members],
         'labels': [symbol(m[0]) for m in table.members]}
  # One extinction group a line, so that a change to the table reads well in a diff.
  lines = [f' {json.dumps(k)}: {json.dumps(v)},' for k, v in doc.items() if k not in ('members', 'labels')]
  lines += [' "members": [', ',\n'.join(f'  {json.dumps(m)}' for m in doc['members']), ' ],']
  lines += [' "labels": [', ',\n'.join(f'  {json.dumps(x)}' for x in doc['labels']), ' ]']
  _TABLE_FILE.write_text('{\n' + '\n'.join(lines) + '\n}\n')
  print(f'wrote {table.num_groups} extinction groups to {_TABLE_FILE}', file=sys.stderr)


if __name__ == '__main__':
  _write_table()
