r"""A bound on paper: XLA's cost analysis of the training step and the augmentation kernel against an accelerator's
peak compute and memory bandwidth.

  python benchmarks/cost_analysis.py [--config_file configs/difcon_barlow.py] [--batch 256] [--json]

Lowers (does not run) the jitted training step, two augmented views included, and the augmentation kernel alone
for the config's network and batch, and reads XLA's HLO cost analysis: floating-point operations and bytes
accessed per example. Against an accelerator (default: H100 SXM, 989 TFLOP/s dense bf16, 67 TFLOP/s fp32,
3.35 TB/s HBM) the roofline bound on examples/s is min(peak FLOP/s / FLOPs, bandwidth / bytes). The first
accelerator run is judged against this bound (docs/benchmarks.md). Nothing is allocated at full size: shapes only.
"""

import functools
import json
import os
import sys

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

import xla_cost  # pylint: disable=g-import-not-at-top  (beside this file)

_BATCH = flags.DEFINE_integer('batch', 256, 'Global batch for the analysis.')
_PEAKS = flags.DEFINE_integer('peaks', 512, 'Peak slots per example.')


def _cost(lowered) -> tuple[float, float]:
  return xla_cost.flops_and_bytes(lowered.cost_analysis())


def main(argv):
  del argv
  from difcon_jax import train
  from difcon_jax.augment import kernel
  from difcon_jax.augment import params as augment_params
  config = xla_cost.read_config()
  config.batch_size = _BATCH.value
  b, p = _BATCH.value, _PEAKS.value
  aug_cfg = augment_params.config(config.augmentation, config.num_bins, config.two_theta_max, render_chunk=b)
  model, tx = train.create_model(config), train.create_optimizer(config)
  state = jax.eval_shape(lambda: train.init_state(config, model, tx, jnp.zeros((1, config.num_bins))))
  f32 = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
  i32 = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.int32)
  batch = {'two_theta': f32(b, p), 'intensity': f32(b, p), 'num_peaks': i32(b), 'crystal_system': i32(b),
           'extinction_group': i32(b), 'space_group': i32(b), 'index': jax.ShapeDtypeStruct((b,), jnp.int64)}
  step = jax.jit(functools.partial(train.train_step, model=model, tx=tx, config=config, aug_cfg=aug_cfg))
  step_flops, step_bytes = _cost(step.lower(state, batch))
  augment = jax.jit(lambda key, tt, y: kernel.augment_batch(key, tt, y, aug_cfg))
  aug_flops, aug_bytes = _cost(augment.lower(jax.eval_shape(lambda: jax.random.key(0)), f32(b, p), f32(b, p)))
  peak, bw = xla_cost.PEAK_TFLOPS.value * 1e12, xla_cost.BANDWIDTH_TBS.value * 1e12
  per = lambda x: x / b
  result = {
      'config': xla_cost.CONFIG.value, 'batch': b, 'bf16': bool(config.model.bf16),
      'step_gflops_per_example': per(step_flops) / 1e9, 'step_mbytes_per_example': per(step_bytes) / 1e6,
      'augment_mflops_per_example': per(aug_flops) / 1e6, 'augment_mbytes_per_example': per(aug_bytes) / 1e6,
      'step_bound_examples_per_s': min(peak / per(step_flops), bw / per(step_bytes)),
      'step_compute_bound_examples_per_s': peak / per(step_flops),
      'step_memory_bound_examples_per_s': bw / per(step_bytes),
      'augment_bound_patterns_per_s': min(peak / per(aug_flops), bw / per(aug_bytes)),
      'peak_tflops': xla_cost.PEAK_TFLOPS.value, 'bandwidth_tbs': xla_cost.BANDWIDTH_TBS.value,
  }
  print(f"training step: {result['step_gflops_per_example']:.2f} GFLOP and {result['step_mbytes_per_example']:.1f} MB"
        f" per example -> at most {result['step_bound_examples_per_s']:,.0f} examples/s "
        f"(compute {result['step_compute_bound_examples_per_s']:,.0f}, memory "
        f"{result['step_memory_bound_examples_per_s']:,.0f}); augmentation: "
        f"{result['augment_mflops_per_example']:.1f} MFLOP and {result['augment_mbytes_per_example']:.2f} MB per "
        f"pattern -> at most {result['augment_bound_patterns_per_s']:,.0f} patterns/s")
  if xla_cost.JSON.value:
    print(json.dumps(result))


if __name__ == '__main__':
  app.run(main)
