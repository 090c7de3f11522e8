"""launch/hypotheses_table.py: seeds averaged with their half-range, a run still training left out of the numbers."""

import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _table_module():
  spec = importlib.util.spec_from_file_location('hypotheses_table', os.path.join(ROOT, 'launch', 'hypotheses_table.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _run(folder, steps_done, steps, invariance, finished):
  os.makedirs(folder)
  rows = [{'step': s, 'equivariance/crystal_system_top1': 0.5, 'invariance/crystal_system_top1': inv,
           'invariance_nuisance/crystal_system_top1': 0.45} for s, inv in zip(range(1, steps_done + 1), invariance)]
  with open(os.path.join(folder, 'metrics.jsonl'), 'w') as f:
    f.write(''.join(json.dumps(r) + '\n' for r in rows))
  with open(os.path.join(folder, 'config.json'), 'w') as f:
    json.dump({'steps': steps}, f)
  if finished:
    with open(os.path.join(folder, 'final_metrics.json'), 'w') as f:
      json.dump({'step': steps_done}, f)


def test_seeds_are_averaged_and_a_running_seed_is_left_out(tmp_path):
  table = _table_module()
  runs = [{'name': f'A[seed={s}]', 'model': 'A'} for s in (0, 1, 2)] + [{'name': 'B[seed=0]', 'model': 'B'}]
  _run(tmp_path / 'A_seed=0_', 2, 2, [0.40, 0.30], finished=True)
  _run(tmp_path / 'A_seed=1_', 2, 2, [0.44, 0.34], finished=True)
  _run(tmp_path / 'A_seed=2_', 1, 2, [0.90], finished=False)  # training: its 0.90 must not count yet
  text = table.table(runs, str(tmp_path))
  row_a = next(l for l in text.splitlines() if l.startswith('| A |'))
  # invariance at the end 0.30 / 0.34 -> 32.0 ± 2.0; at the peak 0.40 / 0.44 (step 1 each) -> 42.0 ± 2.0
  assert row_a.startswith('| A | 2 (+1 running) | 2 | 50.0 ± 0.0 | 32.0 ± 2.0 | 42.0 ± 2.0 (1,1) |'), row_a
  assert '| B | 0 | not run |' in text
