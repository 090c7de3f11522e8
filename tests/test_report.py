"""What a person reads: predict's terminal tables and narrow CSV, the HTML report, and the report in a real browser."""

import csv
import html.parser
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from difcon_jax.io import report
from difcon_jax.inference import rows as summary
from difcon_jax.crystallography import diffraction
from difcon_jax.crystallography import spacegroups
from difcon_jax.crystallography import structure
from conftest import STRUCTURES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where the browser test leaves its screenshot (under runs/, which git ignores).
SCREENSHOT_DIR = os.environ.get('DIFCON_SCREENSHOT_DIR', os.path.join(ROOT, 'runs', 'report_test'))


def _ranking(n=2, k=5, seed=0):
  """A ranking as models.heads.rank gives it, with distinct labels per row and decreasing probabilities."""
  rng = np.random.default_rng(seed)
  sizes = {'crystal_system': 7, 'extinction_group': spacegroups.num_extinction_groups(), 'space_group': 230}
  out = {}
  for h, size in sizes.items():
    idx = np.stack([rng.choice(size, min(k, size), replace=False) for _ in range(n)]) + (h == 'space_group')
    p = -np.sort(-rng.uniform(0, 0.5, idx.shape), axis=1)
    out[h] = (idx, p)
  return out


def _row(ranked, j, k=5, name='a.xy', warning=''):
  return {'file': name, 'status': 'ok', 'error': '', 'warning': warning,
          **summary.prediction_columns(ranked, j, k)}


def test_ranked_reads_back_predicts_columns():
  ranked = _ranking()
  labels = summary.ranked(_row(ranked, 1))
  cs_i, cs_p = ranked['crystal_system']
  eg_i, eg_p = ranked['extinction_group']
  sg_i, sg_p = ranked['space_group']
  assert [x.text for x in labels['crystal_system']] == [spacegroups.CRYSTAL_SYSTEMS[i] for i in cs_i[1]]
  assert [x.text for x in labels['extinction_group']] == [spacegroups.extinction_group_label(i) for i in eg_i[1]]
  assert [x.text for x in labels['space_group']] == [f'{s} {spacegroups.symbol(int(s))}' for s in sg_i[1]]
  np.testing.assert_allclose([x.p for x in labels['space_group']], sg_p[1], atol=1e-4)
  np.testing.assert_allclose([x.p for x in labels['extinction_group']], eg_p[1], atol=1e-4)
  # An extinction group lists its space groups: the label's first symbol and as many more as the label says.
  for lab, i in zip(labels['extinction_group'], eg_i[1]):
    members = spacegroups.extinction_table().members[i]
    assert lab.members == tuple(spacegroups.symbol(s) for s in members) and lab.members[0] == lab.text.split()[0]
    assert len(members) == 1 or lab.text.endswith(f'(+{len(members) - 1})')


def test_prediction_rows_are_the_rows_of_predict_and_evaluate():
  """One builder: the status columns of every pattern, then for the usable ones (in order) the ranked columns and,
  with labels, the true ones; other keys of a status (evaluate's space_group) are left out."""
  ranked = _ranking(n=2)
  statuses = [summary.status_row('a.xy', warnings=['a.xy: w1', 'a.xy: w2']),
              summary.status_row('b.xy', 'b.xy: no such file'), {**summary.status_row('c.xy'), 'space_group': 14}]
  rows = summary.prediction_rows(statuses, ranked, 5)
  assert rows[1] == {'file': 'b.xy', 'status': 'error', 'error': 'b.xy: no such file', 'warning': ''}
  assert rows[0] == {'file': 'a.xy', 'status': 'ok', 'error': '', 'warning': 'a.xy: w1; a.xy: w2',
                     **summary.prediction_columns(ranked, 0, 5)}
  assert rows[2] == {**summary.status_row('c.xy'), **summary.prediction_columns(ranked, 1, 5)}
  assert list(rows[2]) == list(summary.STATUS_COLUMNS) + list(summary.prediction_columns(ranked, 1, 5))
  sg = np.array([14, 194])
  labels = {'crystal_system': np.array([spacegroups.crystal_system_index(int(s)) for s in sg]),
            'extinction_group': np.array([spacegroups.extinction_group(int(s)) for s in sg]), 'space_group': sg}
  rows = summary.prediction_rows(statuses, ranked, 5, labels)
  eg = spacegroups.extinction_group(194)
  assert list(rows[2].items())[-5:] == [  # the columns in evaluate's order
      ('true_crystal_system', 'hexagonal'), ('true_extinction_group', spacegroups.extinction_group_label(eg)),
      ('true_extinction_group_index', eg), ('true_space_group', 194), ('true_space_group_symbol', 'P63/mmc')]
  assert rows[0]['true_space_group'] == 14 and 'true_space_group' not in rows[1]


def test_terminal_table_per_file_and_one_line_beyond_the_limit():
  ranked = _ranking(3)
  rows = [_row(ranked, 0, name='q.xy', warning='q.xy: no wavelength; assumed 1.5418 Å; q.xy: 2 point(s) dropped'),
          {'file': 'bad.xy', 'status': 'error', 'error': 'bad.xy: only 2 data points', 'warning': ''},
          _row(ranked, 2, name='c.xy')]
  text = summary.terminal(rows)
  blocks = text.split('\n\n')
  q = blocks[0].splitlines()
  # The file, its two warnings beside it (the first holds '; ' itself), a header and five ranks.
  assert q[:3] == ['q.xy', '  warning: no wavelength; assumed 1.5418 Å', '  warning: 2 point(s) dropped']
  assert q[3].split()[:4] == ['#', 'crystal', 'system', 'p'] and len(q) == 3 + 1 + 5 + 1
  first = summary.ranked(rows[0])
  assert q[4].split()[:3] == ['1', first['crystal_system'][0].text, f"{first['crystal_system'][0].p:.3f}"]
  assert first['space_group'][4].text in q[8] and first['crystal_system'][2].text in q[6]
  assert first['crystal_system'][3].text not in '\n'.join(q[4:9])  # three crystal systems, five space groups
  assert q[9] == f"  extinction group {first['extinction_group'][0].text}: " + \
      ', '.join(first['extinction_group'][0].members)
  assert blocks[1] == 'bad.xy\n  error: only 2 data points'
  assert 'An extinction group is' in blocks[-1]
  many = rows * 8  # 24 files: no tables, the overview line says it
  assert summary.terminal(many) == ''
  assert summary.overview(many).startswith('16 predicted (8 with warnings), 8 failed; first crystal system most')


def test_narrow_csv_row():
  ranked = _ranking()
  row = _row(ranked, 0, name='q.xy')
  n = summary.narrow(row)
  assert tuple(n) == summary.NARROW_COLUMNS
  assert n['space_group'] == row['space_group_1'] and n['extinction_group'] == row['extinction_group_1']
  assert n['space_groups_ranked'].split('; ')[1].startswith(f"{row['space_group_2']} {row['space_group_2_symbol']} ")
  assert n['extinction_group_space_groups'].split()[0] == row['extinction_group_1'].split()[0]
  bad = summary.narrow({'file': 'b.xy', 'status': 'error', 'error': 'b.xy: no such file', 'warning': ''})
  assert bad['status'] == 'error' and bad['error'] == 'b.xy: no such file' and bad['space_group'] == ''


def test_envelope_keeps_every_peak_top():
  rng = np.random.default_rng(3)
  x = np.linspace(5, 90, 40_001)
  y = rng.uniform(0, 1, x.size)
  peaks = np.arange(30) * 1300 + rng.integers(0, 100, 30)  # runs of the envelope hold 80 points: one spike each
  y[peaks] = 50 + rng.uniform(0, 10, 30)
  ex, ey = report.envelope(x, y, 500)
  assert len(ex) <= 1000 and np.all(np.diff(ex) >= 0)
  assert set(np.round(x[peaks], 6)) <= set(np.round(ex, 6))  # every spike survives
  assert ey.min() == y.min() and ey.max() == y.max()
  short_x, short_y = report.envelope(x[:100], y[:100], 500)
  np.testing.assert_array_equal(short_y, y[:100])


class _Dom(html.parser.HTMLParser):
  """Counts what the tests look for in a page: summary rows, pattern sections, plots, bars."""

  def __init__(self):
    super().__init__()
    self.stack, self.rows, self.sections, self.plots, self.polylines, self.bars = [], 0, 0, {}, 0, 0
    self.truth_bars, self.confusion = 0, False

  def handle_starttag(self, tag, attrs):
    a = dict(attrs)
    classes = (a.get('class') or '').split()
    if tag == 'table' and a.get('id') == 'summary-table':
      self.stack.append('summary')
    if tag == 'table' and a.get('id') == 'confusion-matrix':
      self.confusion = True
    if tag == 'tbody' and self.stack and self.stack[-1] == 'summary':
      self.stack.append('body')
    if tag == 'tr' and self.stack and self.stack[-1] == 'body':
      self.rows += 1
    if tag == 'section' and 'pattern' in classes:
      self.sections += 1
    if tag == 'svg' and 'plot-svg' in classes:
      self.plots[a['data-kind']] = self.plots.get(a['data-kind'], 0) + 1
    if tag == 'polyline':
      self.polylines += 1
    if tag == 'div' and 'bar' in classes:
      self.bars += 1
      self.truth_bars += 'truth' in classes

  def handle_endtag(self, tag):
    if tag in ('tbody', 'table') and self.stack:
      self.stack.pop()


def _dom(text):
  d = _Dom()
  d.feed(text)
  return d


def test_page_has_a_row_per_pattern_and_sections_for_the_first():
  ranked = _ranking(3)
  x = np.linspace(5, 60, 3000)
  pattern = type('P', (), {'two_theta': x, 'intensity': 100 + 1e4 * np.exp(-(x - 30) ** 2), 'wavelength': 0.7107})
  entries = [report.entry('<odd> name.xy', _row(ranked, 0, name='<odd> name.xy'), pattern, None,
                          np.arange(0.005, 120, 0.01), np.exp(-(np.arange(0.005, 120, 0.01) - 60) ** 2)),
             report.Entry('bad.xy', {'file': 'bad.xy', 'status': 'error', 'error': 'bad.xy: x', 'warning': ''}),
             report.entry('c.xy', _row(ranked, 2, name='c.xy'))]
  page = report.render(entries, 'predictions', 'a model', 1.5418, max_details=2)
  d = _dom(page)
  assert d.rows == 3 and d.sections == 2  # every pattern in the table, sections for the first two
  assert d.plots == {'measured': 1, 'model-grid': 1} and d.polylines == 2 and d.bars == 15
  assert '&lt;odd&gt; name.xy' in page and '<odd>' not in page
  assert 'http://' not in page.replace('http://www.w3.org/2000/svg', '') and 'https://' not in page
  assert 'λ = 0.7107 Å' in page  # the measurement wavelength, from the file


def test_evaluate_page_marks_the_truth_and_shows_the_confusion():
  ranked = _ranking(1)
  row = _row(ranked, 0)
  sg = int(row['space_group_1'])
  row.update(true_crystal_system=row['crystal_system_2'], true_extinction_group=row['extinction_group_1'],
             true_space_group=sg, true_space_group_symbol=spacegroups.symbol(sg))
  metrics = {f'{h}_top{k}': 0.5 for h in summary.HEAD_TITLES for k in (1, 5)}
  metrics.update(crystal_system_confusion=np.eye(7, dtype=int).tolist(), examples=7)
  d = _dom(report.render([report.entry('a.xy', row)], 'evaluation', 'a model', 1.5418, metrics))
  assert d.confusion and d.rows == 1
  assert d.truth_bars == 3  # its crystal system (second), extinction group (first) and space group (first)


def _simulated_pattern(name, path, wavelength=1.5418, header=True):
  s, _ = structure.read_structure(str(STRUCTURES / f'{name}.cif'))
  p = diffraction.peak_list(s, wavelength, 5, 90)
  tt = np.arange(5, 90, 0.01)
  y = sum(i * np.exp(-4 * np.log(2) * (tt - t) ** 2 / 0.08**2) for t, i in zip(p.two_theta, p.intensity))
  np.savetxt(path, np.stack([tt, 100 * y + 40 + 30 * np.exp(-tt / 25)], 1),
             header=f'wavelength {wavelength}' if header else 'a scan')


@pytest.fixture(scope='module')
def predicted(tmp_path_factory):
  """predict on a folder (the README example, two simulated Cu Kα patterns, one without a wavelength, and a bad
  file) with --report and --format=summary, by the bundled model."""
  tmp = tmp_path_factory.mktemp('report')
  folder = tmp / 'patterns'
  folder.mkdir()
  shutil.copy(os.path.join(ROOT, 'examples', 'quartz_mo.xy'), folder / 'quartz_mo.xy')
  _simulated_pattern('nacl', folder / 'nacl.xy')
  _simulated_pattern('corundum', folder / 'corundum.xy', header=False)
  (folder / 'broken.xy').write_text('10 5\n11 6\n')
  run = subprocess.run([sys.executable, '-m', 'difcon_jax.predict', f'--input={folder}',
                        f'--output={tmp / "p.csv"}', '--format=summary', f'--report={tmp / "report"}'],
                       capture_output=True, text=True, cwd=ROOT)
  return run, tmp, sorted(os.listdir(folder))


@pytest.mark.slow
def test_predict_prints_tables_and_writes_the_narrow_csv_and_the_report(predicted):
  run, tmp, files = predicted
  assert run.returncode == 1, run.stderr[-2000:]  # broken.xy failed, the others were predicted
  out = run.stdout
  for f in files:
    assert f'{f}\n' in out
  assert out.count('  #  crystal system') == 3 and 'error: only 2 data points; a pattern needs at least 10' in out
  assert out.rstrip().splitlines()[-1].startswith('3 predicted, 1 failed -> ')
  assert f'report: {tmp / "report" / "index.html"}' in out
  rows = list(csv.DictReader(open(tmp / 'p.csv')))
  assert [os.path.basename(r['file']) for r in rows] == files and tuple(rows[0]) == summary.NARROW_COLUMNS
  assert 'no wavelength' in next(r for r in rows if r['file'].endswith('corundum.xy'))['warning']
  # The progress bars and library logs stay off stdout; the backend probing of JAX is not shown.
  assert 'reading' not in out and 'xla_bridge' not in run.stderr and 'Unable to initialize' not in run.stderr
  d = _dom(open(tmp / 'report' / 'index.html', encoding='utf-8').read())
  assert d.rows == len(files) and d.sections == len(files)
  assert d.plots == {'measured': 3, 'model-grid': 3}  # the bad file has no plot: it could not be read


def _chromium():
  return next((p for p in map(shutil.which, ('chromium', 'chromium-browser', 'google-chrome')) if p), None)


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason='Chromium is not installed (Debian: apt-get install chromium; '
                    '.ci/run installs it when the package mirror can be reached)')
def test_the_report_renders_in_a_browser(predicted):
  """Headless Chromium opens the page from a file (no server, no network): the DOM it built has a summary row
  per file and the plots; the screenshot it takes shows the page (not blank)."""
  from matplotlib import image
  run, tmp, files = predicted
  page = 'file://' + str(tmp / 'report' / 'index.html')
  browser = [_chromium(), '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
             f'--user-data-dir={tmp / "chromium"}']
  dom = subprocess.run(browser + ['--dump-dom', page], capture_output=True, text=True, timeout=120)
  assert dom.returncode == 0, dom.stderr[-2000:]
  d = _dom(dom.stdout)
  assert d.rows == len(files) and d.sections == len(files)
  assert d.plots == {"measured": 3, "model-grid": 3} and d.polylines == 6 and d.bars == 3 * 15
  os.makedirs(SCREENSHOT_DIR, exist_ok=True)
  shot = os.path.join(SCREENSHOT_DIR, 'report.png')
  if os.path.exists(shot):
    os.remove(shot)
  taken = subprocess.run(browser + ['--window-size=1400,1800', f'--screenshot={shot}', page], capture_output=True,
                         text=True, timeout=120)
  assert taken.returncode == 0 and os.path.exists(shot), taken.stderr[-2000:]
  pixels = image.imread(shot)[..., :3]  # [height, width, rgb] in 0-1
  assert pixels.shape[:2] == (1800, 1400)
  # Rendered: dark text and the plots' blue traces, not one colour.
  assert (pixels.sum(-1) < 1.0).mean() > 0.001
  blue = (pixels[..., 2] > 0.5) & (pixels[..., 0] < 0.3) & (pixels[..., 1] < 0.5)
  assert blue.sum() > 500


def test_evaluate_report_has_the_truth_the_metrics_and_every_pattern(predicted):
  """evaluate --report on the same folder with labels: a row per pattern (the unusable one too), the patterns as
  read and on the grid, the true label above every head's bars, the confusion matrix; its last line names top-1
  and top-5."""
  run, tmp, files = predicted
  labels = {'quartz_mo.xy': 154, 'nacl.xy': 225, 'corundum.xy': 167, 'broken.xy': 1}
  (tmp / 'labels.csv').write_text('file,space_group\n' + ''.join(f'{f},{sg}\n' for f, sg in labels.items()))
  ev = subprocess.run([sys.executable, '-m', 'difcon_jax.evaluate', '--set=experimental', f'--data={tmp / "patterns"}',
                       f'--labels={tmp / "labels.csv"}', f'--out={tmp / "eval"}', f'--report={tmp / "eval_report"}'],
                      capture_output=True, text=True, cwd=ROOT)
  assert ev.returncode == 1, ev.stderr[-2000:]  # broken.xy left out
  *_, accuracy, by_system = ev.stdout.strip().splitlines()
  assert 'top-1 / top-5 accuracy: crystal system ' in accuracy
  # quartz_mo (trigonal), nacl (cubic), corundum (trigonal): three usable patterns of two true systems.
  assert 'trigonal ' in by_system and '(2)' in by_system and 'cubic ' in by_system and 'triclinic – (0)' in by_system
  page = open(tmp / 'eval_report' / 'index.html', encoding='utf-8').read()
  d = _dom(page)
  assert d.rows == len(files) and d.sections == len(files) and d.confusion
  assert d.plots == {'measured': 3, 'model-grid': 3}
  assert page.count('<p class="true">') == 3 * 3
  assert f'true: 154 {spacegroups.symbol(154)}' in page and f'true: 225 {spacegroups.symbol(225)}' in page


def test_evaluate_keeps_the_first_patterns_it_passes_on():
  from difcon_jax.evaluation import sets as eval_sets
  from difcon_jax import evaluate
  x = np.arange(50, dtype=np.float32).reshape(10, 5)
  batches = list(eval_sets.grid_batches(x, [str(i) for i in range(10)], 4))  # 4 + 4 + 2 (padded to 4)
  kept = []
  assert list(evaluate._keeping(iter(batches), 6, kept)) == batches
  np.testing.assert_array_equal(np.concatenate(kept), x[:6])
  kept = []
  list(evaluate._keeping(iter(batches), 100, kept))
  np.testing.assert_array_equal(np.concatenate(kept), x)  # the padding of the last batch is not kept


def test_short_names_of_mixed_absolute_and_relative_paths(tmp_path, monkeypatch):
  """predict --input=/abs/folder --input=relative/file: the names are shortened against one folder, not a crash."""
  monkeypatch.chdir(tmp_path)
  (tmp_path / 'a').mkdir()
  names = [str(tmp_path / 'a' / 'x.xy'), os.path.join('a', 'y.xy')]
  shorts, base = report.short_names(names)
  assert shorts == ['x.xy', 'y.xy'] and base == str(tmp_path / 'a')
  # No folder in common but the root: the names stay whole.
  assert report.short_names(['/x.xy', '/y/z.xy']) == (['/x.xy', '/y/z.xy'], '')
  page = report.render([report.Entry(n, {'file': n, 'status': 'error', 'error': f'{n}: bad', 'warning': ''})
                        for n in names], 't', 'model', 1.5418)
  assert 'y.xy' in page


def test_index_columns_terminal_line_and_report_marks():
  """predict --index's columns: the cell beside the answer, its marks on the plot, the agreement."""
  from difcon_jax.autoindex import combine
  from difcon_jax.autoindex import search  # pylint: disable=g-import-not-at-top
  hkl = np.zeros((20, 3), int)
  hkl[:3] = [[1, 0, 0], [1, 0, 1], [1, 1, 0]]
  sol = search.Solution('hexagonal', 'hexagonal', (0.05, 0.03), (4.913, 4.913, 5.405, 90, 90, 120), 113.0, 0.01,
                        196.0, 20, 80.0, 0.005, 30, 1, hkl)
  ev = combine.Evidence(np.array([20.86, 26.64, 36.54] + [40.0 + i for i in range(17)]), search.SYSTEMS[:3],
                        {'hexagonal': sol}, sol)
  row = {'file': 'q.xy', 'status': 'ok', 'error': '', 'warning': '', **_row(_ranking(1), 0, name='q.xy')}
  row['crystal_system_1'] = 'hexagonal'
  row.update(summary.index_columns(ev, 'hexagonal', 'hexagonal'))
  assert row['index_status'] == 'agreed' and row['cell_m20'] == '196.0' and row['cell_unindexed'] == '1 of 20'
  assert row['cell_lines'].split('; ')[:2] == ['20.860 1 0 0', '26.640 1 0 1']
  assert row['hexagonal_cell'].startswith('4.9130 4.9130 5.4050')
  line = summary.cell_line(row)
  assert 'a 4.913 b 4.913 c 5.405 Å' in line and 'M20 196' in line and 'one lattice' in line
  assert [m[0] for m in report.index_marks(row)] == [20.86, 26.64, 36.54]
  assert summary.index_columns(ev, 'monoclinic', 'hexagonal')['index_status'] == \
      'disagreed (network monoclinic, indexing hexagonal)'
  late = combine.Evidence(ev.two_theta, (), {}, None, timed_out=True)
  assert summary.index_columns(late, 'cubic', 'cubic')['index_status'] == "search out of time: the network's ranking"
