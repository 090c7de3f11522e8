r"""Training: python -m difcon_jax.train --config=configs/<name>.py --workdir=DIR [--config.field=value ...]

Top to bottom: input -> model and optimiser -> restore -> the jitted step -> loop with periodic
evaluation, checkpoints and logs. The step is a pure function (state, batch) -> (state, metrics); its randomness
is jax.random.fold_in(state.rng, state.step), so a resumed run draws the same augmentations. Data parallel: one
jit over a 1-D device mesh with the batch sharded and the state replicated; the views are rendered on the devices
that hold their examples, and the gradient is computed per device under shard_map and all-reduced once per step
as one flat vector (with the BatchNorm statistics and the metrics in a second, small one); several hosts join
through jax.distributed.
"""

from __future__ import annotations

import functools
import sys
import time
from typing import Any

from absl import app
from absl import flags
from absl import logging
from etils import epath
import flax
import flax.struct
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from ml_collections import config_flags
import numpy as np
import optax
import orbax.checkpoint as ocp

from difcon_jax.io import cli
from difcon_jax.training import config_checks
from difcon_jax.evaluation import evaluators
from difcon_jax.training import losses
from difcon_jax.training import memory_check
from difcon_jax.evaluation import metrics
from difcon_jax.training import resume_checks
from difcon_jax.io import workdir as workdir_lib
from difcon_jax.augment import kernel as augment_kernel
from difcon_jax.augment import params as augment_params
from difcon_jax.crystallography import spacegroups
from difcon_jax.data import input_pipeline
from difcon_jax.models import heads
from difcon_jax.models import resnet1d

DATA_AXIS = 'data'  # the device mesh's one axis: the batch is split over it

# Streams of jax.random.key(config.seed), split off by fold_in: the initial parameters, the per-step training
# draws (folded with the step), and CNNstatic's fixed draws (folded with the example's index).
INIT_STREAM, STEP_STREAM, STATIC_STREAM = 1, 2, 3


class TrainState(flax.struct.PyTreeNode):
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  ema_params: Any
  rng: jax.Array  # raw key data (uint32), so that checkpoints hold plain arrays


# ------------------------------------------------------------------------------------------------ building

def create_model(config) -> resnet1d.DifconNet:
  return resnet1d.from_config(config, norm_axis_name=DATA_AXIS)


def global_batch_size(config, device_count: int | None = None) -> int:
  """Examples per step over all devices: config.per_device_batch_size x the device count when set, else
  config.batch_size."""
  per_device = config.get('per_device_batch_size', 0)
  if per_device:
    return per_device * (device_count or jax.device_count())
  return config.batch_size


def learning_rate(config, global_batch: int) -> float:
  """The peak learning rate: optimizer.learning_rate, scaled linearly with the global batch when
  optimizer.reference_batch is set (lr x global_batch / reference_batch)."""
  o = config.optimizer
  reference = o.get('reference_batch', 0)
  return o.learning_rate * global_batch / reference if reference else o.learning_rate


def create_optimizer(config, global_batch: int | None = None) -> optax.GradientTransformation:
  o = config.optimizer
  lr = learning_rate(config, global_batch or config.batch_size)
  warmup = min(o.warmup_steps, max(config.steps - 1, 0))
  schedule = optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(config.steps, warmup + 1),
                                                lr * o.final_lr_fraction)
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
  variables = model.init(jax.random.fold_in(rng, INIT_STREAM), sample_x, train=False)
  params = variables['params']
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=variables.get('batch_stats', {}),
                    opt_state=tx.init(params), ema_params=params if config.ema_decay else None,
                    rng=jax.random.key_data(jax.random.fold_in(rng, STEP_STREAM)))


# --------------------------------------------------------------------------------------------------- step

def num_views(config) -> int:
  """Views per example and step of a config (or config.json's dict): config.views, else two for the contrastive
  loss and one without (CNNaug, CNNstatic). An ablation sets views=2 for every model so that all see the same
  patterns per step and cost the same; the classification loss is the mean over the views."""
  views, ssl_weight = config.get('views') or 0, config['loss']['ssl_weight']
  if views:
    if ssl_weight > 0 and views < 2:
      raise ValueError(f'views={views}: the contrastive loss needs two views')
    return int(views)
  return 2 if ssl_weight > 0 else 1


def augment_views(config, batch, rng, aug_cfg, mesh=None):
  """num_views(config) augmented views [views, batch, bins] of the peak lists, generated on the devices that hold
  the batch."""
  tt, y = batch['two_theta'], batch['intensity']
  hkl, cell = batch.get('hkl'), batch.get('cell')  # where the corpus has them: preferred orientation (lab)
  if config.static_augmentation:
    # CNNstatic: each example's augmentation is fixed once (drawn from its index), not redrawn per step.
    key = jax.random.fold_in(jax.random.key(config.seed), STATIC_STREAM)
    x = augment_kernel.augment_examples(key, batch['index'], tt, y, aug_cfg, mesh, hkl, cell)
    return jnp.stack([x] * num_views(config))
  keys = jax.random.split(rng, num_views(config))
  return jnp.stack([augment_kernel.augment_batch(k, tt, y, aug_cfg, mesh, hkl, cell) for k in keys])


def crystal_system_weights(config, train_data: input_pipeline.PeakBatches) -> np.ndarray | None:
  """The crystal-system loss's class weights [7] (losses.class_weights of the training split's counts at power
  config.loss.crystal_system_balance), or None when the power is 0."""
  power = config.loss.get('crystal_system_balance', 0.0)
  if not power:
    return None
  counts = np.bincount(train_data.labels('crystal_system'), minlength=len(spacegroups.CRYSTAL_SYSTEMS))
  weights = losses.class_weights(counts, power)
  logging.info('crystal-system loss weights (power %g): %s', power,
               ', '.join(f'{n} {w:.2f}' for n, w in zip(spacegroups.CRYSTAL_SYSTEMS, weights)))
  return weights


def step_fields(config, aug_cfg) -> tuple[str, ...]:
  """The batch fields the step reads: peaks and labels; the index for CNNstatic's fixed draws; hkl and cell where
  the augmentation orients crystallites (input_pipeline.PeakBatches delivers them where the corpus has them)."""
  fields = ['two_theta', 'intensity', *heads.HEADS]
  if config.static_augmentation:
    fields.append('index')
  if aug_cfg.lab_effects:
    fields += input_pipeline.OPTIONAL_FIELDS
  return tuple(fields)


def local_gradients(params, batch_stats, views, labels, *, model, config, crystal_system_weights=None):
  """One device's share of the step, under shard_map over DATA_AXIS: (gradient of the global loss, new BatchNorm
  statistics, metrics), each the same on every device.

  views: [views, local batch, bins]; labels: {head: [local batch]}. The classification losses are this device's
  means; the contrastive loss is computed on every device from the projections of the whole batch (all-gathered),
  as Barlow Twins and SimCLR ask. Each device differentiates (its classification loss + the contrastive loss) /
  devices with respect to its own copy of the parameters, so that the sum over devices is the gradient of the
  global loss: one psum of the flattened gradient, the step's only large collective (the transpose of the
  all-gather returns each device its projections' share of the contrastive gradient). BatchNorm statistics are
  each device's own (or averaged by the network when config.model.cross_device_norm); their running averages and
  the metrics are averaged over the devices in one small pmean. crystal_system_weights [7]: the crystal-system
  loss's class weights (config.loss.crystal_system_balance; None: unweighted).
  """
  devices = jax.lax.axis_size(DATA_AXIS)
  w = config.loss
  own = jax.lax.pcast(params, DATA_AXIS, to='varying')

  def loss_fn(p):
    stats, outs = batch_stats, []
    for v in range(views.shape[0]):
      (logits, aux), new = model.apply({'params': p, 'batch_stats': stats}, views[v], train=True,
                                       mutable=['batch_stats'])
      stats = new['batch_stats']
      outs.append((logits, aux))
    per_view = [losses.classification_losses(lg, labels, crystal_system_weights) for lg, _ in outs]
    parts = {name: sum(v[name] for v in per_view) / len(outs) for name in heads.HEADS}
    if w.ssl_weight > 0:
      z1, z2 = (jax.lax.all_gather(outs[i][1]['projection'], DATA_AXIS, tiled=True) for i in (0, 1))
      parts['ssl'] = (losses.barlow_twins(z1, z2, w.barlow_lambda) if w.ssl == 'barlow_twins'
                      else losses.nt_xent(z1, z2, w.temperature))
    total = (w.crystal_system * parts['crystal_system'] + w.extinction_group * parts['extinction_group']
             + w.space_group * parts['space_group'] + w.ssl_weight * parts.get('ssl', 0.0))
    return total / devices, (total, parts, stats, outs[0][0])

  (_, (total, parts, stats, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(own)
  flat, unflatten = ravel_pytree(grads)
  grads = unflatten(jax.lax.psum(flat, DATA_AXIS))
  step_metrics = {'loss': total, **{f'loss_{k}': v for k, v in parts.items()},
                  **{f'accuracy_{h}': jnp.mean(metrics.hits_at_k(ranked, labels[h], 1))
                     for h, (ranked, _) in heads.rank(logits, 1).items()}}
  small, unflatten_small = ravel_pytree((stats, step_metrics))
  stats, step_metrics = unflatten_small(jax.lax.pmean(small, DATA_AXIS))
  return grads, stats, step_metrics


def train_step(state: TrainState, batch: dict, *, model, tx, config, aug_cfg, mesh=None,
               crystal_system_weights=None):
  """(state, batch) -> (state, metrics). batch: {field: [global batch, ...]} split over mesh's DATA_AXIS (None:
  the first device alone); crystal_system_weights as in local_gradients."""
  if mesh is None:
    mesh = Mesh(np.array(jax.devices()[:1]), (DATA_AXIS,))
  rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
  views = augment_views(config, batch, rng, aug_cfg, mesh)  # [views, batch, bins]
  labels = {k: batch[k] for k in heads.HEADS}
  gradients = jax.shard_map(functools.partial(local_gradients, model=model, config=config,
                                              crystal_system_weights=crystal_system_weights), mesh=mesh,
                            in_specs=(P(), P(), P(None, DATA_AXIS), P(DATA_AXIS)), out_specs=(P(), P(), P()))
  grads, batch_stats, step_metrics = gradients(state.params, state.batch_stats, views, labels)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  ema = state.ema_params
  if ema is not None:
    ema = optax.incremental_update(params, ema, 1 - config.ema_decay)
  step_metrics = {**step_metrics, 'grad_norm': optax.tree.norm(grads), 'param_norm': optax.tree.norm(params)}
  new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state,
                            ema_params=ema)
  return new_state, step_metrics


# ---------------------------------------------------------------------------------------------------- loop

def restore_or_init(config, model, tx, workdir: str, replicated) -> tuple[TrainState, Any, Any]:
  """(state on the devices, latest and best checkpoint managers): the latest checkpoint in workdir that can be
  restored, else a new state. A checkpoint whose files are cut or garbled (a kill or a full disk during a save) is
  moved aside to checkpoints/STEP.damaged, with a warning, and the one before it restored (Orbax keeps
  config.keep_checkpoints). Raises config_checks.ConfigError when a checkpoint holds another model."""
  state = init_state(config, model, tx, jnp.zeros((1, config.num_bins)))
  logging.info('parameters: %s', f'{sum(x.size for x in jax.tree.leaves(state.params)):,}')
  latest, best = workdir_lib.checkpoint_managers(workdir, config.keep_checkpoints, config.best_metric)
  damaged = []

  def restore(step):
    resume_checks.check_checkpoint_matches(state, str(latest.directory), step, workdir, config)
    return latest.restore(step, args=ocp.args.StandardRestore(state))

  def move_aside(step, e):
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    aside = epath.Path(latest.directory) / f'{step}.damaged'
    if jax.process_index() == 0:  # the folder is shared by all processes: one moves it
      (epath.Path(latest.directory) / str(step)).rename(aside)
    damaged.append(step)
    logging.warning('%s/%d cannot be restored (%s: %s); moved to %s, resuming from the checkpoint before it',
                    latest.directory, step, type(e).__name__, reason, aside)

  step, restored = workdir_lib.restore_newest(sorted(latest.all_steps(), reverse=True), restore, move_aside,
                                              refuse=(config_checks.ConfigError,))
  if step is not None:
    state = restored
    logging.info('restored step %d from %s', int(state.step), latest.directory)
  if damaged:
    latest.reload()  # the damaged steps are no longer checkpoints: their numbers can be saved again
    if int(state.step) == 0:
      logging.warning('%s: no checkpoint could be restored (damaged: %s); training starts from step 0',
                      latest.directory, ', '.join(map(str, damaged)))
  return jax.device_put(state, replicated), latest, best


class Throughput:
  """Examples per second over the steps since the last reset (evaluation and saving reset it, so they are not
  counted; the first step, which compiles, starts the clock)."""

  def __init__(self, batch_size: int):
    self.batch_size = batch_size
    self.start, self.examples = None, 0

  def step_done(self, state) -> None:
    if self.start is None:
      jax.block_until_ready(state.step)
      self.start = time.time()
    else:
      self.examples += self.batch_size

  def rate(self, state) -> float:
    """Examples per second up to `state` (waits for its step to finish: steps are dispatched asynchronously)."""
    if not self.examples:
      return float('nan')
    jax.block_until_ready(state.step)
    return self.examples / max(time.time() - self.start, 1e-9)

  def reset(self) -> None:
    if self.start is not None:
      self.start, self.examples = time.time(), 0


def augmentation_share(config, aug_cfg, batch, examples_per_s) -> float:
  """Share of a training step spent generating its views (timed alone on this batch)."""
  fn = augment_kernel.make_augment_fn(aug_cfg)
  tt, y = batch['two_theta'], batch['intensity']
  fn(jax.random.key(0), tt, y).block_until_ready()
  t = time.time()
  for i in range(3):
    out = fn(jax.random.key(i), tt, y)
  out.block_until_ready()
  per_view = (time.time() - t) / 3 / len(tt)
  return float(min(1.0, num_views(config) * per_view * examples_per_s))


class IntervalMetrics:
  """The training metrics summed on the devices over the steps since the last read (no host transfer per step),
  and the largest loss since the last divergence check."""

  def __init__(self):
    self._sum, self._count, self._max_loss = None, 0, None

  def add(self, step_metrics: dict) -> None:
    self._sum = step_metrics if self._sum is None else jax.tree.map(jnp.add, self._sum, step_metrics)
    self._count += 1
    loss = step_metrics['loss']
    self._max_loss = loss if self._max_loss is None else jnp.maximum(self._max_loss, loss)

  def max_loss(self) -> float:
    """The largest loss since the last call (-inf when no step ran since)."""
    out = -np.inf if self._max_loss is None else float(jax.device_get(self._max_loss))
    self._max_loss = None
    return out

  def read(self) -> dict:
    """The mean of each metric over the steps since the last read."""
    total = jax.device_get(self._sum)
    out = {k: float(v) / max(self._count, 1) for k, v in total.items()}
    self._sum, self._count = None, 0
    return out


class DivergedError(FloatingPointError):
  """The training loss became non-finite or exceeded config.max_loss."""


def check_loss(config, done: int, max_loss: float, last_saved) -> None:
  """Raises DivergedError when the interval's largest loss is not finite or above config.max_loss."""
  bound = config.get('max_loss', 0) or float('inf')
  if not np.isfinite(max_loss) or max_loss > bound:
    raise DivergedError(
        f'loss is {max_loss:.4g} at step {done} (the largest since the last check; bound config.max_loss='
        f'{bound:g}): training stopped before evaluating or saving; last good checkpoint: {last_saved}')


def log_train_metrics(writer, config, done: int, means: dict, rate: float, aug_share: float | None,
                      global_batch: int, spent: dict) -> None:
  """Writes and logs the training metrics averaged over the logging interval."""
  eta = (config.steps - done) * global_batch / rate if rate == rate and rate > 0 else float('nan')
  logging.info('step %d/%d  loss %.4f  cs %.3f  eg %.3f  sg %.3f  %.1f examples/s  aug %.0f%%  ETA %.0f s',
               done, config.steps, means['loss'], means['accuracy_crystal_system'],
               means['accuracy_extinction_group'], means['accuracy_space_group'], rate, 100 * (aug_share or 0.0),
               eta)
  writer.write(done, {f'train/{k}': v for k, v in means.items()} |
               {'train/examples_per_s': rate, 'train/augmentation_share': aug_share or 0.0} | spent)


def _announce(line: str) -> None:
  """A line for the person running the training, on stdout (process 0 only)."""
  if jax.process_index() == 0:
    print(line, flush=True)


def result_line(last_eval: dict, step: int) -> str:
  """The run's result in one line: held-out crystal-system top-1 per evaluation set, beside the share of the
  commonest system."""
  sets = [k.split('/')[0] for k in last_eval if k.endswith('/crystal_system_top1')]
  return f'held-out crystal system top-1 at step {step}: ' + ';  '.join(
      f"{name} {last_eval[f'{name}/crystal_system_top1']:.3f} (always answering the most common system: "
      f"{last_eval.get(f'{name}/crystal_system_majority_share', float('nan')):.3f})" for name in sets)


def evaluate(state, apply_fn, due: list) -> dict:
  """{'{set}/{metric}': value} of the state's weights (EMA where kept) on each due evaluator."""
  variables = {'params': state.ema_params if state.ema_params is not None else state.params,
               'batch_stats': state.batch_stats}
  out = {}
  for evaluator in due:
    out.update(evaluator.run(functools.partial(apply_fn, variables)))
  return out


def write_config(config, workdir: str, start: int) -> None:
  """config.json (predict and evaluate rebuild the model from it; it records the grid and wavelength), written
  once the config and the restore are known good; metrics.jsonl rows after the restored step dropped."""
  if jax.process_index() == 0:
    workdir_lib.write_config(workdir, resume_checks.recorded_config(config))
    workdir_lib.trim_metrics(workdir, start)  # rows after the checkpoint are written again by this run


def train_and_evaluate(config, workdir: str) -> tuple[TrainState, dict]:
  """Trains per config, resuming from workdir; returns the final state and the last evaluation metrics.

  Raises config_checks.ConfigError, before writing anything, for a bad config, a missing corpus or one built for
  another grid, or a config that does not match the checkpoint already in workdir.
  """
  cpu_start, wall_start = time.process_time(), time.time()  # the run's cost includes its set-up and restore
  config_checks.check_config(config)
  config_checks.check_corpus(config)
  workdir_lib.check(workdir)
  if config.get('distributed', False):
    # Unset fields (None) are found by JAX from the cluster (SLURM, Open MPI, Kubernetes, Cloud TPU).
    jax.distributed.initialize(coordinator_address=config.get('coordinator_address'),
                               num_processes=config.get('num_processes'), process_id=config.get('process_id'))
  mesh = Mesh(np.array(jax.devices()), (DATA_AXIS,))
  replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P(DATA_AXIS))
  batch_size = global_batch_size(config)
  if batch_size % jax.device_count():
    raise ValueError(f'batch size {batch_size} is not divisible by {jax.device_count()} devices')
  memory_check.check_memory(config, num_views(config), batch_size=batch_size)
  workdir_lock = workdir_lib.lock(workdir, jax.process_index())  # one training per workdir, held to the end

  # Input: only the fields the step reads, gathered whole and placed on the devices by a background thread.
  aug_cfg = augment_params.config(config.augmentation, config.num_bins, config.two_theta_max,
                                  overrides=config.get('augment'))
  train_data = input_pipeline.PeakBatches(config.corpus, 'train', batch_size, config.seed,
                                          process_index=jax.process_index(), process_count=jax.process_count(),
                                          fields=step_fields(config, aug_cfg))

  # Model, optimiser, state (restored from the workdir when it has a checkpoint).
  model, tx = create_model(config), create_optimizer(config, batch_size)
  state, latest, best = restore_or_init(config, model, tx, workdir, replicated)
  start = int(state.step)
  final = workdir_lib.read_final(workdir) if start >= config.steps else None
  if final is not None:
    logging.info('%s: already trained to step %d of %d; nothing to do', workdir, start, config.steps)
    _announce(f'{workdir}: already trained to step {start} of {config.steps}; its result:')
    _announce(result_line(final, start))
    return state, {}
  # The training's cost so far (this process's CPU seconds, all threads, and wall seconds, plus those of the runs
  # it resumes), in every log row and in final_metrics.json.
  cpu_before, wall_before = workdir_lib.time_spent(workdir, start)
  write_config(config, workdir, start)
  spent = lambda: {'train/cpu_s': cpu_before + time.process_time() - cpu_start,
                   'train/wall_s': wall_before + time.time() - wall_start}

  step = functools.partial(train_step, model=model, tx=tx, config=config, aug_cfg=aug_cfg, mesh=mesh,
                           crystal_system_weights=crystal_system_weights(config, train_data))
  step_fn = jax.jit(step, in_shardings=(replicated, sharded), out_shardings=(replicated, replicated), donate_argnums=0)
  # Evaluation outputs come back replicated: with several hosts, each can then read all of them.
  apply_fn = jax.jit(lambda variables, x: model.apply(variables, x, train=False), out_shardings=replicated)
  evals = evaluators.from_config(config, mesh)  # rendered or read once, then kept on the devices
  for e in evals.values():
    if e.skipped:
      logging.warning('evaluation set %s: %d unusable pattern(s) left out, e.g. %s: %s', e.name, len(e.skipped),
                      e.skipped[0]['file'], e.skipped[0]['error'])
  writer = workdir_lib.MetricWriter(workdir, enabled=jax.process_index() == 0)

  def to_global(batch):
    return {k: jax.make_array_from_process_local_data(sharded, v) for k, v in batch.items()}

  last_eval, aug_share = {}, None
  throughput, interval = Throughput(batch_size), IntervalMetrics()
  batches = train_data.prefetch(start, depth=config.get('prefetch', 2), place=to_global)
  _announce(f'training steps {start + 1}-{config.steps} of {batch_size} examples; compiling the training step '
            f'(the first step takes a minute or two on a CPU)...')
  for step_now, batch in batches:
    if step_now >= config.steps:
      break
    state, metrics_now = step_fn(state, batch)
    interval.add(metrics_now)
    done = step_now + 1
    throughput.step_done(state)
    log_now = done % config.log_every == 0 or done == config.steps
    due = [e for e in evals.values() if e.due(done, config.steps)]
    eval_now = bool(due)
    save_now = done % config.checkpoint_every == 0 or done == config.steps
    if log_now or eval_now or save_now:
      check_loss(config, done, interval.max_loss(), latest.latest_step())
    if log_now:
      rate = throughput.rate(state)
      if aug_share is None and rate == rate:
        aug_share = augmentation_share(config, aug_cfg, batch, rate)
      log_train_metrics(writer, config, done, interval.read(), rate, aug_share, batch_size, spent())
      throughput.reset()
    if eval_now:
      now = evaluate(state, apply_fn, due)
      writer.write(done, now)
      logging.info('eval step %d: %s', done, '  '.join(f'{k} {v:.3f}' for k, v in sorted(now.items())))
      last_eval.update(now)  # each set's latest numbers (sets may have their own cadence)
      if config.best_metric in now:
        best.save(done, args=ocp.args.StandardSave(state), metrics=now)
      throughput.reset()
    if save_now:
      latest.save(done, args=ocp.args.StandardSave(state))
      throughput.reset()
  batches.close()
  latest.wait_until_finished()
  best.wait_until_finished()
  writer.close()
  if last_eval:
    _announce(result_line(last_eval, int(state.step)))
  if jax.process_index() == 0:
    workdir_lib.write_final(workdir, int(state.step), {**last_eval, **spent()})
  return state, last_eval


FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string('workdir', None, 'Folder for checkpoints and logs (local or gs://); a run resumes from it.')
  # The configs of the repository (configs/ beside the package), listed in --help.
  configs = sorted(p.name for p in (epath.Path(__file__).parent.parent / 'configs').glob('*.py'))
  listed = ', '.join(f'configs/{name}' for name in configs) or 'none found beside the package'
  config_flags.DEFINE_config_file('config', None, f'Training configuration file (required), one of: {listed}; '
                                  'override its fields with --config.field=value.', lock_config=True)
  flags.FLAGS['config'].default_as_str = None  # required: absl would show its default as 'None'


def main(argv):
  del argv
  if not FLAGS.workdir or FLAGS.config is None:
    raise app.UsageError('--config and --workdir are required')
  logging.set_verbosity(logging.INFO)
  # Orbax reports every step of every save at INFO; keep its warnings only.
  logging.get_absl_logger().addFilter(
      lambda record: record.levelno >= logging.converter.STANDARD_WARNING or 'orbax' not in record.pathname)
  try:
    train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except (config_checks.ConfigError, workdir_lib.WorkdirError) as e:
    for line in str(e).splitlines():
      print(f'train: error: {line}', file=sys.stderr)
    return 2
  except DivergedError as e:
    print(f'train: error: {e}', file=sys.stderr)
    return 1
  return 0


def _parse_flags(argv):
  """The commands' parser (cli.parse_flags), with an unknown --config.field refused in one line instead of a
  traceback."""
  try:
    return cli.parse_flags(argv)
  except (AttributeError, KeyError) as e:
    key = str(e).strip('"\'')
    given = [a.split('=')[0] for a in argv if a.startswith('--config.') and a.split('=')[0].split('.')[-1] == key]
    print(f'train: error: {given[0] if given else key}: the config has no such field (the fields are those of '
          f'difcon_jax/config_base.py)', file=sys.stderr)
    sys.exit(2)


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=_parse_flags)
