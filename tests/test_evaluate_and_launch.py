"""evaluate, the HAND baseline, the sweep runner and the cluster launch scripts (dry runs)."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from difcon_jax import hand

import train_helpers
from difcon_jax import sweeps
import input_helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def setup(tiny_corpus, tiny_workdir, tmp_path_factory):
  root = tmp_path_factory.mktemp('eval')
  return tiny_corpus, tiny_workdir, train_helpers.measured_npz(tiny_corpus, root / 'measured.npz')


def _run(*args, **kw):
  return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, **kw)


@pytest.mark.slow
@pytest.mark.parametrize('which', ['equivariance', 'invariance', 'experimental'])
def test_evaluate_writes_metrics_and_pictures(setup, which, tmp_path):
  """The counts are those of the set (every pattern once, the true classes its labels) and the crystal-system
  top-1 is the diagonal of the confusion matrix: two outputs computed from the same predictions. (The accuracy
  arithmetic itself is checked on hand-made rankings in test_one_ranking.py.)"""
  from difcon_jax.crystallography import spacegroups
  from difcon_jax.data import corpus as corpus_lib
  corpus, work, measured = setup
  extra = [f'--data={measured}'] if which == 'experimental' else []
  run = _run('-m', 'difcon_jax.evaluate', f'--checkpoint={work}', f'--set={which}', f'--out={tmp_path}',
             '--figure_structures=3', *extra)
  assert run.returncode == 0, run.stderr[-1500:]
  m = json.load(open(tmp_path / 'metrics.json'))
  if which == 'experimental':
    truth = [spacegroups.crystal_system_index(int(s)) for s in np.load(measured)['space_group']]
  else:
    truth = corpus_lib.load_arrays(corpus, 'test')['crystal_system']
  assert m['examples'] == len(truth)
  confusion = np.array(m['crystal_system_confusion'])
  np.testing.assert_array_equal(confusion.sum(1), np.bincount(truth, minlength=7))  # rows: the true systems
  assert m['crystal_system_top1'] == pytest.approx(np.trace(confusion) / len(truth))
  for h in ('crystal_system', 'extinction_group', 'space_group'):
    assert 0 <= m[f'{h}_top1'] <= m[f'{h}_top5'] <= 1
  assert 0 <= m['space_group_outside_predicted_crystal_system'] <= 1
  assert (tmp_path / 'crystal_system_confusion.png').read_bytes()[:4] == b'\x89PNG'
  if which != 'experimental':
    assert (tmp_path / 'embedding_similarity.png').read_bytes()[:4] == b'\x89PNG'
    assert -1 <= m['similarity_between_structures'] <= 1 and -1 <= m['similarity_within_structure'] <= 1


def test_evaluate_examples_takes_the_first_structures(setup, tmp_path):
  from difcon_jax.data import corpus as corpus_lib
  corpus, work, measured = setup
  run = _run('-m', 'difcon_jax.evaluate', f'--checkpoint={work}', '--set=equivariance', f'--out={tmp_path}',
             '--figure_structures=3', '--examples=5')
  assert run.returncode == 0, run.stderr[-1500:]
  m = json.load(open(tmp_path / 'metrics.json'))
  truth = corpus_lib.load_arrays(corpus, 'test')['crystal_system'][:5]
  assert m['examples'] == 5
  np.testing.assert_array_equal(np.array(m['crystal_system_confusion']).sum(1), np.bincount(truth, minlength=7))
  run = _run('-m', 'difcon_jax.evaluate', f'--checkpoint={work}', '--set=experimental', f'--data={measured}',
             f'--out={tmp_path / "m"}', '--examples=5')
  assert run.returncode == 2 and '--examples=5' in run.stderr and 'only with a simulated set' in run.stderr


def test_evaluate_reads_the_corpus_the_set_names(setup, tmp_path):
  """A set with its own corpus in the model's config (a model trained on real structures scored on the synthetic
  corpus's sets) is evaluated on that corpus, as the trainer evaluated it, not on the training corpus."""
  import shutil
  from difcon_jax.data import corpus as corpus_lib
  corpus, work, _ = setup
  model = tmp_path / 'model'
  shutil.copytree(work, model, ignore=shutil.ignore_patterns('tensorboard'))
  config = json.load(open(model / 'config.json'))
  config['corpus'] = str(tmp_path / 'training_corpus_not_here')
  config['evals']['equivariance']['corpus'] = corpus
  json.dump(config, open(model / 'config.json', 'w'))
  run = _run('-m', 'difcon_jax.evaluate', f'--checkpoint={model}', '--set=equivariance', f'--out={tmp_path / "e"}',
             '--figure_structures=3', '--examples=4')
  assert run.returncode == 0, run.stderr[-1500:]
  assert 'not here' not in run.stdout
  m = json.load(open(tmp_path / 'e' / 'metrics.json'))
  truth = corpus_lib.load_arrays(corpus, 'test')['crystal_system'][:4]
  np.testing.assert_array_equal(np.array(m['crystal_system_confusion']).sum(1), np.bincount(truth, minlength=7))


def test_hand_baseline(setup):
  corpus, _, measured = setup
  results = hand.run(corpus, measured, trees=20)
  for name in ('equivariance', 'invariance', 'experimental'):
    m = results[name]
    assert 0 <= m['crystal_system_top1'] <= 1 and 0 <= m['space_group_outside_predicted_crystal_system'] <= 1
  assert results['experimental']['examples'] == 6


def test_hand_features():
  f = hand.features(np.array([[12.0, 5.0, 95.0, 0.0, 30.0]]), np.array([[1.0, 0.5, 1.0, 0.0, 0.001]]))
  assert f[0, :3].tolist() == [5.0, 12.0, 0.0] and f[0, 10] == 2  # sorted, >90° and weak peaks left out


@pytest.mark.slow
def test_sweep_two_run_grid(setup, tmp_path):
  corpus, _, measured = setup
  sweep = tmp_path / 'toy.py'
  tiny = dict(corpus=corpus, num_bins=2000, batch_size=8, steps=2, log_every=1, eval_every=2, eval_batch_size=8,
              eval_examples=8, checkpoint_every=2, **{'model.width': 8, 'model.embedding_dim': 16})
  sweep.write_text(
      'from difcon_jax.sweeps import grid\n'
      f'def get_sweep():\n  return grid({{"name": "q", "config": "configs/quickstart.py", "overrides": {tiny!r}}}, '
      'loss__ssl_weight=[0.0, 0.005])\n')
  run = _run('launch/sweep.py', f'--sweep={sweep}', f'--root={tmp_path / "runs"}', '--parallel=2',
             f'--experimental={measured}')
  assert run.returncode == 0, run.stdout[-1500:] + run.stderr[-1500:]
  rows = list(csv.DictReader(open(tmp_path / 'runs' / 'results.csv')))
  assert [r['model'] for r in rows] == ['q[loss.ssl_weight=0.0]', 'q[loss.ssl_weight=0.005]']
  for r in rows:
    for s in ('equivariance', 'invariance', 'experimental'):
      assert 0 <= float(r[f'{s}/crystal_system']) <= 1
  assert '| q[loss.ssl_weight=0.0] |' in (tmp_path / 'runs' / 'results.md').read_text()
  for r in rows:  # the cost columns: 2 steps of 8 structures, two views with the contrastive loss
    assert (int(r['steps']), int(r['examples_seen'])) == (2, 16) and float(r['cpu_minutes']) > 0
    assert 0 <= float(r['experimental/space_group']) <= float(r['experimental/space_group_top5']) <= 1
  assert [int(r['patterns_seen']) for r in rows] == [16, 32]
  timing = (tmp_path / 'runs' / 'q_loss.ssl_weight=0.0_.timing.json').read_text()
  # Run again: both runs are finished and kept (nothing trains or evaluates again), and the table is written
  # into a document between its markers, the rest of the document untouched.
  doc = tmp_path / 'doc.md'
  doc.write_text('# Results\n\nbefore\n<!-- sweep table: begin (written by launch/sweep.py) -->\nold\n'
                 '<!-- sweep table: end -->\nafter\n')
  again = _run('launch/sweep.py', f'--sweep={sweep}', f'--root={tmp_path / "runs"}', f'--experimental={measured}',
               f'--results_csv={tmp_path / "copy.csv"}', f'--results_md={doc}')
  assert again.returncode == 0, again.stdout[-1500:] + again.stderr[-1500:]
  assert again.stdout.count('finished before, kept') == 2
  assert (tmp_path / 'runs' / 'q_loss.ssl_weight=0.0_.timing.json').read_text() == timing
  assert (tmp_path / 'copy.csv').read_text() == (tmp_path / 'runs' / 'results.csv').read_text()
  text = doc.read_text()
  assert text.startswith('# Results\n\nbefore\n') and text.endswith('after\n') and 'old' not in text
  assert text.count('| q[loss.ssl_weight=0.0] |') == 1
  # --only: the other run is neither run nor kept, but stays in the table.
  only = _run('launch/sweep.py', f'--sweep={sweep}', f'--root={tmp_path / "runs"}', '--only=0\\.005\\]')
  assert only.returncode == 0 and '[1/1] q[loss.ssl_weight=0.005]: finished before, kept' in only.stdout
  assert 'q[loss.ssl_weight=0.0]:' not in only.stdout and '| q[loss.ssl_weight=0.0] |' in only.stdout
  collect = _run('launch/sweep.py', f'--sweep={sweep}', f'--root={tmp_path / "runs"}', '--collect_only', '--rerun')
  assert collect.returncode == 0 and '[1/' not in collect.stdout and '| q[loss.ssl_weight=0.005] |' in collect.stdout


def test_sweep_table_averages_seeds_and_shows_the_paper():
  import importlib.util
  spec = importlib.util.spec_from_file_location('launch_sweep_table', os.path.join(ROOT, 'launch', 'sweep.py'))
  sweep = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(sweep)
  rows = [{'run': 'A[seed=0]', 'model': 'A', 'equivariance/crystal_system': 0.5, 'cpu_minutes': 30.0},
          {'run': 'A[seed=1]', 'model': 'A', 'equivariance/crystal_system': 0.6, 'cpu_minutes': 32.0},
          {'run': 'B', 'model': 'B', 'equivariance/crystal_system': 0.4}]
  a, b = sweep.aggregate(rows)
  assert a['seeds'] == 2 and np.isclose(a['equivariance/crystal_system'], 0.55) and a['cpu_minutes'] == 31.0
  assert np.isclose(a['spread/equivariance/crystal_system'], 0.1) and 'spread/equivariance/crystal_system' not in b
  text = sweep.markdown([a, b], paper={'A': {'equivariance/crystal_system': 0.89}})
  assert '| A (2 seeds) | 55.0 ±5.0 |' in text and '| *paper: A* | 89.0 |' in text and '| B | 40.0 |' in text


def test_paper_ablation_and_launch_dry_runs():
  run = _run('launch/sweep.py', '--sweep=configs/sweeps/paper_ablation.py', '--root=/tmp/difcon_dry', '--dry_run')
  assert run.returncode == 0
  for model in ('hand', 'cnn_static', 'cnn_aug', 'difcon_simclr', 'difcon_barlow'):
    assert model in run.stdout
  slurm = subprocess.run(['bash', 'launch/slurm.sh', 'configs/difcon_barlow.py', 'runs/x'], capture_output=True,
                         text=True, cwd=ROOT, env=dict(os.environ, DRY_RUN='1'))
  assert slurm.returncode == 0 and 'srun' in slurm.stdout and '--config.distributed=True' in slurm.stdout
  tpu = subprocess.run(['bash', 'launch/tpu_vm.sh', 'configs/difcon_barlow.py', 'gs://b/r'], capture_output=True,
                       text=True, cwd=ROOT, env=dict(os.environ, DRY_RUN='1', TPU='t', ZONE='z'))
  assert tpu.returncode == 0 and '--worker=all' in tpu.stdout


def _sweep_file(tmp_path, name, runs):
  path = tmp_path / name
  path.write_text(f'def get_sweep():\n  return {runs!r}\n')
  return path


def test_evaluate_refused_leaves_no_folders_and_refuses_ignored_flags(tmp_path):
  npz = tmp_path / 'set.npz'
  npz.write_bytes(b'')
  run = input_helpers.run('-m', 'difcon_jax.evaluate', '--set=experimental', f'--data={npz}', f'--labels={tmp_path / "l.csv"}',
             f'--corpus={tmp_path}', f'--out={tmp_path / "out"}', f'--report={tmp_path / "report"}')
  err = input_helpers.refused(run)
  assert '--labels=' in err and 'an .npz holds its own labels' in err  # 10: not silently ignored
  assert '--corpus=' in err and 'only with a simulated set' in err
  assert not (tmp_path / 'out').exists() and not (tmp_path / 'report').exists()


def test_sweep_runs_that_share_a_folder_are_refused_before_anything(tmp_path):
  quick = 'configs/quickstart.py'
  clash = _sweep_file(tmp_path, 'clash.py', [{'name': 'a b', 'config': quick}, {'name': 'a_b', 'config': quick}])
  with pytest.raises(sweeps.SweepError, match="'a b' and 'a_b'"):
    sweeps.load(str(clash))
  lines = sweeps.clashes(['Run', 'run', 'x.log', 'x', 'results.md', 'fine'])
  assert len(lines) == 3 and "'Run' and 'run'" in lines[0] and "'x.log' and 'x'" in lines[1]
  assert "'results.md'" in lines[2]
  with pytest.raises(sweeps.SweepError, match='no runs'):
    sweeps.load(str(_sweep_file(tmp_path, 'empty.py', [])))


def test_sweep_launcher_checks_before_running(tmp_path):
  quick = 'configs/quickstart.py'
  clash = _sweep_file(tmp_path, 'clash.py', [{'name': 'a b', 'config': quick}, {'name': 'a_b', 'config': quick}])
  root = tmp_path / 'root'
  err = input_helpers.refused(input_helpers.run('launch/sweep.py', f'--sweep={clash}', f'--root={root}'))
  assert "'a b' and 'a_b'" in err and not root.exists()
  ok = _sweep_file(tmp_path, 'ok.py', [{'name': 'a', 'config': quick}, {'name': 'b', 'config': quick}])
  err = input_helpers.refused(input_helpers.run('launch/sweep.py', f'--sweep={ok}', f'--root={root}', '--only=zzz', '--parallel=0',
                      f'--results_csv={root / "results.csv"}', f'--results_md={ok}', '--set=nokey'))
  for flag in ('only', 'parallel', 'results_csv', 'results_md', 'set'):
    assert f'--{flag}=' in err
  assert not root.exists() and ok.read_text().startswith('def get_sweep')
  err = input_helpers.refused(input_helpers.run('launch/sweep.py', f'--sweep={tmp_path / "missing.py"}', f'--root={root}'))
  assert '--sweep=' in err
  dry = input_helpers.run('launch/sweep.py', f'--sweep={ok}', f'--root={root}', '--dry_run')
  assert dry.returncode == 0 and 'difcon_jax.train' in dry.stdout and not root.exists()
