"""The benchmark scripts that CI runs: the accelerator check in --small mode and the input throughput, each as a
user would, reading their last JSON line."""

import json
import os
import subprocess
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(__file__), '..', 'benchmarks')


def _run(script, *args):
  run = subprocess.run([sys.executable, os.path.join(BENCHMARKS, script), *args], capture_output=True, text=True,
                       env=dict(os.environ, JAX_PLATFORMS='cpu'))
  assert run.returncode == 0, run.stderr[-3000:]
  return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_accelerator_check_small_runs_and_reports_every_key(tiny_corpus):
  out = _run('accelerator_check.py', '--small', '--json', f'--corpus={tiny_corpus}', '--steps=3', '--seconds=1',
             '--aug_batch=32')
  for key in ('patterns_per_s', 'structures_per_s', 'examples_per_s', 'mfu', 'input_wait_share', 'device',
              'memory_used_bytes'):
    assert key in out, key
  assert out['patterns_per_s'] > 0 and out['structures_per_s'] > 0 and out['examples_per_s'] > 0
  assert 0.0 <= out['input_wait_share'] <= 1.0
  assert out['mfu'] is None  # a CPU has no known peak: no made-up utilisation
  assert out['steps'] == 3 and out['network'] == 'configs/cpu.py'
  assert out['final_loss'] == out['final_loss']  # finite training loss (not NaN)


def test_input_throughput_compares_both_paths(tiny_corpus):
  out = _run('input_throughput.py', f'--corpus={tiny_corpus}', '--batch=16', '--seconds=0.5', '--json')
  assert out['structures_per_s'] > 0 and out['baseline_structures_per_s'] > 0
  assert out['ratio'] == pytest.approx(out['structures_per_s'] / out['baseline_structures_per_s'], rel=0.05)
  assert out['train_structures'] > 0 and out['batch'] == 16


@pytest.mark.slow
def test_predict_index_throughput_measures_both_sides():
  out = _run('predict_index_throughput.py', '--patterns=4', '--budget=0.3', '--workers=1', '--json')
  assert out['network_patterns_per_s'] > 0 and out['network_and_index_patterns_per_s'] > 0
  assert out['ratio'] == pytest.approx(out['network_and_index_patterns_per_s'] / out['network_patterns_per_s'])
  assert out['patterns'] == 4 and out['budget_s'] == 0.3
  # The search's CPU time, spent in its worker process, is counted; the network alone starts no process.
  assert out['network_and_index_child_cpu_s_per_pattern'] > 0 and out['network_child_cpu_s_per_pattern'] == 0
  assert out['network_and_index_cpu_s_per_pattern'] > out['network_cpu_s_per_pattern'] > 0
  assert out['idle_machine_seconds_per_1000_with_index'] == pytest.approx(
      1000 * out['network_and_index_cpu_s_per_pattern'] / os.cpu_count())
