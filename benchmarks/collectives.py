r"""Collectives of the compiled training step: how many all-reduces, and how many bytes, against the parameters.

  python benchmarks/collectives.py --devices 8 [--small] [--json]

Compiles the training step (train.train_step: augmentation, forward and backward of both views, optimiser) of the
paper-size config (config_base.paper_config: DIFCON-Barlow, global batch 1,024) for --devices simulated CPU
devices (XLA_FLAGS=--xla_force_host_platform_device_count), from abstract inputs (nothing is run), and reads the
optimised HLO: every all-reduce (and all-reduce-start) with the bytes of its result. --small compiles configs/cpu.py's
network instead (seconds rather than minutes; the test suite runs it). With --json the last line is
{"allreduce_bytes", "param_bytes", "allreduce_ops", "ratio", "other_collectives", ...}.

The step all-reduces the gradient once, as one flat vector (the parameters' bytes in float32), and the BatchNorm
running statistics with the metrics in one more small vector; the contrastive loss all-gathers the projections
(and the backward pass reduce-scatters their gradient), counted apart under other_collectives.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

_DTYPE_BYTES = {'f32': 4, 'f16': 2, 'bf16': 2, 'f64': 8, 's32': 4, 'u32': 4, 's64': 8, 'u64': 8, 's8': 1,
                'u8': 1, 'pred': 1, 's16': 2, 'u16': 2}
_SHAPE = re.compile(r'\b(f32|f16|bf16|f64|s32|u32|s64|u64|s8|u8|pred|s16|u16)\[([0-9,]*)\]')
_OP = re.compile(r'=\s*(.*?)\s+(all-reduce-start|all-reduce|all-gather-start|all-gather|reduce-scatter|'
                 r'collective-permute-start|collective-permute|all-to-all)\(')


def _bytes(type_text: str) -> int:
  total = 0
  for dtype, dims in _SHAPE.findall(type_text):
    n = 1
    for d in filter(None, dims.split(',')):
      n *= int(d)
    total += n * _DTYPE_BYTES[dtype]
  return total


def collective_stats(hlo_text: str) -> dict:
  """{'allreduce_ops', 'allreduce_bytes', 'allreduce_sizes' (bytes per op), 'other_collectives' ({op: count})}
  of optimised HLO text."""
  sizes, other = [], {}
  for line in hlo_text.splitlines():
    m = _OP.search(line)
    if not m:
      continue
    kind = m.group(2).replace('-start', '')
    if kind == 'all-reduce':
      sizes.append(_bytes(m.group(1)))
    else:
      other[kind] = other.get(kind, 0) + 1
  return {'allreduce_ops': len(sizes), 'allreduce_bytes': sum(sizes), 'allreduce_sizes': sorted(sizes)[::-1],
          'other_collectives': other}


def compiled_step_hlo(config):
  """(optimised HLO text of the training step for every visible device, parameter bytes)."""
  import functools  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from difcon_jax import train  # pylint: disable=g-import-not-at-top
  from difcon_jax.augment import params as augment_params  # pylint: disable=g-import-not-at-top
  from difcon_jax.models import heads  # pylint: disable=g-import-not-at-top

  mesh = Mesh(np.array(jax.devices()), (train.DATA_AXIS,))
  rep, shard = NamedSharding(mesh, P()), NamedSharding(mesh, P(train.DATA_AXIS))
  batch = train.global_batch_size(config)
  model, tx = train.create_model(config), train.create_optimizer(config, batch)
  state = jax.eval_shape(lambda: train.init_state(config, model, tx, jnp.zeros((1, config.num_bins))))
  param_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state.params))
  state = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=rep), state)
  peaks = 512
  spec = {'two_theta': ((batch, peaks), jnp.float32), 'intensity': ((batch, peaks), jnp.float32),
          **{h: ((batch,), jnp.int32) for h in heads.HEADS}}
  batch_in = {k: jax.ShapeDtypeStruct(s, d, sharding=shard) for k, (s, d) in spec.items()}
  aug_cfg = augment_params.config(config.augmentation, config.num_bins, config.two_theta_max)
  step = functools.partial(train.train_step, model=model, tx=tx, config=config, aug_cfg=aug_cfg, mesh=mesh)
  lowered = jax.jit(step, in_shardings=(rep, shard), out_shardings=(rep, rep), donate_argnums=0).lower(
      state, batch_in)
  return lowered.compile().as_text(), param_bytes


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--devices', type=int, default=8)
  parser.add_argument('--small', action='store_true', help="configs/cpu.py's network instead of the paper's")
  parser.add_argument('--json', action='store_true')
  args = parser.parse_args(argv)
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                             f' --xla_force_host_platform_device_count={args.devices}').strip()
  os.environ.setdefault('JAX_PLATFORMS', 'cpu')
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
  import jax  # pylint: disable=g-import-not-at-top
  if args.small:
    import importlib.util  # pylint: disable=g-import-not-at-top
    spec = importlib.util.spec_from_file_location(
        'cpu_config', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'configs', 'cpu.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
  else:
    from difcon_jax import config_base  # pylint: disable=g-import-not-at-top
    config = config_base.paper_config()
  assert jax.device_count() == args.devices, (jax.device_count(), args.devices)
  hlo, param_bytes = compiled_step_hlo(config)
  stats = collective_stats(hlo)
  out = {'allreduce_bytes': stats['allreduce_bytes'], 'param_bytes': int(param_bytes),
         'allreduce_ops': stats['allreduce_ops'], 'ratio': round(stats['allreduce_bytes'] / param_bytes, 4),
         'largest_allreduces': stats['allreduce_sizes'][:4], 'other_collectives': stats['other_collectives'],
         'devices': args.devices, 'network': 'configs/cpu.py' if args.small else 'config_base.paper_config',
         'global_batch': config.batch_size}
  print(f"{out['allreduce_ops']} all-reduces, {out['allreduce_bytes']:,} bytes for {param_bytes:,} bytes of "
        f"parameters ({out['ratio']}x) on {args.devices} devices")
  if args.json:
    print(json.dumps(out))


if __name__ == '__main__':
  main()
