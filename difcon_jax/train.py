r"""Training: python -m difcon_jax.train --config=configs/<name>.py --workdir=DIR [--config.field=value ...]

Top to bottom: input -> model and optimiser -> restore -> the jitted step -> loop with periodic
evaluation, checkpoints and logs. The step is a pure function (state, batch) -> (state, metrics); its randomness
is jax.random.fold_in(state.rng, state.step), so a resumed run draws the same augmentations. Data parallel: one
jit over a 1-D device mesh with the batch sharded and the state replicated (XLA inserts the gradient and
BatchNorm all-reduces); several hosts join through jax.distributed.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from typing import Any

from absl import app
from absl import flags
from absl import logging
import flax
import flax.struct
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from ml_collections import config_flags
import numpy as np
import optax
import orbax.checkpoint as ocp

from difcon_jax import evaluation
from difcon_jax import losses
from difcon_jax import train_checks
from difcon_jax.augment import kernel as augment_kernel
from difcon_jax.augment import params as augment_params
from difcon_jax.crystallography import spacegroups
from difcon_jax.data import input_pipeline
from difcon_jax.models import resnet1d


class TrainState(flax.struct.PyTreeNode):
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  ema_params: Any
  rng: jax.Array  # raw key data (uint32), so that checkpoints hold plain arrays


# ------------------------------------------------------------------------------------------------ building

def create_model(config) -> resnet1d.DifconNet:
  return resnet1d.from_config(config)


def create_optimizer(config) -> optax.GradientTransformation:
  o = config.optimizer
  warmup = min(o.warmup_steps, max(config.steps - 1, 0))
  schedule = optax.warmup_cosine_decay_schedule(0.0, o.learning_rate, warmup, max(config.steps, warmup + 1),
                                                o.learning_rate * o.final_lr_fraction)
  # Biases and norm parameters: no weight decay and (for LARS) no trust-ratio adaptation.
  mask = lambda params: jax.tree_util.tree_map_with_path(
      lambda path, x: x.ndim > 1 and 'scale' not in jax.tree_util.keystr(path), params)
  if o.name == 'adamw':
    tx = optax.adamw(schedule, weight_decay=o.weight_decay, mask=mask)
  elif o.name == 'lars':
    tx = optax.lars(schedule, weight_decay=o.weight_decay, weight_decay_mask=mask, trust_ratio_mask=mask,
                    momentum=0.9)
  else:
    raise ValueError(f'unknown optimizer {o.name!r}: adamw or lars')
  return optax.chain(optax.clip_by_global_norm(o.clip_norm), tx)


def init_state(config, model, tx, sample_x) -> TrainState:
  rng = jax.random.key(config.seed)
  variables = model.init(jax.random.fold_in(rng, 1), sample_x, train=False)
  params = variables['params']
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=variables.get('batch_stats', {}),
                    opt_state=tx.init(params), ema_params=params if config.ema_decay else None,
                    rng=jax.random.key_data(jax.random.fold_in(rng, 2)))


# --------------------------------------------------------------------------------------------------- step

def augment_views(config, batch, rng, aug_cfg, mesh=None):
  """Two augmented views [2, batch, bins] of the peak lists, generated on the devices that hold the batch."""
  tt, y = batch['two_theta'], batch['intensity']
  hkl, cell = batch.get('hkl'), batch.get('cell')  # where the corpus has them: preferred orientation (lab)
  if config.static_augmentation:
    # CNNstatic: each example's augmentation is fixed once (seeded by its index), not redrawn per step.
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(config.seed + 7), i))(batch['index'])
    draws = jax.vmap(lambda k: augment_kernel.sample_draws(k, aug_cfg, 1, tt.shape[1]))(keys)
    x = augment_kernel.render_batch(tt, y, jax.tree.map(lambda d: d[:, 0], draws), aug_cfg, mesh, hkl, cell)
    return jnp.stack([x, x])
  k1, k2 = jax.random.split(rng)
  return jnp.stack([augment_kernel.augment_batch(k, tt, y, aug_cfg, mesh, hkl, cell) for k in (k1, k2)])


def train_step(state: TrainState, batch: dict, *, model, tx, config, aug_cfg, mesh=None):
  rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
  views = augment_views(config, batch, rng, aug_cfg, mesh)
  labels = {k: batch[k] for k in ('crystal_system', 'extinction_group', 'space_group')}
  w = config.loss

  def loss_fn(params):
    stats = state.batch_stats
    outs = []
    n_views = 2 if w.ssl_weight > 0 else 1
    for v in range(n_views):
      (logits, aux), new = model.apply({'params': params, 'batch_stats': stats}, views[v], train=True,
                                       mutable=['batch_stats'])
      stats = new['batch_stats']
      outs.append((logits, aux))
    parts = {}
    for name in ('crystal_system', 'extinction_group', 'space_group'):
      parts[name] = sum(losses.classification_losses(lg, labels)[name] for lg, _ in outs) / n_views
    if w.ssl_weight > 0:
      z1, z2 = outs[0][1]['projection'], outs[1][1]['projection']
      parts['ssl'] = (losses.barlow_twins(z1, z2, w.barlow_lambda) if w.ssl == 'barlow_twins'
                      else losses.nt_xent(z1, z2, w.temperature))
    total = (w.crystal_system * parts['crystal_system'] + w.extinction_group * parts['extinction_group']
             + w.space_group * parts['space_group'] + w.ssl_weight * parts.get('ssl', 0.0))
    return total, (parts, stats, outs[0][0])

  (total, (parts, batch_stats, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  ema = state.ema_params
  if ema is not None:
    ema = optax.incremental_update(params, ema, 1 - config.ema_decay)
  metrics = {'loss': total, **{f'loss_{k}': v for k, v in parts.items()},
             'grad_norm': optax.tree.norm(grads), 'param_norm': optax.tree.norm(params),
             **{f'accuracy_{k}': v for k, v in evaluation.top1(logits, labels).items()}}
  new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state,
                            ema_params=ema)
  return new_state, metrics


# ---------------------------------------------------------------------------------------------------- loop

def _checkpoint_managers(workdir, config):
  path = os.path.abspath(os.path.join(workdir, 'checkpoints'))
  latest = ocp.CheckpointManager(path, options=ocp.CheckpointManagerOptions(
      max_to_keep=config.keep_checkpoints, create=True, enable_async_checkpointing=False))
  best = ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, 'best')), options=ocp.CheckpointManagerOptions(
      max_to_keep=1, best_fn=lambda m: m[config.best_metric], best_mode='max', create=True,
      enable_async_checkpointing=False))
  return latest, best


def train_and_evaluate(config, workdir: str) -> tuple[TrainState, dict]:
  """Trains per config, resuming from workdir; returns the final state and the last evaluation metrics.

  Raises train_checks.ConfigError, before writing anything, for a bad config or one that does not match the
  checkpoint already in workdir.
  """
  train_checks.check_config(config)
  train_checks.check_workdir(workdir)
  if config.get('distributed', False):
    # Unset fields (None) are found by JAX from the cluster (SLURM, Open MPI, Kubernetes, Cloud TPU).
    jax.distributed.initialize(coordinator_address=config.get('coordinator_address'),
                               num_processes=config.get('num_processes'), process_id=config.get('process_id'))
  mesh = Mesh(np.array(jax.devices()), ('data',))
  replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P('data'))
  if config.batch_size % jax.device_count():
    raise ValueError(f'batch size {config.batch_size} is not divisible by {jax.device_count()} devices')

  # Input.
  train_data = input_pipeline.PeakBatches(config.corpus, 'train', config.batch_size, config.seed,
                                          process_index=jax.process_index(), process_count=jax.process_count())
  aug_cfg = augment_params.config(config.augmentation, config.num_bins, config.two_theta_max)

  # Model, optimiser, state.
  model, tx = create_model(config), create_optimizer(config)
  state = init_state(config, model, tx, jnp.zeros((1, config.num_bins)))
  logging.info('parameters: %s', f'{sum(x.size for x in jax.tree.leaves(state.params)):,}')

  # Restore.
  latest, best = _checkpoint_managers(workdir, config)
  if latest.latest_step() is not None:
    train_checks.check_checkpoint_matches(state, str(latest.directory), latest.latest_step(), workdir)
    state = latest.restore(latest.latest_step(), args=ocp.args.StandardRestore(state))
    logging.info('restored step %d from %s', int(state.step), latest.directory)
  state = jax.device_put(state, replicated)
  start = int(state.step)
  if jax.process_index() == 0:  # predict and evaluate rebuild the model from it; written once the config is known good
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
      f.write(config.to_json_best_effort(indent=1))
    train_checks.trim_metrics(workdir, start)  # rows after the checkpoint are written again by this run

  step = functools.partial(train_step, model=model, tx=tx, config=config, aug_cfg=aug_cfg, mesh=mesh)
  step_fn = jax.jit(step, in_shardings=(replicated, sharded), out_shardings=(replicated, replicated), donate_argnums=0)
  evaluators = evaluation.make_evaluators(config, model, mesh)
  writer = evaluation.MetricWriter(workdir)

  def to_global(batch):
    return {k: jax.make_array_from_process_local_data(sharded, np.asarray(v)) for k, v in batch.items()}

  last_eval, aug_share = {}, None
  timer = None  # (start time, examples) of the current throughput window; evaluation and saving excluded
  for step_now, local in train_data.prefetch(start):
    if step_now >= config.steps:
      break
    state, metrics = step_fn(state, to_global(local))
    done = step_now + 1
    if timer is None:  # the first step compiles: count from its end
      jax.block_until_ready(state.step)
      timer = (time.time(), 0)
    else:
      timer = (timer[0], timer[1] + config.batch_size)
    if done % config.log_every == 0 or done == config.steps:
      metrics = jax.device_get(metrics)
      if not np.isfinite(metrics['loss']):
        raise FloatingPointError(f'loss is {metrics["loss"]} at step {done}; last good checkpoint: '
                                 f'{latest.latest_step()}')
      rate = timer[1] / max(time.time() - timer[0], 1e-9) if timer[1] else float('nan')
      if aug_share is None and timer[1]:
        aug_share = evaluation.augmentation_share(config, aug_cfg, local, rate)
      eta = (config.steps - done) * config.batch_size / rate if rate == rate and rate > 0 else float('nan')
      logging.info('step %d/%d  loss %.4f  cs %.3f  eg %.3f  sg %.3f  %.1f examples/s  aug %.0f%%  ETA %.0f s',
                   done, config.steps, metrics['loss'], metrics['accuracy_crystal_system'],
                   metrics['accuracy_extinction_group'], metrics['accuracy_space_group'], rate,
                   100 * (aug_share or 0.0), eta)
      writer.write(done, {f'train/{k}': float(v) for k, v in metrics.items()} |
                   {'train/examples_per_s': rate, 'train/augmentation_share': aug_share or 0.0})
      timer = (time.time(), 0)
    if done % config.eval_every == 0 or done == config.steps:
      last_eval = {}
      for ev in evaluators:
        last_eval.update(ev.run(state))
      writer.write(done, last_eval)
      logging.info('eval step %d: %s', done, '  '.join(f'{k} {v:.3f}' for k, v in sorted(last_eval.items())))
      best.save(done, args=ocp.args.StandardSave(state), metrics={k: float(v) for k, v in last_eval.items()})
      timer = (time.time(), 0)
    if done % config.checkpoint_every == 0 or done == config.steps:
      latest.save(done, args=ocp.args.StandardSave(state))
      timer = (time.time(), 0)
  latest.wait_until_finished()
  best.wait_until_finished()
  writer.close()
  if jax.process_index() == 0:
    with open(os.path.join(workdir, 'final_metrics.json'), 'w') as f:
      json.dump({'step': int(state.step), **{k: float(v) for k, v in last_eval.items()}}, f, indent=1)
  return state, last_eval


_WORKDIR = flags.DEFINE_string('workdir', None, 'Folder for checkpoints and logs; a run resumes from it.')
_CONFIG = config_flags.DEFINE_config_file('config', None, 'Training configuration file.', lock_config=True)


def main(argv):
  del argv
  if not _WORKDIR.value or _CONFIG.value is None:
    raise app.UsageError('--config and --workdir are required')
  logging.set_verbosity(logging.INFO)
  # Orbax reports every step of every save at INFO; keep its warnings only.
  logging.get_absl_logger().addFilter(
      lambda record: record.levelno >= logging.converter.STANDARD_WARNING or 'orbax' not in record.pathname)
  try:
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except train_checks.ConfigError as e:
    for line in str(e).splitlines():
      print(f'train: error: {line}', file=sys.stderr)
    return 2
  return 0


def _parse_flags(argv):
  """absl's parser, with an unknown --config.field refused in one line instead of a traceback."""
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError) as e:
    key = str(e).strip('"\'')
    given = [a.split('=')[0] for a in argv if a.startswith('--config.') and a.split('=')[0].split('.')[-1] == key]
    print(f'train: error: {given[0] if given else key}: the config has no such field (the fields are those of '
          f'difcon_jax/config_base.py)', file=sys.stderr)
    sys.exit(2)


if __name__ == '__main__':
  app.run(main, flags_parser=_parse_flags)
