r"""The first check on a lent accelerator: augmentation kernel, input pipeline and the training step, in one command.

  python benchmarks/accelerator_check.py --json                 # one GPU or TPU host, within about 8 minutes
  python benchmarks/accelerator_check.py --small --json         # this CPU: the small network, small batches

Three measurements, each after compilation, on every local device (data parallel, as the trainer runs):
1. the augmentation kernel alone (train distribution, 512 peak slots) at --aug_batch patterns per call
   (8,192; --small: 256): patterns/s;
2. the input pipeline (`input_pipeline.PeakBatches.prefetch`, placed on the devices by its background thread)
   alone: structures/s;
3. the training step of the paper-size config (config_base.paper_config: bf16, two views, Barlow Twins, global
   batch 1,024; --small: configs/cpu.py's network, batch 64) fed by that pipeline for --steps steps: examples/s,
   the model FLOP utilisation (the compiled step's FLOPs from XLA's cost analysis per second, over the devices'
   peak, where the device kind's peak is known), and the share of the loop's time spent waiting for the next
   batch.
The corpus is --corpus (any built corpus), else the bundled sample corpus built into a temporary folder. The last
line is one JSON object: patterns_per_s, structures_per_s, examples_per_s, mfu, input_wait_share, device, devices,
memory_used_bytes, and the settings.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

# Dense bf16 peak FLOP/s per device by device kind (vendor data sheets); MFU is left out for other kinds.
PEAK_FLOPS = {'H100': 989e12, 'H200': 989e12, 'A100': 312e12, 'B200': 2250e12, 'TPU v4': 275e12,
              'TPU v5 lite': 197e12, 'TPU v5e': 197e12, 'TPU v5p': 459e12, 'TPU v6 lite': 918e12}


def peak_flops(device_kind: str) -> float | None:
  for name, flops in PEAK_FLOPS.items():
    if name.lower() in device_kind.lower():
      return flops
  return None


def _config(small: bool):
  from difcon_jax import config_base  # pylint: disable=g-import-not-at-top
  if not small:
    return config_base.paper_config()
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location(
      'cpu_config', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'configs', 'cpu.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _corpus(path: str | None) -> str:
  if path:
    return path
  from difcon_jax.data import build
  from difcon_jax.data import bundled_sample as sample  # pylint: disable=g-import-not-at-top
  out = os.path.join(tempfile.mkdtemp(), 'sample_corpus')
  build.build(sample.cif_dir(), out, progress=False)
  return out


def augmentation_rate(aug_cfg, arrays, batch: int, mesh, repeats: int) -> float:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jax.sharding import NamedSharding, PartitionSpec as P  # pylint: disable=g-import-not-at-top
  from difcon_jax.augment import kernel  # pylint: disable=g-import-not-at-top
  idx = np.arange(batch) % len(arrays['two_theta'])
  shard = NamedSharding(mesh, P(mesh.axis_names))
  tt = jax.device_put(arrays['two_theta'][idx], shard)
  y = jax.device_put(arrays['intensity'][idx], shard)
  fn = kernel.make_augment_fn(aug_cfg, mesh)
  fn(jax.random.key(0), tt, y).block_until_ready()
  t = time.perf_counter()
  for i in range(repeats):
    out = fn(jax.random.key(i + 1), tt, y)
  out.block_until_ready()
  return batch * repeats / (time.perf_counter() - t)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--small', action='store_true', help="configs/cpu.py's network and small batches")
  parser.add_argument('--corpus', default=None, help='a built corpus (default: build the bundled sample)')
  parser.add_argument('--steps', type=int, default=None, help='timed training steps (default 300; --small 10)')
  parser.add_argument('--aug_batch', type=int, default=None, help='patterns per kernel call (8,192; --small 256)')
  parser.add_argument('--seconds', type=float, default=None, help='input pipeline seconds (10; --small 3)')
  parser.add_argument('--json', action='store_true')
  args = parser.parse_args(argv)
  steps = args.steps or (10 if args.small else 300)
  aug_batch = args.aug_batch or (256 if args.small else 8192)
  seconds = args.seconds or (3.0 if args.small else 10.0)

  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from difcon_jax import train  # pylint: disable=g-import-not-at-top
  from difcon_jax.augment import params as augment_params  # pylint: disable=g-import-not-at-top
  from difcon_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top

  t_start = time.perf_counter()
  config = _config(args.small)
  config.corpus = _corpus(args.corpus)
  mesh = Mesh(np.array(jax.devices()), (train.DATA_AXIS,))
  rep, shard = NamedSharding(mesh, P()), NamedSharding(mesh, P(train.DATA_AXIS))
  device = jax.devices()[0]

  # The train split, read once: the kernel's inputs are its first batches, the pipeline delivers the rest.
  aug_cfg = augment_params.config(config.augmentation, config.num_bins, config.two_theta_max)
  batch_size = train.global_batch_size(config)
  data = input_pipeline.PeakBatches(config.corpus, 'train', batch_size, config.seed,
                                    process_index=jax.process_index(), process_count=jax.process_count(),
                                    fields=train.step_fields(config, aug_cfg))

  # 1. The augmentation kernel alone.
  first = [data.batch(s) for s in range(-(-aug_batch // data.local_batch))]
  arrays = {k: np.concatenate([b[k] for b in first]) for k in ('two_theta', 'intensity')}
  patterns_per_s = augmentation_rate(aug_cfg, arrays, aug_batch - aug_batch % jax.device_count(), mesh,
                                     repeats=3 if args.small else 10)

  # 2. The input pipeline alone.
  to_global = lambda b: {k: jax.make_array_from_process_local_data(shard, v) for k, v in b.items()}
  batches = data.prefetch(0, place=to_global)
  next(batches)
  t, n = time.perf_counter(), 0
  while time.perf_counter() - t < seconds:
    jax.block_until_ready(next(batches)[1])
    n += 1
  structures_per_s = n * batch_size / (time.perf_counter() - t)
  batches.close()

  # 3. The training step fed by the pipeline.
  model, tx = train.create_model(config), train.create_optimizer(config, batch_size)
  state = jax.device_put(train.init_state(config, model, tx, jnp.zeros((1, config.num_bins))), rep)
  step = functools.partial(train.train_step, model=model, tx=tx, config=config, aug_cfg=aug_cfg, mesh=mesh)
  step_fn = jax.jit(step, in_shardings=(rep, shard), out_shardings=(rep, rep), donate_argnums=0)
  batches = data.prefetch(0, place=to_global)
  _, first = next(batches)
  t = time.perf_counter()
  compiled = step_fn.lower(state, first).compile()
  compile_s = time.perf_counter() - t
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  step_flops = float(cost.get('flops', 0.0)) if cost else 0.0
  state, m = compiled(state, first)
  jax.block_until_ready(m)
  wait, t = 0.0, time.perf_counter()
  for _ in range(steps):
    w = time.perf_counter()
    _, b = next(batches)
    wait += time.perf_counter() - w
    state, m = compiled(state, b)
  jax.block_until_ready((state, m))
  elapsed = time.perf_counter() - t
  batches.close()
  examples_per_s = steps * batch_size / elapsed
  peak = peak_flops(device.device_kind)
  # XLA's cost analysis of an SPMD program counts one device's share: the step's FLOPs over the whole mesh.
  mfu = (step_flops * steps / elapsed) / peak if peak and step_flops else None
  try:
    memory = max((d.memory_stats() or {}).get('peak_bytes_in_use', 0) for d in jax.local_devices())
  except Exception:  # pylint: disable=broad-except
    memory = None
  out = {'patterns_per_s': round(patterns_per_s), 'structures_per_s': round(structures_per_s),
         'examples_per_s': round(examples_per_s, 1), 'mfu': None if mfu is None else round(mfu, 4),
         'input_wait_share': round(wait / elapsed, 4), 'device': device.device_kind,
         'devices': jax.device_count(), 'memory_used_bytes': memory, 'step_gflops': round(step_flops / 1e9, 2),
         'compile_s': round(compile_s, 1), 'global_batch': batch_size, 'steps': steps, 'aug_batch': aug_batch,
         'network': 'configs/cpu.py' if args.small else 'config_base.paper_config', 'bf16': bool(config.model.bf16),
         'final_loss': float(m['loss']), 'total_s': round(time.perf_counter() - t_start, 1)}
  print(f"{out['device']} x{out['devices']}: augmentation {out['patterns_per_s']:,} patterns/s; input "
        f"{out['structures_per_s']:,} structures/s; training {out['examples_per_s']:,} examples/s, MFU "
        f"{out['mfu']}, waiting for input {100 * out['input_wait_share']:.1f}% of the time")
  if args.json:
    print(json.dumps(out))


if __name__ == '__main__':
  main()
