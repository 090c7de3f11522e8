"""autoindex/combine.py: the network's crystal system and the search's cells in one ranking."""

import time

import numpy as np
import pytest

from difcon_jax.crystallography import spacegroups
from difcon_jax.autoindex import combine
from difcon_jax.autoindex import search

SYSTEMS = spacegroups.CRYSTAL_SYSTEMS


def _solution(system, label=None, m=50.0, unindexed=0):
  return search.Solution(system, label or system, (0.1,), (5, 5, 5, 90, 90, 90), 125.0, 0.0, m, 20, 30.0, 0.01, 25,
                         unindexed, np.zeros((20, 3), int))


def _evidence(answer=None, searched=search.SYSTEMS, timed_out=False, lines=20):
  best = {answer: _solution(answer)} if answer else {}
  return combine.Evidence(np.linspace(10, 80, lines), tuple(searched), best, best.get(answer), timed_out)


def _probs(system, p=0.6):
  out = np.full(7, (1 - p) / 6)
  out[SYSTEMS.index(system)] = p
  return out


def test_features_have_their_names_and_read_the_evidence():
  f = combine.features(_probs('cubic'), _evidence('tetragonal', searched=('cubic', 'tetragonal', 'hexagonal')))
  names = combine.feature_names()
  assert f.shape == (len(names),)
  get = dict(zip(names, f))
  assert get['log_p_network_cubic'] == pytest.approx(np.log(0.6))
  assert get['tetragonal_found'] == 1 and get['tetragonal_accepted'] == 1 and get['cubic_found'] == 0
  assert get['orthorhombic_searched'] == 0 and get['hexagonal_searched'] == 1
  assert get['tetragonal_log1p_m'] == pytest.approx(np.log1p(50))
  assert get['search_answer_tetragonal'] == 1 and sum(get[f'search_answer_{c}'] for c in combine.CLASSES) == 1


def _fitted(n=300, seed=0):
  """A combination fitted where the truth is the search's answer when it has one, the network's otherwise: it
  must learn to follow the search."""
  rng = np.random.default_rng(seed)
  probs, evidence, truth = [], [], []
  for _ in range(n):
    true = rng.choice(['monoclinic', 'orthorhombic', 'tetragonal', 'cubic', 'hexagonal'])
    wrong = rng.choice([s for s in SYSTEMS if s != true])
    probs.append(_probs(wrong if rng.random() < 0.6 else true))  # the network is right 40% of the time
    evidence.append(_evidence(str(true)))
    truth.append(SYSTEMS.index(true))
  return combine.fit(np.array(probs), evidence, np.array(truth), {'data': 'test'}), np.array(probs), evidence, truth


def test_fit_learns_to_follow_the_evidence_and_round_trips(tmp_path):
  c, probs, evidence, truth = _fitted()
  lattice = lambda x: np.where(np.asarray(x) == SYSTEMS.index('trigonal'), SYSTEMS.index('hexagonal'), x)
  both = lattice(np.argmax(combine.combined_probs(probs, evidence, c), 1))  # trigonal vs hexagonal: the network's
  network = lattice(np.argmax(probs, 1))
  assert np.mean(network == lattice(truth)) < 0.5 and np.mean(both == lattice(truth)) > 0.95
  assert c.record['fitted_on'] == 300 and c.record['data'] == 'test'
  path = tmp_path / combine.COMBINATION_FILE
  c.save(str(path))
  again = combine.load(str(path))
  np.testing.assert_allclose(combine.combined_probs(probs, evidence, again), combine.combined_probs(probs, evidence, c))
  assert combine.find(str(tmp_path)) is not None and combine.find(str(tmp_path / 'none')) is None
  path.write_text('{"format": 1}')
  with pytest.raises(combine.CombinationError, match=combine.COMBINATION_FILE):
    combine.load(str(path))


def test_trigonal_and_hexagonal_stay_the_networks_call_and_unusable_searches_keep_its_ranking():
  c, *_ = _fitted()
  net = np.array([[0.02, 0.02, 0.02, 0.02, 0.6, 0.3, 0.02], [0.02, 0.02, 0.02, 0.02, 0.1, 0.8, 0.02],
                  _probs('cubic'), _probs('cubic'), _probs('cubic')])
  ev = [_evidence('hexagonal'), _evidence('hexagonal'), _evidence('tetragonal', timed_out=True),
        _evidence('tetragonal', lines=4), _evidence('tetragonal')]
  out = combine.combined_probs(net, ev, c)
  np.testing.assert_allclose(out.sum(1), 1, rtol=1e-9)
  tri, hexa = SYSTEMS.index('trigonal'), SYSTEMS.index('hexagonal')
  for i in (0, 1):  # the lattice class from the combination, split in the network's ratio
    assert out[i, tri] + out[i, hexa] > 0.9
    assert out[i, tri] / out[i, hexa] == pytest.approx(net[i, tri] / net[i, hexa])
  np.testing.assert_array_equal(out[2], net[2])  # out of time: the network's
  np.testing.assert_array_equal(out[3], net[3])  # too few lines to search
  assert np.argmax(out[4]) == SYSTEMS.index('tetragonal')


def test_search_stops_at_its_deadline():
  # Lines of a cubic cell (a = 5 Å): with the deadline already past, nothing is searched and the result says so.
  q = np.array([3, 4, 8, 11, 12, 16, 19, 20, 24, 27]) / 25.0
  tt = 2 * np.degrees(np.arcsin(1.5406 * np.sqrt(q) / 2))
  late = search.index(tt, 1.5406, deadline=time.process_time() - 1)
  assert late.timed_out and late.seconds == {} and late.best is None
  full = search.index(tt, 1.5406, deadline=time.process_time() + 60)
  assert not full.timed_out and full.best is not None and full.best.crystal_system == 'cubic'


def _model_with_combination(tmp_path):
  """A copy of the bundled model with a combination fitted on made-up evidence (the commands are what is tested)."""
  import shutil  # pylint: disable=g-import-not-at-top
  from difcon_jax.inference import model as inference  # pylint: disable=g-import-not-at-top
  folder = tmp_path / 'model'
  shutil.copytree(inference.BUNDLED_MODEL, folder)
  (folder / combine.COMBINATION_FILE).unlink(missing_ok=True)
  c, *_ = _fitted(120)
  c.save(str(folder / combine.COMBINATION_FILE))
  return str(folder)


def _run(args, cwd):
  import subprocess, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  return subprocess.run([sys.executable, '-m', *args], capture_output=True, text=True, cwd=cwd, timeout=900)


@pytest.mark.slow
def test_predict_and_evaluate_with_index(tmp_path):
  """predict --index shows each pattern's cell and the combined answer; evaluate --index scores DIFCON+INDEX; a
  model without a combination is refused before any work."""
  import csv  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  model = _model_with_combination(tmp_path)
  example = os.path.join(root, 'examples', 'quartz_mo.xy')
  r = _run(['difcon_jax.predict', f'--checkpoint={model}', f'--input={example}', '--index', '--index_budget=30',
            f'--output={tmp_path / "p.csv"}', f'--report={tmp_path / "report"}'], root)
  assert r.returncode == 0, r.stderr[-2000:]
  assert 'cell (hexagonal metric): a 4.913 b 4.913 c 5.405 Å' in r.stdout and 'M20 19' in r.stdout
  row = next(csv.DictReader(open(tmp_path / 'p.csv')))
  assert row['index_crystal_system'] == 'hexagonal' and float(row['hexagonal_m20']) > 100
  assert row['cubic_cell'] and row['index_status'] in ('agreed', 'disagreed (network tetragonal, indexing hexagonal)')
  page = open(tmp_path / 'report' / 'index.html').read()
  assert 'class="mark"' in page and 'Indexing:' in page and 'M20' in page
  # evaluate --index on a few measured patterns (the example file, labelled as quartz).
  (tmp_path / 'set').mkdir()
  (tmp_path / 'set' / 'labels.csv').write_text('file,space_group\nquartz_mo.xy,154\n')
  os.symlink(example, tmp_path / 'set' / 'quartz_mo.xy')
  r = _run(['difcon_jax.evaluate', f'--checkpoint={model}', '--set=experimental', f'--data={tmp_path / "set"}',
            f'--labels={tmp_path / "set" / "labels.csv"}', '--index', '--index_budget=30',
            f'--out={tmp_path / "eval"}'], root)
  assert r.returncode == 0, r.stderr[-2000:]
  m = json.load(open(tmp_path / 'eval' / 'metrics.json'))
  assert m['index']['crystal_system_top1_indexing'] == 0.0  # quartz is trigonal; the search calls it hexagonal
  assert m['examples'] == 1 and 'DIFCON+INDEX crystal system top-1' in r.stdout
  # No combination beside the model: the network's ranking, the cells beside it, and a note saying so; --noindex:
  # no search at all.
  os.remove(os.path.join(model, combine.COMBINATION_FILE))
  r = _run(['difcon_jax.predict', f'--checkpoint={model}', f'--input={example}', '--index_budget=30',
            f'--output={tmp_path / "q.csv"}'], root)
  assert r.returncode == 0 and 'combination.json' in r.stderr and 'M20 19' in r.stdout
  r = _run(['difcon_jax.predict', f'--checkpoint={model}', f'--input={example}', '--noindex',
            f'--output={tmp_path / "n.csv"}'], root)
  assert r.returncode == 0 and 'index_status' not in open(tmp_path / 'n.csv').readline()
  r = _run(['difcon_jax.evaluate', f'--checkpoint={model}', '--set=experimental', f'--data={tmp_path / "set"}',
            f'--labels={tmp_path / "set" / "labels.csv"}', '--index', f'--out={tmp_path / "eval2"}'], root)
  assert r.returncode == 2 and 'combination.json' in r.stderr
