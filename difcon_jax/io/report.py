"""A static HTML report of predictions (`predict --report=DIR`, `evaluate --report=DIR`): DIR/index.html.

One self-contained page (inline SVG, CSS and a few lines of script; nothing fetched, so it opens from a file on a
machine without a network): a sortable summary table with a row per pattern and a link to its section, and per
pattern the input as read, the pattern the model saw on its grid (after the wavelength conversion, background
subtraction and normalisation of `io.measured.to_grid`), the ranked predictions as bars and the warnings. With true
labels (evaluate) the table and bars show them beside the predictions, and the page opens with the metrics and
the crystal-system confusion matrix. The extinction-group notation is explained where it is shown.

Predictions are read from predict's CSV rows (`summary.ranked`), so the page shows what the CSV holds. Plots
keep at most PLOT_COLUMNS minimum/maximum pairs of each trace (every peak's top survives), so a page stays small.
"""

from __future__ import annotations

import dataclasses
import datetime
import html
import os

from matplotlib import ticker
import numpy as np

from difcon_jax.inference import rows as summary
from difcon_jax.crystallography import spacegroups
from difcon_jax.io import outputs

PLOT_COLUMNS = 800  # min/max pairs kept per trace
MAX_DETAILS = 200  # patterns with a section of their own (plots, bars); the table lists every pattern
_W, _H = 560, 230  # SVG plot size (user units)
_SUPERSCRIPT = str.maketrans('-0123456789', '⁻⁰¹²³⁴⁵⁶⁷⁸⁹')
_M = {'left': 62, 'right': 12, 'top': 12, 'bottom': 42}  # SVG plot margins


@dataclasses.dataclass
class Entry:
  """One pattern of a report.

  name: the file (or pattern) name; row: its predict CSV row ('file', 'status', 'error', 'warning', the ranked
  columns; with true_* columns when labelled); measured: (2θ degrees at the measurement wavelength, intensity as
  read), decimated, or None; wavelength: the measurement wavelength used, Å (None: unknown); grid: (2θ degrees of
  the bin centres at the training wavelength, values 0-1), decimated, or None.
  """
  name: str
  row: dict
  measured: tuple[np.ndarray, np.ndarray] | None = None
  wavelength: float | None = None
  grid: tuple[np.ndarray, np.ndarray] | None = None


def envelope(x: np.ndarray, y: np.ndarray, columns: int = PLOT_COLUMNS) -> tuple[np.ndarray, np.ndarray]:
  """The trace (x [n], y [n], x increasing) with at most 2 * columns points: the minimum and the maximum of each
  of `columns` runs of neighbours, in order, so that a plot of it looks like a plot of all points."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  if len(x) <= 2 * columns:
    return x, y
  edges = np.linspace(0, len(x), columns + 1).astype(int)
  keep = []
  for a, b in zip(edges[:-1], edges[1:]):
    lo, hi = a + int(np.argmin(y[a:b])), a + int(np.argmax(y[a:b]))
    keep += sorted({lo, hi})
  keep = np.array(keep)
  return x[keep], y[keep]


def entry(name: str, row: dict, pattern=None, wavelength: float | None = None, grid_x=None,
          grid_values=None) -> Entry:
  """An Entry with its traces decimated (pattern: an io.patterns.Pattern or None; grid_x, grid_values: [bins])."""
  measured = envelope(pattern.two_theta, pattern.intensity) if pattern is not None else None
  wl = wavelength or (pattern.wavelength if pattern is not None else None)
  grid = envelope(grid_x, grid_values) if grid_values is not None else None
  return Entry(name, row, measured, wl, grid)


def _svg_plot(x: np.ndarray, y: np.ndarray, xlabel: str, ylabel: str, kind: str, xlim=None,
              marks: list[tuple[float, str]] = ()) -> str:
  """An inline SVG line plot with ticks (matplotlib's MaxNLocator) and axis labels; counts of 10^5 and more are
  shown scaled, the power of ten in the axis label. marks: (x, label) of lines to mark with a tick under the top of
  the frame (the indexed lines, their hkl as the tick's tooltip)."""
  power = int(np.floor(np.log10(float(np.abs(y).max())))) if np.abs(y).max() >= 1e5 else 0
  if power:
    y, ylabel = y / 10.0**power, f'{ylabel} (×10{str(power).translate(_SUPERSCRIPT)})'
  x0, x1 = xlim or (float(x.min()), float(x.max()))
  y0, y1 = min(0.0, float(y.min())), float(y.max()) or 1.0
  if x1 <= x0:
    x1 = x0 + 1.0
  pw, ph = _W - _M['left'] - _M['right'], _H - _M['top'] - _M['bottom']
  sx = lambda v: _M['left'] + (v - x0) / (x1 - x0) * pw
  sy = lambda v: _M['top'] + ph - (v - y0) / ((y1 - y0) or 1.0) * ph
  parts = [f'<svg class="plot-svg" data-kind="{kind}" viewBox="0 0 {_W} {_H}" role="img" '
           f'aria-label="{html.escape(ylabel)} against {html.escape(xlabel)}" xmlns="http://www.w3.org/2000/svg">',
           f'<rect class="frame" x="{_M["left"]}" y="{_M["top"]}" width="{pw}" height="{ph}"/>']
  for v in ticker.MaxNLocator(nbins=8).tick_values(x0, x1):
    if x0 - 1e-9 <= v <= x1 + 1e-9:
      parts.append(f'<line class="grid" x1="{sx(v):.1f}" x2="{sx(v):.1f}" y1="{_M["top"]}" y2="{_M["top"] + ph}"/>'
                   f'<text class="tick" x="{sx(v):.1f}" y="{_M["top"] + ph + 15}" text-anchor="middle">{v:g}</text>')
  for v in ticker.MaxNLocator(nbins=5).tick_values(y0, y1):
    if y0 - 1e-9 <= v <= y1 + 1e-9:
      parts.append(f'<text class="tick" x="{_M["left"] - 5}" y="{sy(v) + 4:.1f}" text-anchor="end">{v:.4g}</text>')
  points = ' '.join(f'{sx(a):.1f},{sy(b):.1f}' for a, b in zip(x, y))
  parts.append(f'<polyline class="trace" points="{points}"/>')
  for v, label in marks:
    if x0 <= v <= x1:
      parts.append(f'<line class="mark" x1="{sx(v):.1f}" x2="{sx(v):.1f}" y1="{_M["top"]}" y2="{_M["top"] + 14}">'
                   f'<title>{html.escape(label)}</title></line>')
  parts.append(f'<text class="axis" x="{_M["left"] + pw / 2}" y="{_H - 6}" text-anchor="middle">'
               f'{html.escape(xlabel)}</text>')
  parts.append(f'<text class="axis" transform="translate(13 {_M["top"] + ph / 2}) rotate(-90)" '
               f'text-anchor="middle">{html.escape(ylabel)}</text></svg>')
  return ''.join(parts)


def _truth(row: dict) -> dict[str, str]:
  """{head: the true label as the ranked columns spell it} of a labelled row, else {}."""
  if not row.get('true_space_group'):
    return {}
  return {'crystal_system': row['true_crystal_system'], 'extinction_group': row['true_extinction_group'],
          'space_group': f"{row['true_space_group']} {row['true_space_group_symbol']}"}


def _bars(row: dict) -> str:
  """The ranked predictions of an 'ok' row as horizontal bars per head; the true label marked when known."""
  truth = _truth(row)
  blocks = []
  for head, labels in summary.ranked(row).items():
    lines = []
    for lab in labels:
      cls = 'bar truth' if truth.get(head) == lab.text else 'bar'
      title = f' title="{html.escape(", ".join(lab.members))}"' if lab.members else ''
      members = (f'<span class="members">{html.escape(", ".join(lab.members))}</span>'
                 if len(lab.members) > 1 else '')
      lines.append(f'<div class="{cls}"{title}><span class="label">{html.escape(lab.text)}{members}</span>'
                   f'<span class="track"><span class="fill" style="width:{100 * lab.p:.1f}%"></span></span>'
                   f'<span class="p">{lab.p:.3f}</span></div>')
    shown = (f'<p class="true">true: {html.escape(truth[head])}'
             f'{"" if any(truth[head] == lab.text for lab in labels) else " (not among these)"}</p>'
             if head in truth else '')
    blocks.append(f'<div class="head" data-head="{head}"><h4>{summary.HEAD_TITLES[head]}</h4>{shown}'
                  + ''.join(lines) + '</div>')
  return '<div class="bars">' + ''.join(blocks) + '</div>'


def short_names(names: list[str]) -> tuple[list[str], str]:
  """(names relative to the folder they all lie in, that folder) for file paths; (names, '') otherwise. Absolute
  and relative paths may be mixed (compared as absolute paths); names on different drives or of no common folder
  are kept whole."""
  if not names or not all(os.sep in n for n in names):
    return list(names), ''
  absolute = [os.path.abspath(n) for n in names]
  try:
    base = os.path.commonpath([os.path.dirname(n) for n in absolute])
  except ValueError:  # no common folder (Windows drives)
    return list(names), ''
  if base in ('', os.sep):
    return list(names), ''
  return [os.path.relpath(n, base) for n in absolute], base


def index_marks(row: dict) -> list[tuple[float, str]]:
  """(2θ, 'h k l') of the lines the shown cell indexes (predict --index's cell_lines column), else []."""
  marks = []
  for part in (row.get('cell_lines') or '').split('; '):
    fields = part.split()
    if len(fields) == 4:
      marks.append((float(fields[0]), f'{fields[0]}°: {" ".join(fields[1:])}'))
  return marks


def _indexing(row: dict) -> str:
  """predict --index's paragraph: the cell beside the answer, its M20 and unindexed lines, the agreement."""
  if 'index_status' not in row:
    return ''
  status = row['index_status']
  cls = 'agreed' if status == 'agreed' else 'disagreed' if status.startswith('disagreed') else 'fallback'
  if row.get('cell'):
    a, b, c, al, be, ga = (float(v) for v in row['cell'].split())
    cell = (f'{row["cell_system"]} cell a {a:.4f}, b {b:.4f}, c {c:.4f} Å, α {al:.2f}, β {be:.2f}, γ {ga:.2f}°, '
            f'V {float(row["cell_volume"]):.1f} Å³; M20 {float(row["cell_m20"]):.1f}, {row["cell_unindexed"]} '
            f'lines unindexed (indexed lines marked on the model-grid plot)')
  else:
    cell = 'no cell'
  one = (' Trigonal or hexagonal: one lattice, so the network decides between them.'
         if row.get('crystal_system_1') in ('trigonal', 'hexagonal') else '')
  network, indexing = row.get('network_crystal_system', ''), row.get('index_crystal_system', '')
  return (f'<p class="indexing {cls}"><b>Indexing:</b> {html.escape(cell)}. Network {html.escape(network)}, '
          f'indexing {html.escape(indexing)}: {html.escape(status)}.{one}</p>')


def _section(i: int, e: Entry, short: str, training_wavelength: float) -> str:
  row = e.row
  out = [f'<section class="pattern" id="p{i}"><h2 title="{html.escape(e.name, quote=True)}"><span class="num">{i}'
         f'</span> {html.escape(short)}<a class="top" href="#summary">table</a></h2>']
  if row['status'] != 'ok':
    out.append(f'<p class="error">error: {html.escape(summary.error_of(row))}</p>')
  warnings = summary.warnings_of(row)
  if warnings:
    out.append('<ul class="warnings">' + ''.join(f'<li>{html.escape(w)}</li>' for w in warnings) + '</ul>')
  plots = []
  if e.measured is not None:
    wl = f'λ = {e.wavelength:g} Å' if e.wavelength else 'wavelength unknown'
    plots.append(f'<figure class="plot" data-plot="measured"><figcaption>Input as read ({wl})</figcaption>'
                 + _svg_plot(*e.measured, f'2θ (°, {wl})', 'intensity as read', 'measured') + '</figure>')
  if e.grid is not None:
    how = ('converted to', 'background removed, strongest point 1') if e.measured is not None else \
        ('simulated at', 'as the evaluation set renders it')
    plots.append(f'<figure class="plot" data-plot="model-grid"><figcaption>What the model saw: on its grid, '
                 f'{how[0]} λ = {training_wavelength:g} Å, {how[1]}</figcaption>'
                 + _svg_plot(*e.grid, f'2θ (°, λ = {training_wavelength:g} Å)', 'model input', 'model-grid',
                             (np.floor(e.grid[0].min()), np.ceil(e.grid[0].max())), index_marks(row))
                 + '</figure>')
  if plots:
    out.append('<div class="plots">' + ''.join(plots) + '</div>')
  if row['status'] == 'ok':
    out.append(_indexing(row))
    out.append(_bars(row))
  out.append('</section>')
  return ''.join(out)


def _cell(text, sort=None, cls: str = '') -> str:
  """A table cell; `sort` (default: the text) is what the table sorts it by."""
  key = html.escape(str(text if sort is None else sort), quote=True)
  klass = f' class="{cls}"' if cls else ''
  return f'<td data-sort="{key}"{klass}>{html.escape(str(text))}</td>'


def _summary_table(entries: list[Entry], shorts: list[str], linked: int) -> str:
  labelled = any(_truth(e.row) for e in entries)
  heads = ['#', 'pattern', 'status', 'crystal system', 'p', 'extinction group', 'p', 'space group', 'p']
  indexed = any('index_status' in e.row for e in entries)
  if indexed:
    heads += ['cell (indexing)', 'M20', 'network / indexing']
  if labelled:
    heads += ['true crystal system', 'true space group']
  heads.append('warnings / error')
  rows = []
  for i, (e, short) in enumerate(zip(entries, shorts), 1):
    row = e.row
    name = (f'<a href="#p{i}">{html.escape(short)}</a>' if i <= linked else html.escape(short))
    cells = [_cell(i), f'<td data-sort="{html.escape(short, quote=True)}" title="{html.escape(e.name, quote=True)}">'
             f'{name}</td>', _cell(row['status'])]
    if row['status'] == 'ok':
      labels = summary.ranked(row)
      for h in summary.HEAD_TITLES:
        top = labels[h][0]
        sort = int(top.text.split()[0]) if h == 'space_group' else None
        cells += [_cell(top.text, sort, 'label'), _cell(f'{top.p:.3f}', cls='num')]
    else:
      cells += [_cell('')] * 6
    if indexed:
      cell = row.get('cell', '')
      short_cell = ' '.join(f'{float(v):.3f}' if k < 3 else f'{float(v):.1f}' for k, v in enumerate(cell.split()))
      cells += [_cell(short_cell, cls='cell'), _cell(row.get('cell_m20', ''), cls='num'),
                _cell(row.get('index_status', ''), cls='agree' if row.get('index_status') == 'agreed' else 'notes')]
    if labelled:
      truth = _truth(row)
      hit = lambda h: truth and row['status'] == 'ok' and summary.ranked(row)[h][0].text == truth[h]
      cells += [_cell(truth.get('crystal_system', ''), cls='hit' if hit('crystal_system') else 'miss'),
                _cell(truth.get('space_group', ''), row.get('true_space_group', ''),
                      'hit' if hit('space_group') else 'miss')]
    notes = summary.warnings_of(row) if row['status'] == 'ok' else [summary.error_of(row)]
    cells.append(_cell('; '.join(notes), len(notes) if row['status'] == 'ok' else 1e9, 'notes'))
    rows.append('<tr>' + ''.join(cells) + '</tr>')
  header = ''.join(f'<th data-col="{j}"{" class=num" if h in ("#", "p") else ""}>{html.escape(h)}</th>'
                   for j, h in enumerate(heads))
  return (f'<div class="scroll"><table id="summary-table" class="sortable"><thead><tr>{header}</tr></thead><tbody>'
          + ''.join(rows) + '</tbody></table></div>')


def _metrics(metrics: dict) -> str:
  """evaluate's numbers: top-1 / top-5 per head, consistency, and the crystal-system confusion matrix."""
  rows = ''.join(f'<tr><th>{summary.HEAD_TITLES[h]}</th><td class="num">{metrics[f"{h}_top1"]:.3f}</td>'
                 f'<td class="num">{metrics[f"{h}_top5"]:.3f}</td></tr>' for h in summary.HEAD_TITLES)
  out = ['<section id="metrics"><h2>Accuracy</h2><div class="metrics">'
         f'<table class="acc"><thead><tr><th></th><th>top-1</th><th>top-5</th></tr></thead><tbody>{rows}</tbody>'
         f'</table>']
  m = np.asarray(metrics['crystal_system_confusion'])
  share = m / np.maximum(m.sum(1, keepdims=True), 1)
  names = spacegroups.CRYSTAL_SYSTEMS
  head = ''.join(f'<th>{n[:5]}</th>' for n in names)
  body = ''.join(
      f'<tr><th>{names[i]}</th>' + ''.join(
          f'<td style="background:rgba(31,94,168,{share[i, j]:.2f});color:{"#fff" if share[i, j] > 0.55 else "#222"}"'
          f' title="true {names[i]}, predicted {names[j]}: {m[i, j]}">{m[i, j] or ""}</td>' for j in range(7))
      + '</tr>' for i in range(7))
  out.append(f'<figure class="confusion"><figcaption>Crystal system: rows true, columns predicted (counts; shade: '
             f'share of the true class)</figcaption><table id="confusion-matrix"><thead><tr><th></th>{head}</tr>'
             f'</thead><tbody>{body}</tbody></table></figure></div>')
  notes = [f"{metrics['examples']} patterns"]
  for h in ('extinction_group', 'space_group'):
    key = f'{h}_outside_predicted_crystal_system'
    if key in metrics:
      notes.append(f'{summary.HEAD_TITLES[h]}s outside the predicted crystal system: {metrics[key]:.3f}')
  out.append(f'<p class="meta">{"; ".join(notes)}. Top-1: the first label is the true one; top-5: the true one is '
             'among the first five.</p></section>')
  return ''.join(out)


_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0;padding:0 24px 40px;
 background:#fafafa}
h1{font-size:22px;margin:18px 0 4px}h2{font-size:17px;margin:0 0 8px}h4{margin:0 0 4px;font-size:13px;color:#444}
.meta{color:#555;margin:2px 0 10px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px 16px;margin:14px 0}
table{border-collapse:collapse}
.scroll{overflow-x:auto}#summary-table{width:100%;font-size:13px}
#summary-table th{background:#eef2f7;cursor:pointer;text-align:left;padding:5px 8px;border-bottom:2px solid #c9d3e0;
 white-space:nowrap;user-select:none}
#summary-table th.asc::after{content:" \\25B2";font-size:10px}#summary-table th.desc::after{content:" \\25BC";font-size:10px}
#summary-table td{padding:4px 8px;border-bottom:1px solid #eee;vertical-align:top}
#summary-table tr:hover td{background:#f5f8fc}
td.num,th.num,.acc td{text-align:right;font-variant-numeric:tabular-nums}
td.hit{color:#17692c;font-weight:600}td.miss{color:#a33}
td.notes{color:#8a5a00;font-size:12px;max-width:420px}
details.notation{margin-top:10px;color:#333}details.notation summary{cursor:pointer;color:#1f5ea8}
.pattern h2 .num{color:#888;font-weight:normal;margin-right:4px}.pattern h2 a.top{font-size:12px;font-weight:normal;
 margin-left:10px}
.plots{display:flex;flex-wrap:wrap;gap:14px}
figure{margin:0}figure.plot{flex:1 1 480px;max-width:720px}
figcaption{font-size:12px;color:#444;margin-bottom:2px}
svg.plot-svg{width:100%;height:auto;background:#fff}
svg .frame{fill:none;stroke:#999}svg .grid{stroke:#eee}svg .trace{fill:none;stroke:#1f5ea8;stroke-width:1}
svg[data-kind=measured] .trace{stroke:#555}svg .mark{stroke:#c0392b;stroke-width:1.5}
p.indexing{margin:8px 0 0;padding:6px 10px;border-radius:4px;background:#eef5ee;border:1px solid #b9d8bd}
p.indexing.disagreed{background:#fff3e6;border-color:#f0c08a}p.indexing.fallback{background:#f1f1f1;border-color:#ccc}
td.cell{font-size:12px;white-space:nowrap}td.agree{color:#17692c}
svg .tick{font-size:11px;fill:#555}svg .axis{font-size:12px;fill:#333}
.bars{display:flex;flex-wrap:wrap;gap:22px;margin-top:10px}
.head{flex:1 1 300px;max-width:420px}
.bar{display:grid;grid-template-columns:12em 1fr 3.4em;gap:8px;align-items:center;margin:3px 0}
.bar .label{font-size:13px}.bar .members{display:block;font-size:11px;color:#777}
.track{background:#edf1f6;height:12px;border-radius:3px;overflow:hidden}
.fill{display:block;height:100%;background:#1f5ea8}
.bar.truth .fill{background:#2e8b47}.bar.truth .label{font-weight:600;color:#17692c}
.bar .p{font-size:12px;text-align:right;font-variant-numeric:tabular-nums}
p.true{margin:0 0 4px;color:#17692c;font-size:12px}
ul.warnings{background:#fff6e0;border:1px solid #f0d48a;border-radius:4px;margin:4px 0 10px;padding:6px 10px 6px 26px;
 color:#6b4a00}
p.error{background:#fdecec;border:1px solid #e9a5a5;border-radius:4px;padding:6px 10px;color:#8a1f1f}
.metrics{display:flex;flex-wrap:wrap;gap:30px;align-items:flex-start}
.acc th,.acc td{padding:4px 10px;border-bottom:1px solid #eee;text-align:left}
#confusion-matrix th{font-size:12px;padding:3px 6px;text-align:right;font-weight:normal;color:#444}
#confusion-matrix thead th{text-align:center}
#confusion-matrix td{width:44px;height:28px;text-align:center;font-size:12px;border:1px solid #fff}
"""

# Sorting the summary table: click a heading; numbers compare as numbers. Pattern sections keep their order.
_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0], col = +th.dataset.col;
    var asc = !th.classList.contains('asc');
    table.querySelectorAll('th').forEach(function (h) { h.classList.remove('asc', 'desc'); });
    th.classList.add(asc ? 'asc' : 'desc');
    var key = function (tr) { var v = tr.cells[col].dataset.sort, n = Number(v);
                              return v !== '' && !isNaN(n) ? n : v; };
    Array.from(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b);
      var c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
      return asc ? c : -c;
    }).forEach(function (tr) { body.appendChild(tr); });
  });
});
"""


def render(entries: list[Entry], title: str, model_source: str, training_wavelength: float,
           metrics: dict | None = None, csv_path: str | None = None, max_details: int = MAX_DETAILS) -> str:
  """The page (HTML text) for entries in the order given; the first max_details get a section each."""
  failed = sum(e.row['status'] != 'ok' for e in entries)
  linked = min(len(entries), max_details)
  meta = [f'model: {model_source}', f'{len(entries)} pattern{"s" if len(entries) != 1 else ""}'
          + (f' ({failed} failed)' if failed else ''), f'written {datetime.datetime.now():%Y-%m-%d %H:%M}']
  shorts, folder = short_names([e.name for e in entries])
  if folder:
    meta.append(f'files in {folder}')
  if csv_path:
    meta.append(f'CSV: {csv_path}')
  more = (f'<p class="meta">Sections below for the first {linked} patterns; every pattern is in the table and the '
          f'CSV.</p>' if linked < len(entries) else '')
  notation = (f'<details class="notation" open><summary>Reading the predictions</summary><p>Probabilities (p) are '
              f'the model\'s. Extinction groups and space groups are listed with those of the first crystal system '
              f'first; a space group\'s probability is the joint p(crystal system) &times; p(space group | crystal '
              f'system). {html.escape(summary.EXTINCTION_NOTATION)} Each extinction-group bar lists its space groups '
              f'(docs/extinction_groups.md gives the rule).</p></details>')
  body = [f'<header><h1>{html.escape(title)}</h1><p class="meta">{html.escape("; ".join(meta))}</p></header>']
  if metrics:
    body.append(_metrics(metrics))
  body.append('<section id="summary"><h2>Summary</h2><p class="meta">One row per pattern, its first label per head; '
              f'click a column heading to sort, a pattern to see its plots.</p>{_summary_table(entries, shorts, linked)}'
              f'{more}{notation}</section>')
  body += [_section(i, e, short, training_wavelength)
           for i, (e, short) in enumerate(zip(entries[:linked], shorts), 1)]
  return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
          f'content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title><style>{_CSS}</style>'
          f'</head><body>{"".join(body)}<script>{_SCRIPT}</script></body></html>')


def write(out_dir: str, entries: list[Entry], title: str, model_source: str, training_wavelength: float,
          metrics: dict | None = None, csv_path: str | None = None, max_details: int = MAX_DETAILS) -> str:
  """Writes out_dir/index.html (atomically); returns its path."""
  path = os.path.join(os.fspath(out_dir), 'index.html')
  page = render(entries, title, model_source, training_wavelength, metrics, csv_path, max_details)
  with outputs.write(path, encoding='utf-8') as f:
    f.write(page)
  return path
