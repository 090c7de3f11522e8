"""launch/learning_curves.py: one row per evaluation with the examples, training minutes and CPU minutes behind it."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _workdir(folder, rows):
  os.makedirs(os.path.join(folder, 'checkpoints'))
  with open(os.path.join(folder, 'config.json'), 'w') as f:
    json.dump({'batch_size': 10}, f)
  with open(os.path.join(folder, 'metrics.jsonl'), 'w') as f:
    f.write(''.join(json.dumps(r) + '\n' for r in rows))


def test_rows_at_each_evaluation_with_their_cost(tmp_path):
  # Steps 1-2 at 10 examples/s (2 s), steps 3-4 at 5 examples/s (4 s): 6 s of training by step 4; the CPU count
  # is the trainer's, read from the last log line at or before the evaluation.
  _workdir(tmp_path / 'run', [
      {'step': 2, 'train/examples_per_s': 10.0, 'train/cpu_s': 60.0},
      {'step': 2, 'equivariance/crystal_system_top1': 0.25},
      {'step': 4, 'train/examples_per_s': 5.0, 'train/cpu_s': 180.0},
      {'step': 4, 'equivariance/crystal_system_top1': 0.5, 'invariance_nuisance/crystal_system_top1': 0.4}])
  (tmp_path / 'run.log').write_text('a sweep log beside the run\n')
  out = subprocess.run([sys.executable, os.path.join(ROOT, 'launch', 'learning_curves.py'), str(tmp_path / 'run'),
                        str(tmp_path / 'run.log'), '--every=1'], capture_output=True, text=True, cwd=ROOT)
  assert out.returncode == 0, out.stderr[-2000:]
  rows = [l for l in out.stdout.splitlines() if l.startswith('| run | ') and not l.startswith('| run | step')]
  assert rows[0].startswith('| run | 2 | 20 | 0.0 | 1.0 | 0.250 |'), rows
  assert rows[1].startswith('| run | 4 | 40 | 0.1 | 3.0 | 0.500 |') and rows[1].endswith('| 0.400 |'), rows
  assert 'run.log: not a training workdir' in out.stderr


def test_a_training_column_is_the_mean_since_the_previous_evaluation(tmp_path):
  _workdir(tmp_path / 'run', [
      {'step': 1, 'train/accuracy_crystal_system': 0.1},
      {'step': 2, 'train/accuracy_crystal_system': 0.3},
      {'step': 2, 'lab/crystal_system_top1': 0.25},
      {'step': 3, 'train/accuracy_crystal_system': 0.5},
      {'step': 4, 'train/accuracy_crystal_system': 0.7},
      {'step': 4, 'lab/crystal_system_top1': 0.5}])
  out = subprocess.run([sys.executable, os.path.join(ROOT, 'launch', 'learning_curves.py'), str(tmp_path / 'run'),
                        '--every=1', '--columns=lab/crystal_system_top1,train/accuracy_crystal_system'],
                       capture_output=True, text=True, cwd=ROOT)
  assert out.returncode == 0, out.stderr[-2000:]
  rows = [l for l in out.stdout.splitlines() if l.startswith('| run | ') and not l.startswith('| run | step')]
  assert rows[0].endswith('| 0.250 | 0.200 |') and rows[1].endswith('| 0.500 | 0.600 |'), rows
