"""Evaluators (each `run(state)` returns {name: value}), accuracy helpers and the metric writer."""

from __future__ import annotations

import functools
import json
import os
import time

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
import numpy as np

from difcon_jax.augment import kernel as augment_kernel
from difcon_jax.augment import params as augment_params
from difcon_jax.data import input_pipeline
from difcon_jax.models import resnet1d

HEADS = ('crystal_system', 'extinction_group', 'space_group')


def top1(logits: dict, labels: dict) -> dict:
  """Top-1 accuracy per head; the space group is chosen inside the predicted crystal system."""
  pred = resnet1d.predict(logits)
  return {h: jnp.mean(pred[h] == labels[h]) for h in HEADS}


def topk_hits(logits: dict, labels: dict, k: int = 5) -> dict:
  """Per-example booleans: label among the top-k (space group ranked by the joint log p(cs) p(sg|cs))."""
  scores = {'crystal_system': logits['crystal_system'], 'extinction_group': logits['extinction_group'],
            'space_group': resnet1d.space_group_log_probs(logits)}
  return {h: jnp.any(jax.lax.top_k(s, k)[1] == labels[h][:, None], axis=-1) for h, s in scores.items()}


class Evaluator:
  """Accuracy on the test split under one augmentation distribution, with fixed draws (comparable over time)."""

  def __init__(self, name, config, model, mesh, distribution):
    self.name = name
    self.data = input_pipeline.PeakBatches(config.corpus, 'test', config.eval_batch_size, shuffle=False)
    self.steps = -(-min(self.data.size, config.eval_examples) // config.eval_batch_size)
    self.count = min(self.data.size, config.eval_examples)
    aug_cfg = augment_params.config(distribution, config.num_bins, config.two_theta_max)
    self.sharded = NamedSharding(mesh, P('data'))
    seed = config.seed

    def eval_step(state, batch, step, mesh):
      key = jax.random.fold_in(jax.random.key(seed + 1000), step)
      x = augment_kernel.augment_batch(key, batch['two_theta'], batch['intensity'], aug_cfg, mesh, batch.get('hkl'),
                                       batch.get('cell'))
      params = state.ema_params if state.ema_params is not None else state.params
      logits, aux = model.apply({'params': params, 'batch_stats': state.batch_stats}, x, train=False)
      labels = {h: batch[h] for h in HEADS}
      pred = resnet1d.predict(logits)
      hits1 = {h: pred[h] == labels[h] for h in HEADS}
      return hits1, topk_hits(logits, labels, 5)

    # Batches that the devices can share are rendered per device; others (a short last batch) on one.
    # Hits come back replicated: with several hosts, each can then read all of them.
    self._sharded_step = jax.jit(functools.partial(eval_step, mesh=mesh), out_shardings=NamedSharding(mesh, P()))
    self._step = jax.jit(functools.partial(eval_step, mesh=None))

  def run(self, state) -> dict:
    top1_hits = {h: [] for h in HEADS}
    top5_hits = {h: [] for h in HEADS}
    for s in range(self.steps):
      batch = self.data.batch(s)
      if len(batch['two_theta']) % jax.device_count() == 0:
        step_fn, batch = self._sharded_step, jax.device_put(batch, self.sharded)
      else:
        step_fn = self._step
      h1, h5 = jax.device_get(step_fn(state, batch, s))
      for h in HEADS:
        top1_hits[h].append(h1[h])
        top5_hits[h].append(h5[h])
    out = {}
    for h in HEADS:
      out[f'{self.name}/{h}_top1'] = float(np.concatenate(top1_hits[h])[:self.count].mean())
      out[f'{self.name}/{h}_top5'] = float(np.concatenate(top5_hits[h])[:self.count].mean())
    return out


def make_evaluators(config, model, mesh) -> list[Evaluator]:
  return [Evaluator('equivariance', config, model, mesh, 'train'),
          Evaluator('invariance', config, model, mesh, 'invariance_test')]


def augmentation_share(config, aug_cfg, local_batch, examples_per_s) -> float:
  """Share of a training step spent generating its two views (timed alone on this batch)."""
  fn = augment_kernel.make_augment_fn(aug_cfg)
  tt, y = jnp.asarray(local_batch['two_theta']), jnp.asarray(local_batch['intensity'])
  fn(jax.random.key(0), tt, y).block_until_ready()
  t = time.time()
  for i in range(3):
    out = fn(jax.random.key(i), tt, y)
  out.block_until_ready()
  per_view = (time.time() - t) / 3 / len(tt)
  return float(min(1.0, 2 * per_view * examples_per_s))


class MetricWriter:
  """Scalars to TensorBoard event files (tensorboardX, no TensorFlow) and to metrics.jsonl in the workdir."""

  def __init__(self, workdir: str):
    """Only the first process writes (every process has the same replicated metrics)."""
    self._jsonl = self._tb = None
    if jax.process_index() == 0:
      self._jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a')
      try:
        from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
        self._tb = SummaryWriter(os.path.join(workdir, 'tensorboard'))
      except ImportError:
        pass

  def write(self, step: int, scalars: dict) -> None:
    if self._jsonl is None:
      return
    self._jsonl.write(json.dumps({'step': step, **{k: float(v) for k, v in scalars.items()}}) + '\n')
    self._jsonl.flush()
    if self._tb is not None:
      for k, v in scalars.items():
        self._tb.add_scalar(k, float(v), step)
      self._tb.flush()

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    if self._tb is not None:
      self._tb.close()
