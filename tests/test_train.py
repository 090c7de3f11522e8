"""Training: a smoke run, resume equivalence and the 8-device data-parallel step."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from difcon_jax import train
import train_helpers


@pytest.fixture
def tiny(tiny_corpus):
  return tiny_corpus


def _params(state):
  return [np.asarray(x) for x in jax.tree.leaves(state.params)]


def test_two_step_smoke_training(tiny_workdir):
  """The shared fixture is a real two-step run of train_and_evaluate: check what it left behind."""
  work = tiny_workdir
  final = json.load(open(os.path.join(work, 'final_metrics.json')))
  assert final['step'] == 2
  for name in ('equivariance', 'invariance'):
    for head in ('crystal_system', 'extinction_group', 'space_group'):
      assert 0.0 <= final[f'{name}/{head}_top1'] <= final[f'{name}/{head}_top5'] <= 1.0
  assert os.path.isdir(os.path.join(work, 'checkpoints', '2')) and os.path.isdir(os.path.join(work, 'best'))
  assert json.load(open(os.path.join(work, 'config.json')))['steps'] == 2
  lines = [json.loads(l) for l in open(os.path.join(work, 'metrics.jsonl'))]
  assert any('train/loss' in l for l in lines) and any('train/grad_norm' in l for l in lines)
  assert os.listdir(os.path.join(work, 'tensorboard'))


def test_resume_reaches_the_same_parameters(tiny, tmp_path):
  straight, _ = train.train_and_evaluate(train_helpers.tiny_config(tiny, steps=4), str(tmp_path / 'a'))
  train.train_and_evaluate(train_helpers.tiny_config(tiny, steps=2), str(tmp_path / 'b'))
  resumed, _ = train.train_and_evaluate(train_helpers.tiny_config(tiny, steps=4), str(tmp_path / 'b'))
  assert int(resumed.step) == 4
  for a, b in zip(_params(straight), _params(resumed)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_kill_during_saving_loses_no_saved_checkpoint(tiny, tmp_path):
  """SIGKILL a run that saves at every step (so it is most likely inside a save), then resume it."""
  import signal
  import time
  import orbax.checkpoint as ocp
  work = tmp_path / 'work'
  ckpt = work / 'checkpoints'
  helper = os.path.join(os.path.dirname(__file__), 'train_helpers.py')
  proc = subprocess.Popen([sys.executable, helper, 'train', tiny, str(work), '100000'], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
  finished = lambda: sorted(int(p.name) for p in ckpt.glob('*') if p.name.isdigit()) if ckpt.exists() else []
  deadline = time.time() + 300
  while len(finished()) < 4 and proc.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  saved_before = finished()
  proc.send_signal(signal.SIGKILL)
  _, err = proc.communicate()
  assert len(saved_before) >= 4, err[-2000:]
  # Every checkpoint that was complete before the kill is still listed and restorable.
  manager = ocp.CheckpointManager(str(ckpt))
  assert set(saved_before) <= set(manager.all_steps())
  for step in saved_before:
    restored = manager.restore(step)
    assert int(restored['step']) == step
  # And the run resumes from the newest complete one.
  latest = max(manager.all_steps())
  state, _ = train.train_and_evaluate(train_helpers.tiny_config(tiny, steps=latest + 1), str(work))
  assert int(state.step) == latest + 1


def test_static_augmentation_is_fixed_per_example(tiny):
  import jax.numpy as jnp
  from difcon_jax.augment import params as augment_params
  config = train_helpers.tiny_config(tiny)
  config.static_augmentation = True
  aug = augment_params.config('train', config.num_bins)
  batch = {'index': jnp.arange(3), 'two_theta': jnp.full((3, 4), 30.0), 'intensity': jnp.ones((3, 4))}
  a = train.augment_views(config, batch, jax.random.key(1), aug)
  b = train.augment_views(config, batch, jax.random.key(2), aug)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_eight_devices_match_one(tiny, tmp_path):
  outs = {}
  for n in (1, 8):
    env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={n}', JAX_PLATFORMS='cpu')
    out = tmp_path / f'p{n}.npz'
    run = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), 'train_helpers.py'), tiny,
                          str(out)], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    outs[n] = np.load(out)
  assert int(outs[8]['devices']) == 8 and int(outs[1]['devices']) == 1
  keys = [k for k in outs[1].files if k != 'devices']
  assert keys
  for k in keys:
    np.testing.assert_allclose(outs[8][k], outs[1][k], rtol=2e-4, atol=2e-5, err_msg=k)


def test_two_processes_match_one(tiny, tmp_path):
  """The multi-host path for real: two CPU processes joined by jax.distributed (gloo collectives), one device
  each, train two steps with checkpoints and evaluation; their parameters equal those of one process with two
  devices. (Two devices there, not one: the embedding bias feeds a BatchNorm, so its gradient is rounding noise
  that AdamW scales up to full-size steps, and only the same reduction layout reproduces it.)"""
  import socket
  helper = os.path.join(os.path.dirname(__file__), 'train_helpers.py')
  with socket.socket() as sock:
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
  base = dict(os.environ, JAX_PLATFORMS='cpu', JAX_CPU_COLLECTIVES_IMPLEMENTATION='gloo')
  runs = [([], 2, 'one')] + [([f'127.0.0.1:{port}', '2', str(i)], 1, f'two{i}') for i in range(2)]
  procs = [subprocess.Popen([sys.executable, helper, 'distributed', tiny, str(tmp_path / name[:3]),
                             str(tmp_path / f'{name}.npz'), *extra],
                            env=dict(base, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}'),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
           for extra, devices, name in runs]
  errs = [p.communicate(timeout=900)[1] for p in procs]
  for p, err in zip(procs, errs):
    assert p.returncode == 0, err[-3000:]
  ref = np.load(tmp_path / 'one.npz')
  assert int(ref['devices']) == 2 and int(ref['processes']) == 1
  keys = [k for k in ref.files if k not in ('devices', 'processes')]
  for i in range(2):
    got = np.load(tmp_path / f'two{i}.npz')
    assert int(got['processes']) == 2 and int(got['devices']) == 2
    assert sorted(got.files) == sorted(ref.files)
    for k in keys:
      np.testing.assert_allclose(got[k], ref[k], rtol=2e-4, atol=2e-5, err_msg=k)
  assert (tmp_path / 'two' / 'checkpoints' / '2').is_dir()
  assert json.load(open(tmp_path / 'two' / 'final_metrics.json'))['step'] == 2
