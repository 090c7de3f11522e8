"""Prediction rows and what a person reads of them: the one builder of the rows predict and evaluate write
(`prediction_rows`), a short table per file on the terminal, a one-line overview for many files, and the narrow
CSV of `predict --format=summary`.

A row is 'file', 'status', 'error' and 'warning' (`status_row`), then for a usable pattern its ranked columns
(`prediction_columns`) and, for a labelled one, its true labels (`truth_columns`). Everything else here reads those
rows back (`ranked`), so what a person reads is what the CSV holds, in the order of the one ranking
(`models.heads.rank`): the extinction groups and space groups of the first crystal system come first.
"""

from __future__ import annotations

import collections
import dataclasses
import re
import textwrap

from difcon_jax.crystallography import spacegroups
from difcon_jax.autoindex import search

TABLE_LIMIT = 20  # up to this many files, predict prints a table per file; beyond, one line
SHOWN = {'crystal_system': 3, 'extinction_group': 3, 'space_group': 5}  # ranks per head in a table
HEAD_TITLES = {'crystal_system': 'crystal system', 'extinction_group': 'extinction group',
               'space_group': 'space group'}
# How an extinction group is named, wherever one is shown (terminal, report, docs/extinction_groups.md).
EXTINCTION_NOTATION = ('An extinction group is the set of space groups of one crystal system that have the same '
                       'systematic absences, so a powder pattern cannot tell them apart. It is named by its '
                       'lowest-numbered space group, with the number of others it holds: "P63mc (+2)" is P63mc '
                       'and two more (P-62c, P63/mmc).')

STATUS_COLUMNS = ('file', 'status', 'error', 'warning')

OPTIONAL_STATUS_COLUMNS = ('wavelength',)  # predict's: the wavelength a file was read at and where it came from


def status_row(name: str, error: str = '', warnings=()) -> dict:
  """The first columns of a pattern's row: its name, 'ok' or 'error', the error (one line starting with the name)
  and its warnings joined by '; ' (each starting with the name)."""
  return {'file': name, 'status': 'error' if error else 'ok', 'error': error, 'warning': '; '.join(warnings)}


def prediction_columns(ranked: dict, j: int, k: int) -> dict:
  """The ranked columns of pattern j from a ranking ({head: (labels [N, k'], probabilities [N, k'])}, as
  models.heads.rank gives): the top-k crystal systems, extinction groups and space groups, best first."""
  row = {}
  cs_i, cs_p = ranked['crystal_system']
  eg_i, eg_p = ranked['extinction_group']
  sg_i, sg_p = ranked['space_group']
  for r in range(k):
    if r < cs_i.shape[1]:
      row[f'crystal_system_{r + 1}'] = spacegroups.CRYSTAL_SYSTEMS[cs_i[j, r]]
      row[f'crystal_system_{r + 1}_p'] = f'{cs_p[j, r]:.4f}'
    if r < eg_i.shape[1]:
      row[f'extinction_group_{r + 1}'] = spacegroups.extinction_group_label(int(eg_i[j, r]))
      row[f'extinction_group_{r + 1}_index'] = int(eg_i[j, r])
      row[f'extinction_group_{r + 1}_p'] = f'{eg_p[j, r]:.4f}'
    row[f'space_group_{r + 1}'] = int(sg_i[j, r])
    row[f'space_group_{r + 1}_symbol'] = spacegroups.symbol(int(sg_i[j, r]))
    row[f'space_group_{r + 1}_p'] = f'{sg_p[j, r]:.4f}'
  return row


def truth_columns(labels: dict, j: int) -> dict:
  """The true labels of pattern j ({head: [N]}, as metrics.labels_of_space_groups gives) as columns."""
  sg = int(labels['space_group'][j])
  eg = int(labels['extinction_group'][j])
  return {'true_crystal_system': spacegroups.CRYSTAL_SYSTEMS[int(labels['crystal_system'][j])],
          'true_extinction_group': spacegroups.extinction_group_label(eg), 'true_extinction_group_index': eg,
          'true_space_group': sg, 'true_space_group_symbol': spacegroups.symbol(sg)}


def prediction_rows(statuses: list[dict], ranked: dict, k: int, labels: dict | None = None) -> list[dict]:
  """The rows predict and evaluate write, one per pattern, in order: its STATUS_COLUMNS from `statuses` (other keys
  left out), then for an 'ok' one its ranked columns and, with labels, its true labels.

  statuses: one dict per pattern (`status_row`); the 'ok' ones are the patterns of ranked ({head: (labels [N, k'],
  probabilities [N, k'])}) and of labels ({head: [N]}) in the same order. k: ranks per head.
  """
  out, j = [], 0
  for status in statuses:
    row = {c: status[c] for c in STATUS_COLUMNS}
    row.update({c: status[c] for c in OPTIONAL_STATUS_COLUMNS if c in status})
    if row['status'] == 'ok':
      row.update(prediction_columns(ranked, j, k))
      if labels is not None:
        row.update(truth_columns(labels, j))
      j += 1
    out.append(row)
  return out


def _cell_text(cell) -> str:
  a, b, c, al, be, ga = cell
  return f'{a:.4f} {b:.4f} {c:.4f} {al:.2f} {be:.2f} {ga:.2f}'


def index_columns(evidence, network_system: str, combined_system: str) -> dict:
  """The columns `predict --index` adds to a pattern's row, from its autoindex.combine.Evidence: the network's own
  first crystal system, the search's answer, whether they agree (index_status), the cell shown beside the answer
  (the best cell of the answer's metric, else the search's own: a b c alpha beta gamma, volume, M20, unindexed of
  the lines indexed, the indexed lines as '2θ h k l; ...'), and the best cell of every metric system searched."""
  chosen = evidence.chosen
  row = {'network_crystal_system': network_system,
         'index_crystal_system': chosen.crystal_system if chosen else ('' if evidence.error else 'no cell'),
         'index_seconds': f'{evidence.seconds:.2f}'}
  if evidence.error and not evidence.timed_out:
    row['index_status'] = f'search failed ({evidence.error}): the network\'s ranking'
  elif evidence.timed_out:
    row['index_status'] = 'search out of time: the network\'s ranking'
  elif not evidence.usable:
    row['index_status'] = f'{len(evidence.two_theta)} lines, too few to index: the network\'s ranking'
  elif chosen is None:
    row['index_status'] = 'no cell indexes the lines'
  elif search.METRIC_OF[chosen.crystal_system] == search.METRIC_OF.get(network_system):
    row['index_status'] = 'agreed'
  else:
    row['index_status'] = f'disagreed (network {network_system}, indexing {chosen.crystal_system})'
  shown = evidence.best.get(search.METRIC_OF.get(combined_system, '')) or chosen
  if shown is not None:
    lines = [f'{t:.3f} {h} {k} {l}' for t, (h, k, l) in zip(evidence.two_theta, shown.hkl) if h or k or l]
    row.update(cell_system=shown.system, cell=_cell_text(shown.cell), cell_volume=f'{shown.volume:.2f}',
               cell_m20=f'{shown.m:.1f}', cell_unindexed=f'{shown.unindexed} of {shown.n}',
               cell_zero_shift=f'{shown.zero_shift:.4f}', cell_lines='; '.join(lines))
  for m in search.SYSTEMS:
    sol = evidence.best.get(m)
    if sol is not None:
      row.update({f'{m}_cell': _cell_text(sol.cell), f'{m}_volume': f'{sol.volume:.2f}', f'{m}_m20': f'{sol.m:.1f}',
                  f'{m}_unindexed': sol.unindexed})
  return row


def add_index_columns(rows: list[dict], evidence: list, network_probs) -> None:
  """Adds index_columns to the 'ok' rows in place: the j-th 'ok' row gets evidence[j] and the network's first
  crystal system of network_probs[j] ([N, 7]); nothing without evidence."""
  if not evidence:
    return
  first = [spacegroups.CRYSTAL_SYSTEMS[i] for i in network_probs.argmax(1)]
  for j, row in enumerate(r for r in rows if r['status'] == 'ok'):
    row.update(index_columns(evidence[j], first[j], row['crystal_system_1']))


def cell_line(row: dict) -> str:
  """The terminal's line for a row of `predict --index`: the cell beside the answer and the agreement."""
  if 'index_status' not in row:
    return ''
  answer = row.get('crystal_system_1', '')
  one_lattice = ' (trigonal or hexagonal: one lattice, the network\'s call)' if answer in ('trigonal',
                                                                                             'hexagonal') else ''
  if row.get('cell'):
    a, b, c, al, be, ga = row['cell'].split()
    cell = (f"cell ({row['cell_system']} metric): a {float(a):.4g} b {float(b):.4g} c {float(c):.4g} Å, "
            f"α {float(al):.4g} β {float(be):.4g} γ {float(ga):.4g}°, V {float(row['cell_volume']):.1f} Å³, "
            f"M20 {float(row['cell_m20']):.0f}, {row['cell_unindexed']} lines unindexed")
  else:
    cell = 'no cell'
  return f"  {cell}; {row['index_status']}{one_lattice}"


@dataclasses.dataclass(frozen=True)
class Label:
  """One ranked label of one head."""
  text: str  # 'hexagonal', 'P63mc (+2)', '194 P63/mmc'
  p: float  # its probability (for space groups the joint p(cs) p(sg | cs))
  members: tuple[str, ...] = ()  # an extinction group's space-group symbols, lowest number first


def extinction_members(index: int) -> tuple[str, ...]:
  """Hermann-Mauguin symbols of the space groups of extinction group `index`, lowest number first."""
  return tuple(spacegroups.symbol(sg) for sg in spacegroups.extinction_table().members[index])


def ranked(row: dict) -> dict[str, list[Label]]:
  """{head: labels best first} of an 'ok' row, as many ranks as the row has."""
  out = {h: [] for h in HEAD_TITLES}
  r = 1
  while f'space_group_{r}' in row and row[f'space_group_{r}'] not in ('', None):
    if row.get(f'crystal_system_{r}'):
      out['crystal_system'].append(Label(row[f'crystal_system_{r}'], float(row[f'crystal_system_{r}_p'])))
    if row.get(f'extinction_group_{r}'):
      out['extinction_group'].append(Label(row[f'extinction_group_{r}'], float(row[f'extinction_group_{r}_p']),
                                           extinction_members(int(row[f'extinction_group_{r}_index']))))
    out['space_group'].append(Label(f"{row[f'space_group_{r}']} {row[f'space_group_{r}_symbol']}",
                                    float(row[f'space_group_{r}_p'])))
    r += 1
  return out


def warnings_of(row: dict) -> list[str]:
  """The row's warnings without the file name each starts with (the row joins them with '; ', and a warning may
  hold '; ' itself, so the row is split only where the next one starts with the file name)."""
  prefix = f"{row['file']}: "
  parts = re.split('; (?=' + re.escape(prefix) + ')', row.get('warning') or '')
  return [w[len(prefix):] if w.startswith(prefix) else w for w in parts if w]


def error_of(row: dict) -> str:
  prefix = f"{row['file']}: "
  e = row.get('error') or ''
  return e[len(prefix):] if e.startswith(prefix) else e


def file_table(row: dict) -> str:
  """A file's block for the terminal: its name with its warnings (or its error), then one line per rank: the top
  crystal systems, extinction groups and space groups (number and Hermann-Mauguin symbol) with probabilities,
  then the space groups of the first extinction group."""
  if row['status'] != 'ok':
    return f"{row['file']}\n  error: {error_of(row)}"
  read_at = f"  read at λ = {row['wavelength']}" if row.get('wavelength') else ''
  lines = [row['file']] + ([read_at] if read_at else []) + [f'  warning: {w}' for w in warnings_of(row)]
  labels = ranked(row)
  columns = [(h, labels[h][:SHOWN[h]]) for h in HEAD_TITLES]
  widths = {h: max([len(HEAD_TITLES[h])] + [len(x.text) for x in shown]) for h, shown in columns}
  header = '  #  ' + '   '.join(f'{HEAD_TITLES[h]:<{widths[h]}}      p' for h, _ in columns)
  lines.append(header.rstrip())
  for r in range(max(len(shown) for _, shown in columns)):
    cells = [f'{shown[r].text:<{widths[h]}}  {shown[r].p:5.3f}' if r < len(shown) else ' ' * (widths[h] + 7)
             for h, shown in columns]
    lines.append(f'  {r + 1}  ' + '   '.join(cells).rstrip())
  if labels['extinction_group']:
    first = labels['extinction_group'][0]
    lines.append(f"  extinction group {first.text}: {', '.join(first.members)}")
  if cell_line(row):
    lines.append(cell_line(row))
  return '\n'.join(lines)


def overview(rows: list[dict]) -> str:
  """One line over many files: how many were predicted, failed and warned about, and the commonest first
  crystal systems."""
  ok = [r for r in rows if r['status'] == 'ok']
  warned = sum(bool(r.get('warning')) for r in ok)
  systems = collections.Counter(r['crystal_system_1'] for r in ok if r.get('crystal_system_1'))
  common = ', '.join(f'{name} {n}' for name, n in systems.most_common(3))
  return (f'{len(ok)} predicted ({warned} with warnings), {len(rows) - len(ok)} failed'
          + (f'; first crystal system most often: {common}' if common else ''))


def terminal(rows: list[dict], limit: int = TABLE_LIMIT) -> str:
  """What predict prints before its last line: a table per file (up to `limit` files) and the notation of
  extinction groups, or nothing beyond `limit` (the overview line says it)."""
  if len(rows) > limit:
    return ''
  blocks = [file_table(r) for r in rows]
  if any(r['status'] == 'ok' for r in rows):
    blocks.append(textwrap.fill(f'p: probability. {EXTINCTION_NOTATION}', 100, break_on_hyphens=False))
  return '\n\n'.join(blocks)


NARROW_COLUMNS = ('file', 'status', 'crystal_system', 'crystal_system_p', 'extinction_group',
                  'extinction_group_space_groups', 'extinction_group_p', 'space_group', 'space_group_symbol',
                  'space_group_p', 'space_groups_ranked', 'warning', 'error')


def narrow(row: dict) -> dict:
  """The row of `predict --format=summary`: the first label of each head (the extinction group with its space
  groups), the ranked space groups in one cell ('194 P63/mmc 0.340; 187 P-6m2 0.057; ...'), warnings, error."""
  out = dict.fromkeys(NARROW_COLUMNS, '')
  out.update(file=row['file'], status=row['status'], warning=row.get('warning', ''), error=row.get('error', ''))
  if row['status'] == 'ok':
    labels = ranked(row)
    cs, eg = labels['crystal_system'][0], labels['extinction_group'][0]
    out.update(crystal_system=cs.text, crystal_system_p=f'{cs.p:.4f}', extinction_group=eg.text,
               extinction_group_space_groups=' '.join(eg.members), extinction_group_p=f'{eg.p:.4f}',
               space_group=row['space_group_1'], space_group_symbol=row['space_group_1_symbol'],
               space_group_p=row['space_group_1_p'],
               space_groups_ranked='; '.join(f'{x.text} {x.p:.3f}' for x in labels['space_group']))
  return out
