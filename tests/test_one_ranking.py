"""One ranking: the heads' ranking, the metrics computed from it, and evaluate's per-pattern rows equal predict's."""

import csv
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from difcon_jax.evaluation import metrics
from difcon_jax.crystallography import diffraction
from difcon_jax.crystallography import spacegroups
from difcon_jax.crystallography import structure
from difcon_jax.models import heads
from conftest import STRUCTURES
import ranking_helpers
from difcon_jax.inference import rows as summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Structures of tests/data with the space group their CIF states.
LABELLED = {'anatase': 141, 'baddeleyite': 14, 'corundum': 167, 'forsterite_pbnm': 62, 'ga2o3': 12, 'kyanite': 2,
            'magnesium': 194, 'nacl': 225, 'quartz': 154, 'si': 227, 'zno': 186}


def _logits(n, seed=0, scale=3.0):
  rng = np.random.default_rng(seed)
  return {'crystal_system': jnp.asarray(rng.normal(size=(n, 7)) * scale),
          'extinction_group': jnp.asarray(rng.normal(size=(n, spacegroups.num_extinction_groups())) * scale),
          'space_group': tuple(jnp.asarray(rng.normal(size=(n, m)) * scale) for m in heads.HEAD_SIZES)}


def test_rank_starts_with_predict_and_keeps_the_predicted_system_first():
  logits = _logits(200)
  top = jax.device_get(heads.rank(logits, 10))
  pred = jax.device_get(ranking_helpers.top1_labels(logits))
  for h in heads.HEADS:
    np.testing.assert_array_equal(top[h][0][:, 0], pred[h])
  cs, sg = top['crystal_system'][0][:, 0], top['space_group'][0]
  for i in range(len(cs)):
    n = len(heads.SYSTEM_GROUPS[cs[i]])
    inside = [spacegroups.crystal_system_index(int(s)) == cs[i] for s in sg[i]]
    assert inside == [r < n for r in range(10)]  # the system's groups first, then only others
    assert len(set(sg[i].tolist())) == 10 and 0 not in sg[i]
  # Probabilities: the joint p(cs) p(sg | cs) of each listed group; the crystal systems' sorted.
  joint = np.exp(np.asarray(heads.space_group_log_probs(logits)))
  np.testing.assert_allclose(top['space_group'][1], np.take_along_axis(joint, sg, 1), rtol=1e-5)
  assert (np.diff(top['crystal_system'][1], axis=1) <= 0).all()


def test_extinction_groups_of_the_predicted_system_come_first():
  """The extinction groups listed first belong to the first crystal system, best first by p(eg); the rest follow,
  also by p(eg); probabilities are the extinction-group head's."""
  logits = _logits(300, seed=2)
  k = 12  # more than the groups of every system but orthorhombic's 44 and tetragonal's 31
  top = jax.device_get(heads.rank(logits, k))
  cs, (eg, eg_p) = top['crystal_system'][0][:, 0], top['extinction_group']
  p = np.asarray(jax.nn.softmax(logits['extinction_group'], -1))
  system_of = np.array([spacegroups.crystal_system_index(m[0]) for m in spacegroups.extinction_table().members])
  for i in range(len(cs)):
    n = min(int((system_of == cs[i]).sum()), k)
    assert (system_of[eg[i]] == cs[i]).tolist() == [r < n for r in range(k)]
    own = np.flatnonzero(system_of == cs[i])
    assert eg[i, :n].tolist() == own[np.argsort(-p[i, own], kind='stable')][:n].tolist()
    others = np.flatnonzero(system_of != cs[i])
    assert eg[i, n:].tolist() == others[np.argsort(-p[i, others], kind='stable')][:k - n].tolist()
    np.testing.assert_allclose(eg_p[i], p[i, eg[i]], rtol=1e-5)
  m = metrics.summary({h: i for h, (i, _) in top.items()},
                      metrics.labels_of_space_groups(np.random.default_rng(0).integers(1, 231, len(cs))))
  assert m['extinction_group_outside_predicted_crystal_system'] == 0.0


def test_quartz_like_logits_keep_the_extinction_group_in_the_system():
  """Hexagonal first but a trigonal extinction group likelier (the case of a quartz pattern): the hexagonal group
  is listed first, the trigonal one right after the hexagonal ones."""
  n_eg = spacegroups.num_extinction_groups()
  cs = np.zeros((1, 7))
  cs[0, 5], cs[0, 4] = 2.0, 1.8  # hexagonal, then trigonal
  eg = np.zeros((1, n_eg))
  p3, p63mc = spacegroups.extinction_group(143), spacegroups.extinction_group(186)
  eg[0, p3], eg[0, p63mc] = 3.0, 2.0
  logits = {'crystal_system': jnp.asarray(cs), 'extinction_group': jnp.asarray(eg),
            'space_group': tuple(jnp.zeros((1, m)) for m in heads.HEAD_SIZES)}
  ranked = jax.device_get(heads.rank(logits, 10))['extinction_group'][0][0].tolist()
  hexagonal = [i for i, m in enumerate(spacegroups.extinction_table().members) if 168 <= m[0] <= 194]
  assert ranked[0] == p63mc and ranked[len(hexagonal)] == p3
  assert int(ranking_helpers.top1_labels(logits)['extinction_group'][0]) == p63mc


def test_rank_is_a_prefix_of_a_longer_rank():
  logits = _logits(50, seed=1)
  short, long = jax.device_get(heads.rank(logits, 3)), jax.device_get(heads.rank(logits, 40))
  for h in heads.HEADS:
    np.testing.assert_array_equal(short[h][0], long[h][0][:, :3])


def test_metrics_by_hand():
  ranked = {'crystal_system': np.array([[1, 2], [3, 0], [6, 5]]),
            'space_group': np.array([[3, 5], [168, 1], [200, 225]])}
  labels = {'crystal_system': np.array([1, 0, 4]), 'space_group': np.array([5, 168, 225])}
  acc = metrics.accuracies(ranked, labels, ks=(1, 2))
  assert acc == {'crystal_system_top1': 1 / 3, 'crystal_system_top2': 2 / 3, 'space_group_top1': 1 / 3,
                 'space_group_top2': 1.0}
  # SG 3 (monoclinic) with CS 1 and 200 (cubic) with 6: inside; 168 (hexagonal) with CS 3 (tetragonal): outside.
  assert metrics.outside_rate(ranked['crystal_system'][:, 0], ranked['space_group'][:, 0]) == pytest.approx(1 / 3)
  assert metrics.confusion(labels['crystal_system'], ranked['crystal_system'][:, 0]).tolist()[4][6] == 1
  lab = metrics.labels_of_space_groups([1, 14, 225])
  assert lab['crystal_system'].tolist() == [0, 1, 6] and lab['space_group'].tolist() == [1, 14, 225]


def test_crystal_system_accuracy_per_true_system_by_hand():
  # True: two monoclinic (one right), one cubic (wrong, called tetragonal), one trigonal (right); no triclinic.
  labels = metrics.labels_of_space_groups([14, 15, 225, 150])
  ranked = {'crystal_system': np.array([[1], [2], [3], [4]]), 'space_group': np.array([[14], [62], [123], [150]]),
            'extinction_group': labels['extinction_group'][:, None]}
  by = metrics.summary(ranked, labels)['crystal_system_top1_by_system']
  assert list(by) == list(spacegroups.CRYSTAL_SYSTEMS)
  assert by['monoclinic'] == {'examples': 2, 'top1': 0.5} and by['cubic'] == {'examples': 1, 'top1': 0.0}
  assert by['trigonal'] == {'examples': 1, 'top1': 1.0} and by['triclinic'] == {'examples': 0, 'top1': None}
  assert sum(v['examples'] for v in by.values()) == 4


def test_top1_never_exceeds_top5():
  for seed in range(5):
    logits = _logits(300, seed=seed, scale=0.5)  # nearly flat: the joint and in-system orders differ often
    rng = np.random.default_rng(seed)
    labels = metrics.labels_of_space_groups(rng.integers(1, 231, 300))
    ranked = {h: i for h, (i, _) in jax.device_get(heads.rank(logits, 5)).items()}
    acc = metrics.accuracies(ranked, labels)
    for h in heads.HEADS:
      assert acc[f'{h}_top1'] <= acc[f'{h}_top5']


@pytest.fixture(scope='module')
def measured_folder(tmp_path_factory):
  """Simulated Cu Kα patterns of tests/data's structures as .xy files in a folder, and labels.csv beside it."""
  folder = tmp_path_factory.mktemp('measured') / 'patterns'
  folder.mkdir()
  rows = []
  for name, sg in LABELLED.items():
    s, _ = structure.read_structure(str(STRUCTURES / f'{name}.cif'))
    p = diffraction.peak_list(s, 1.5418, 5, 90)
    tt = np.arange(5, 90, 0.01)
    y = sum(i * np.exp(-4 * np.log(2) * (tt - t) ** 2 / 0.08**2) for t, i in zip(p.two_theta, p.intensity))
    np.savetxt(folder / f'{name}.xy', np.stack([tt, 100 * y + 1.0], 1), header='wavelength 1.5418')
    rows.append(f'{name}.xy,{sg}')
  (folder.parent / 'labels.csv').write_text('file,space_group\n' + '\n'.join(rows) + '\n')
  return folder


def _run(*args):
  run = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT)
  assert run.returncode == 0, run.stderr[-2000:]
  return run


@pytest.mark.slow
def test_evaluate_rows_are_predict_rows(measured_folder, tmp_path):
  """The bundled model: evaluate's predictions.csv ranks every pattern as predict does, and its metrics are those
  of its rows."""
  out = tmp_path / 'eval'
  _run('-m', 'difcon_jax.evaluate', '--set=experimental', f'--data={measured_folder}',
       f'--labels={measured_folder.parent / "labels.csv"}', f'--out={out}', '--batch_size=4')
  # The network's ranking on both sides (predict's default adds the indexing search; evaluate does with --index).
  _run('-m', 'difcon_jax.predict', '--input', str(measured_folder), '--output', str(tmp_path / 'p.csv'),
       '--batch_size=4', '--noindex')
  evaluated = {os.path.basename(r['file']): r for r in csv.DictReader(open(out / 'predictions.csv'))}
  predicted = {os.path.basename(r['file']): r for r in csv.DictReader(open(tmp_path / 'p.csv'))}
  assert set(evaluated) == set(predicted) == {f'{n}.xy' for n in LABELLED}
  columns = [f'{h}_{r}' for h in ('crystal_system', 'extinction_group', 'space_group') for r in range(1, 6)]
  for name, row in evaluated.items():
    assert row['status'] == predicted[name]['status'] == 'ok'
    assert [row[c] for c in columns] == [predicted[name][c] for c in columns], name
    assert [row[c + '_p'] for c in columns] == [predicted[name][c + '_p'] for c in columns], name
    assert int(row['true_space_group']) == LABELLED[name[:-3]]
  m = json.load(open(out / 'metrics.json'))
  assert m['examples'] == len(LABELLED)
  for h in ('crystal_system', 'space_group'):
    truth = {'crystal_system': 'true_crystal_system', 'space_group': 'true_space_group'}[h]
    for k in (1, 5):
      hits = [any(r[f'{h}_{j}'] == r[truth] for j in range(1, k + 1)) for r in evaluated.values()]
      assert m[f'{h}_top{k}'] == pytest.approx(np.mean(hits))
    assert m[f'{h}_top1'] <= m[f'{h}_top5']
  # The ranking keeps the predicted system first.
  assert m['space_group_outside_predicted_crystal_system'] == m['extinction_group_outside_predicted_crystal_system'] \
      == 0.0


def test_garbage_logits_still_rank_real_labels():
  from difcon_jax.evaluation import sets as eval_sets
  from difcon_jax.evaluation import metrics
  from difcon_jax.models import heads
  from difcon_jax.crystallography import spacegroups
  rng = np.random.default_rng(2)
  n = 6
  for fill in (np.nan, np.inf, -np.inf, 3e38, 'mixed'):
    def head(size):
      if fill == 'mixed':
        return rng.choice([np.nan, np.inf, -np.inf, 1e38, -1e38, 0.5], (n, size)).astype(np.float32)
      return np.full((n, size), fill, np.float32)
    logits = {'crystal_system': head(7), 'extinction_group': head(spacegroups.num_extinction_groups()),
              'space_group': [head(s) for s in heads.HEAD_SIZES]}
    ranked = heads.rank(logits, 5)
    sg = np.asarray(ranked['space_group'][0])
    assert sg.min() >= 1 and sg.max() <= 230, (fill, sg)
    assert all(len(set(row)) == 5 for row in sg), (fill, sg)
    assert np.all(np.asarray(ranking_helpers.top1_labels(logits)['space_group']) >= 1)
    batch = eval_sets.Batch(np.zeros((n, 10), np.float32), [f'p{i}' for i in range(n)],
                            metrics.labels_of_space_groups(rng.integers(1, 231, n)), n)
    m, preds = eval_sets.evaluate(lambda x: (logits, {}), [batch])
    assert m['examples'] == n and 0 <= m['space_group_top5'] <= 1
    summary.prediction_columns(preds.ranked, 0, 5)
