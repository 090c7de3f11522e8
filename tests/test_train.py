"""Training: a smoke run, resume equivalence and the 8-device data-parallel step."""

import json
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from difcon_jax import train
from difcon_jax.io import workdir as workdir_lib
from difcon_jax.data import corpus as corpus_lib
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
    # What always answering the commonest crystal system scores on the evaluated examples (the first 8 of the
    # test split, in file order), counted here from the corpus.
    truth = corpus_lib.load_arrays(json.load(open(os.path.join(work, 'config.json')))['corpus'], 'test')['crystal_system'][:8]
    assert final[f'{name}/crystal_system_majority_share'] == pytest.approx(np.bincount(truth).max() / len(truth))
  assert os.path.isdir(os.path.join(work, 'checkpoints', '2')) and os.path.isdir(os.path.join(work, 'best'))
  assert json.load(open(os.path.join(work, 'config.json')))['steps'] == 2
  lines = [json.loads(l) for l in open(os.path.join(work, 'metrics.jsonl'))]
  assert any('train/loss' in l for l in lines) and any('train/grad_norm' in l for l in lines)
  assert os.listdir(os.path.join(work, 'tensorboard'))


def test_a_finished_run_started_again_changes_nothing(tiny_workdir):
  """Running a finished training again (a sweep or a user repeating the command) returns at once and keeps its
  final_metrics.json (it evaluates nothing, so it must not replace the numbers with none)."""
  before = open(os.path.join(tiny_workdir, 'final_metrics.json')).read()
  state, last_eval = train.train_and_evaluate(train_helpers.tiny_config(
      json.load(open(os.path.join(tiny_workdir, 'config.json')))['corpus'], steps=2), tiny_workdir)
  assert int(state.step) == 2 and last_eval == {}
  assert open(os.path.join(tiny_workdir, 'final_metrics.json')).read() == before


@pytest.mark.slow
def test_resume_reaches_the_same_parameters(tiny, tmp_path):
  straight, _ = train.train_and_evaluate(train_helpers.tiny_config(tiny, steps=4), str(tmp_path / 'a'))
  train.train_and_evaluate(train_helpers.tiny_config(tiny, steps=2), str(tmp_path / 'b'))
  cpu = time.process_time()
  resumed, _ = train.train_and_evaluate(train_helpers.tiny_config(tiny, steps=4), str(tmp_path / 'b'))
  cpu = time.process_time() - cpu
  assert int(resumed.step) == 4
  for a, b in zip(_params(straight), _params(resumed)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # The training's cost adds up across the interruption: the resumed run's final figures are the first run's
  # (its last log row, step 2) plus its own.
  first = [json.loads(l) for l in open(tmp_path / 'b' / 'metrics.jsonl') if '"train/cpu_s"' in l]
  at_two = next(r for r in first if r['step'] == 2)
  final = json.load(open(tmp_path / 'b' / 'final_metrics.json'))
  assert at_two['train/cpu_s'] > 0.2 * cpu  # the first run compiled too: a share worth checking for
  assert final['train/cpu_s'] == pytest.approx(at_two['train/cpu_s'] + cpu, rel=0.1)
  assert 0 < at_two['train/wall_s'] < final['train/wall_s']


@pytest.mark.slow
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


@pytest.mark.slow
def test_static_augmentation_is_fixed_per_example(tiny):
  """CNNstatic: an example's views depend on its dataset index only, not on the step's key, its place in the batch
  or its neighbours; the same peaks under another index get another augmentation."""
  from difcon_jax.augment import params as augment_params
  config = train_helpers.tiny_config(tiny)
  config.static_augmentation = True
  aug = augment_params.config('train', config.num_bins)
  rng = np.random.default_rng(0)
  tt = np.sort(rng.uniform(10, 110, (3, 6)), axis=1).astype(np.float32)
  y = rng.uniform(0.1, 1, (3, 6)).astype(np.float32)
  views = lambda index, rows, key: np.asarray(train.augment_views(
      config, {'index': jnp.array(index), 'two_theta': tt[rows], 'intensity': y[rows]}, jax.random.key(key), aug))
  a = views([4, 9, 17], [0, 1, 2], 1)
  np.testing.assert_array_equal(a[0], a[1])  # both views are the example's one fixed augmentation
  # Another step's key, another order, another neighbour: each example's pattern is unchanged.
  b = views([17, 4, 30], [2, 0, 1], 2)
  np.testing.assert_allclose(b[:, :2], a[:, [2, 0]], atol=1e-6)
  # The same peaks under two other indices: two different patterns.
  c = views([5, 6], [0, 0], 1)
  assert np.abs(c[0, 0] - c[0, 1]).max() > 0.05 and np.abs(c[0, 0] - a[0, 0]).max() > 0.05


@pytest.mark.slow
def test_views_two_for_every_model_of_an_ablation(tiny):
  """config.views=2 gives a supervised CNN two different augmented views per example (the ablation's equal
  patterns and cost per step); 0 keeps what the loss needs; a contrastive loss refuses fewer than two."""
  from difcon_jax.augment import params as augment_params
  config = train_helpers.tiny_config(tiny)
  config.loss.ssl_weight = 0.0
  assert train.num_views(config) == 1
  config.views = 2
  assert train.num_views(config) == 2
  aug = augment_params.config('train', config.num_bins)
  rng = np.random.default_rng(0)
  tt = np.sort(rng.uniform(10, 110, (2, 6)), axis=1).astype(np.float32)
  y = rng.uniform(0.1, 1, (2, 6)).astype(np.float32)
  v = np.asarray(train.augment_views(config, {'index': jnp.arange(2), 'two_theta': tt, 'intensity': y},
                                     jax.random.key(0), aug))
  assert v.shape == (2, 2, config.num_bins) and np.abs(v[0] - v[1]).max() > 0.05
  config.views, config.loss.ssl_weight = 1, 0.005
  with pytest.raises(ValueError, match='two views'):
    train.num_views(config)
  config.views = 0
  assert train.num_views(config) == 2


@pytest.mark.slow
def test_eight_devices_match_one(tiny, tmp_path):
  """Two LARS steps at learning rate 1 (train_helpers.data_parallel_params) with the global batch split over 8 CPU
  devices give the parameters and BatchNorm statistics of the same steps on one device: the gradients and the
  batch statistics are reduced over the whole batch. An un-reduced gradient (each device stepping on its own
  share of the batch) moves every bias and norm parameter by lr·g of one example instead of lr times the batch
  mean: differences of order 1e-2, hundreds of times the tolerance, which the step size check below guarantees
  is not hidden by a zero learning rate (the earlier version of this test compared after a step at lr 0)."""
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8', JAX_PLATFORMS='cpu')
  out = tmp_path / 'p.npz'
  run = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), 'train_helpers.py'), tiny,
                        str(out), '1', '8'], env=env, capture_output=True, text=True)
  assert run.returncode == 0, run.stderr[-2000:]
  got = np.load(out)
  assert int(got['devices']) == 8
  keys = [k[2:] for k in got.files if k.startswith('1/') and not k.startswith('1/init/')]
  assert any('batch_stats' in k for k in keys) and any('bias' in k for k in keys)
  moved = max(np.abs(got['1/' + k] - got['1/init/' + k]).max() for k in keys)
  assert moved > 1e-2, moved  # the steps did change the parameters (a zero learning rate would not)
  for k in keys:
    np.testing.assert_allclose(got['8/' + k], got['1/' + k], rtol=2e-4, atol=2e-5, err_msg=k)


@pytest.mark.slow
def test_the_gradient_is_all_reduced_once_per_step(tiny):
  """Compiled for 8 CPU devices, the step all-reduces the gradient once, as one vector of the parameters' size
  (two views: a per-use reduction would send it twice), plus one small vector of BatchNorm statistics and metrics
  (which XLA's combiner may merge into the first);
  BatchNorm over the global batch (cross_device_norm) adds its per-layer reductions, which shows that the count
  sees them."""
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8', JAX_PLATFORMS='cpu')
  helper = os.path.join(os.path.dirname(__file__), 'train_helpers.py')
  got = {}
  for name, extra in (('local', []), ('cross', ['cross_device_norm'])):
    run = subprocess.run([sys.executable, helper, 'collectives', tiny, *extra], env=env, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    got[name] = json.loads(run.stdout.strip().splitlines()[-1])
  local = got['local']
  assert local['allreduce_sizes'][0] >= local['param_bytes'], local  # the gradient in one piece (XLA may fuse more in)
  assert local['allreduce_bytes'] <= 1.1 * local['param_bytes'], local
  assert local['allreduce_ops'] <= 8, local
  assert got['cross']['allreduce_ops'] > local['allreduce_ops'] + 2, got['cross']


@pytest.mark.slow
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


# ------------------------------------------------------------------------ paths that config fields choose

def test_the_two_checkpoint_managers_never_share_a_barrier(tmp_path):
  """Both managers save the last step; Orbax names a save's cross-process barriers after the step, so each manager
  needs a prefix of its own or two processes can meet at the wrong barrier and hang at exit."""
  from orbax.checkpoint._src.multihost import multihost  # pylint: disable=g-import-not-at-top
  managers = workdir_lib.checkpoint_managers(str(tmp_path), keep=2, best_metric='equivariance/cs_acc')
  prefixes = [m._options.multiprocessing_options.barrier_sync_key_prefix for m in managers]  # pylint: disable=protected-access
  keys = {multihost.unique_barrier_key('async_write_complete', suffix='2', prefix=p) for p in prefixes}
  for m in managers:
    m.close()
  assert len(keys) == len(managers), keys


def test_lars_leaves_biases_and_norms_out_of_decay_and_trust_ratio():
  """LARS (the paper config's optimiser): kernels get weight decay and the trust ratio; biases and norm scales get
  neither, so their first step is plain SGD: -lr·g. Hand values with lr 0.1 (no warmup), decay 0.5, g = 0.1, w = 2:
  kernel: g' = g + 0.5 w = 1.1, trust = 0.001 ||w|| / ||g'|| = 0.001 · 2 / 1.1, step = -0.1 · trust · g' = -2e-4;
  bias and scale: -0.1 · 0.1 = -0.01."""
  config = train_helpers.tiny_config('unused')
  config.optimizer.update(dict(name='lars', learning_rate=0.1, warmup_steps=0, weight_decay=0.5, clip_norm=1e9))
  tx = train.create_optimizer(config)
  params = {'Conv_0': {'kernel': jnp.full((3, 2, 4), 2.0)}, 'Dense_0': {'kernel': jnp.full((4, 3), 2.0),
                                                                        'bias': jnp.full((3,), 2.0)},
            'BatchNorm_0': {'scale': jnp.full((4,), 2.0), 'bias': jnp.full((4,), 2.0)}}
  grads = jax.tree.map(lambda p: jnp.full_like(p, 0.1), params)
  updates, _ = tx.update(grads, tx.init(params), params)
  updates = jax.device_get(updates)
  for kernel in (updates['Conv_0']['kernel'], updates['Dense_0']['kernel']):
    np.testing.assert_allclose(kernel, -2e-4, rtol=1e-5)
  for plain in (updates['Dense_0']['bias'], updates['BatchNorm_0']['scale'], updates['BatchNorm_0']['bias']):
    np.testing.assert_allclose(plain, -0.01, rtol=1e-5)


def test_best_checkpoint_is_the_best_evaluation_and_inference_loads_its_ema_weights(tmp_path):
  """The trainer's checkpoint managers keep the evaluation with the highest best_metric under best/ and every save
  under checkpoints/; inference loads best/ by default (latest on request), and the EMA weights when there are."""
  import orbax.checkpoint as ocp
  from difcon_jax.inference import model as inference
  config = train_helpers.tiny_config('unused')
  latest, best = workdir_lib.checkpoint_managers(str(tmp_path), config.keep_checkpoints, config.best_metric)
  others = {k: 0.5 for k in ('equivariance/crystal_system_top1', 'invariance/space_group_top1')}
  for step, score in ((1, 0.2), (2, 0.7), (3, 0.4)):
    state = {'step': np.int32(step), 'params': {'w': np.full(3, float(step))},
             'ema_params': {'w': np.full(3, 10.0 * step)}, 'batch_stats': {'m': np.zeros(2)}}
    best.save(step, args=ocp.args.StandardSave(state), metrics={config.best_metric: score, **others})
    latest.save(step, args=ocp.args.StandardSave(state))
  best.wait_until_finished()
  latest.wait_until_finished()
  variables, step = inference._restore_workdir(str(tmp_path), 'best')  # pylint: disable=protected-access
  assert step == 2
  np.testing.assert_array_equal(variables['params']['w'], [20.0, 20.0, 20.0])  # the EMA weights of step 2
  variables, step = inference._restore_workdir(str(tmp_path), 'latest')  # pylint: disable=protected-access
  assert step == 3 and variables['params']['w'][0] == 30.0


def _small_config(tiny, **model):
  config = train_helpers.tiny_config(tiny)
  config.model.update(dict(pooling='mean', **model))
  return config


def test_group_norm_normalises_each_pattern_alone(tiny):
  """norm='group': the backbone's features of a pattern do not depend on the rest of the batch, even in training
  (BatchNorm's do: the control), and the backbone keeps no batch statistics."""
  x = np.random.default_rng(0).uniform(0, 1, (3, 2000)).astype(np.float32)
  features = {}
  for norm in ('group', 'batch'):
    model = train.create_model(_small_config(tiny, norm=norm))
    variables = model.init(jax.random.key(1), x[:2])
    run = lambda rows: model.apply(variables, x[rows], train=True, mutable=['batch_stats'])[0][1]['features'][0]
    features[norm] = np.asarray(run([0, 1])), np.asarray(run([0, 2]))
    if norm == 'group':
      assert 'GroupNorm_0' in variables['params'] and 'BatchNorm_0' not in variables['params']
      assert set(variables['batch_stats']) == {'projector_norm_0'}  # only the projector's BatchNorm
  np.testing.assert_allclose(*features['group'], rtol=1e-5, atol=1e-6)
  assert np.abs(features['batch'][0] - features['batch'][1]).max() > 1e-3


def test_bf16_computes_in_bfloat16_and_returns_float32(tiny):
  """model.bf16: the same float32 parameters, the convolutions in bfloat16 (outputs close to float32's but not
  equal), logits and embeddings back in float32."""
  x = jax.random.uniform(jax.random.key(0), (2, 2000))
  f32, b16 = (train.create_model(_small_config(tiny, bf16=b)) for b in (False, True))
  variables = f32.init(jax.random.key(1), x)
  assert jax.tree.map(lambda v: v.dtype, b16.init(jax.random.key(1), x)) == jax.tree.map(lambda v: v.dtype, variables)
  (a, aux_a), (b, aux_b) = f32.apply(variables, x), b16.apply(variables, x)
  assert b['crystal_system'].dtype == jnp.float32 and aux_b['embedding'].dtype == jnp.float32
  diff = np.abs(np.asarray(aux_a['features']) - np.asarray(aux_b['features'])).max()
  scale = np.abs(np.asarray(aux_a['features'])).max()
  assert 0 < diff < 0.05 * scale, (diff, scale)


@pytest.mark.slow
def test_ema_step_averages_the_new_parameters(tiny):
  """ema_decay: after a step, ema = decay · ema + (1 - decay) · new parameters (the initial EMA is the initial
  parameters); the evaluation and inference read the EMA (see the checkpoint test above)."""
  import functools
  from difcon_jax.augment import params as augment_params
  from difcon_jax.data import input_pipeline
  config = _small_config(tiny)
  config.ema_decay = 0.75
  config.optimizer.warmup_steps = 0
  model, tx = train.create_model(config), train.create_optimizer(config)
  state = train.init_state(config, model, tx, jnp.zeros((1, config.num_bins)))
  aug = augment_params.config(config.augmentation, config.num_bins, config.two_theta_max)
  batch = input_pipeline.PeakBatches(config.corpus, 'train', config.batch_size, config.seed).batch(0)
  step = jax.jit(functools.partial(train.train_step, model=model, tx=tx, config=config, aug_cfg=aug))
  new, metrics = step(state, batch)
  assert np.isfinite(float(metrics['loss']))
  moved = []
  for init, p, ema in zip(*(jax.tree.leaves(t) for t in (state.params, new.params, new.ema_params))):
    np.testing.assert_allclose(ema, 0.75 * np.asarray(init) + 0.25 * np.asarray(p), rtol=1e-6, atol=1e-7)
    moved.append(np.abs(np.asarray(p) - np.asarray(init)).max())
  assert max(moved) > 1e-3  # the step did move the parameters


@pytest.mark.slow
def test_a_nan_loss_stops_the_run_at_that_step(tiny, tmp_path, monkeypatch):
  """The first non-finite loss stops training with an error that names the step, before anything is saved."""
  from difcon_jax.training import losses
  real = losses.classification_losses
  monkeypatch.setattr(losses, 'classification_losses',
                      lambda logits, labels, *weights: {k: v * jnp.nan for k, v in real(logits, labels,
                                                                                           *weights).items()})
  config = _small_config(tiny)
  config.checkpoint_every = 1
  with pytest.raises(FloatingPointError, match='loss is nan at step 1'):
    train.train_and_evaluate(config, str(tmp_path))
  assert not list((tmp_path / 'checkpoints').glob('[0-9]*'))


@pytest.mark.slow
def test_a_loss_above_the_bound_stops_the_run_before_anything_is_saved(tiny, tmp_path):
  """config.max_loss: a finite loss above it stops training (DivergedError, a FloatingPointError) at the first check,
  before the evaluation and the checkpoint of that step; the last good checkpoint is named (none yet)."""
  config = _small_config(tiny)
  config.checkpoint_every = 1
  config.max_loss = 1e-3  # every real loss is above it
  with pytest.raises(train.DivergedError, match=r'at step 1 .*max_loss=0.001.*last good checkpoint: None'):
    train.train_and_evaluate(config, str(tmp_path))
  assert not list((tmp_path / 'checkpoints').glob('[0-9]*'))
  assert not (tmp_path / 'final_metrics.json').exists()


def test_interval_metrics_are_means_over_the_interval_and_the_largest_loss():
  interval = train.IntervalMetrics()
  for loss, acc in ((1.0, 0.5), (4.0, 0.0), (1.0, 1.0)):
    interval.add({'loss': jnp.float32(loss), 'accuracy_crystal_system': jnp.float32(acc)})
  assert interval.max_loss() == 4.0
  assert interval.max_loss() == -np.inf  # reset by the check
  means = interval.read()
  assert means == pytest.approx({'loss': 2.0, 'accuracy_crystal_system': 0.5})
  interval.add({'loss': jnp.float32(7.0), 'accuracy_crystal_system': jnp.float32(1.0)})
  assert interval.read() == pytest.approx({'loss': 7.0, 'accuracy_crystal_system': 1.0})
  interval.add({'loss': jnp.float32(np.nan), 'accuracy_crystal_system': jnp.float32(1.0)})
  assert np.isnan(interval.max_loss())
