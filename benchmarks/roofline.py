r"""Per-layer roofline of the paper-size network: which layers are compute-bound and which memory-bound on an H100.

  python benchmarks/roofline.py [--config_file configs/difcon_barlow.py] [--batch 64] [--json]

Each convolution of the backbone (stem, every block's two convolutions and its projection shortcut) and each
normalisation pass is compiled alone, forward and backward (jax.vjp) at the network's precision, for --batch
examples, and XLA's cost analysis gives its floating-point operations and bytes accessed. At an accelerator's peak
(default H100 SXM: 989 TFLOP/s dense bf16, 3.35 TB/s) a layer takes at least max(FLOPs / peak, bytes /
bandwidth); the sum over layers, times the views per example, bounds the training step from below (the heads,
the projector and the optimiser are small beside the backbone and left out). Variants that change the layout are
analysed the same way (--analysis says which of XLA's two cost analyses: before or after fusion): --stem_fold 4 folds the 12,000 x 1 input into 3,000 x 4 before the stem (a stride-1 stem
of kernel 4 on 4 channels covering the same 15-bin receptive field sits at 3,000 positions without the strided
read); --fused_norm counts each normalisation pass as fused into its convolution (no extra pass over memory).
With --json the last line is {"ceiling_examples_per_s", "layers": [...], ...}.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

import xla_cost  # pylint: disable=g-import-not-at-top  (beside this file)

_BATCH = flags.DEFINE_integer('batch', 64, 'Examples per analysed call (costs are reported per example).')
_FOLD = flags.DEFINE_integer('stem_fold', 1, 'Fold the input into this many channels before the stem.')
_FUSED = flags.DEFINE_bool('fused_norm', False, 'Count normalisation passes as fused into the convolutions.')
_ANALYSIS = flags.DEFINE_enum('analysis', 'lowered', ['lowered', 'compiled'], 'Which cost analysis (see _cost).')


def _cost(fn, *args) -> tuple[float, float]:
  lowered = jax.jit(fn).lower(*args)
  # 'lowered': per HLO op before fusion (a convolution's exact reads and writes; every elementwise op of a norm
  # counted as its own pass: pessimistic); 'compiled': after the CPU backend's fusion (norm passes fused; bf16
  # convolutions emulated in float32 on a CPU: their bytes pessimistic).
  return xla_cost.flops_and_bytes(
      lowered.cost_analysis() if _ANALYSIS.value == 'lowered' else lowered.compile().cost_analysis())


def conv_cost(batch, length, c_in, c_out, kernel, stride, dtype) -> tuple[float, float]:
  """FLOPs and bytes of one 1-D convolution, forward and backward (input and weight gradients)."""
  x = jax.ShapeDtypeStruct((batch, length, c_in), dtype)
  w = jax.ShapeDtypeStruct((kernel, c_in, c_out), dtype)

  def fwd_bwd(x, w):
    conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (stride,), 'SAME', dimension_numbers=('NWC', 'WIO', 'NWC'))
    y, vjp = jax.vjp(conv, x, w)
    return vjp(jnp.ones_like(y))
  return _cost(fwd_bwd, x, w)


def norm_cost(batch, length, channels, dtype) -> tuple[float, float]:
  """FLOPs and bytes of a batch normalisation + ReLU over [batch, length, channels], forward and backward."""
  x = jax.ShapeDtypeStruct((batch, length, channels), dtype)

  def fwd_bwd(x):
    def f(x):
      x32 = x.astype(jnp.float32)
      mean, var = x32.mean((0, 1)), x32.var((0, 1))
      return jax.nn.relu((x32 - mean) * jax.lax.rsqrt(var + 1e-5)).astype(x.dtype)
    y, vjp = jax.vjp(f, x)
    return vjp(jnp.ones_like(y))
  return _cost(fwd_bwd, x)


def layers(model_cfg, num_bins: int, fold: int) -> list[dict]:
  """The backbone's convolutions and norms: name, kind, input length and channels, output channels, kernel,
  stride."""
  out = []
  if fold > 1:
    length, c = num_bins // fold, fold
    out.append(dict(name='stem (folded)', kind='conv', length=length, c_in=c, c_out=model_cfg.width,
                    kernel=-(-15 // fold), stride=max(model_cfg.stem_stride // fold, 1)))
    length //= max(model_cfg.stem_stride // fold, 1)
  else:
    out.append(dict(name='stem', kind='conv', length=num_bins, c_in=1, c_out=model_cfg.width, kernel=15,
                    stride=model_cfg.stem_stride))
    length = num_bins // model_cfg.stem_stride
  out.append(dict(name='stem norm', kind='norm', length=length, c_in=model_cfg.width))
  length = -(-length // 2)  # max pool
  c = model_cfg.width
  for i, blocks in enumerate(model_cfg.stage_sizes):
    for j in range(blocks):
      stride = 2 if (j == 0 and i > 0) else 1
      c_out = model_cfg.width * 2**i
      name = f'stage {i} block {j}'
      out.append(dict(name=f'{name} conv1', kind='conv', length=length, c_in=c, c_out=c_out,
                      kernel=model_cfg.kernel_size, stride=stride))
      new_length = -(-length // stride)
      out.append(dict(name=f'{name} norm1', kind='norm', length=new_length, c_in=c_out))
      out.append(dict(name=f'{name} conv2', kind='conv', length=new_length, c_in=c_out, c_out=c_out,
                      kernel=model_cfg.kernel_size, stride=1))
      out.append(dict(name=f'{name} norm2', kind='norm', length=new_length, c_in=c_out))
      if c != c_out or stride != 1:
        out.append(dict(name=f'{name} shortcut', kind='conv', length=length, c_in=c, c_out=c_out, kernel=1,
                        stride=stride))
        out.append(dict(name=f'{name} shortcut norm', kind='norm', length=new_length, c_in=c_out))
      length, c = new_length, c_out
  return out


def main(argv):
  del argv
  config = xla_cost.read_config()
  from difcon_jax import train  # pylint: disable=g-import-not-at-top
  views = train.num_views(config)
  dtype = jnp.bfloat16 if config.model.bf16 else jnp.float32
  b, peak, bw = _BATCH.value, xla_cost.PEAK_TFLOPS.value * 1e12, xla_cost.BANDWIDTH_TBS.value * 1e12
  rows, total = [], 0.0
  for layer in layers(config.model, config.num_bins, _FOLD.value):
    if layer['kind'] == 'conv':
      flops, nbytes = conv_cost(b, layer['length'], layer['c_in'], layer['c_out'], layer['kernel'], layer['stride'],
                                dtype)
    elif _FUSED.value:
      flops, nbytes = 0.0, 0.0
    else:
      flops, nbytes = norm_cost(b, layer['length'], layer['c_in'], dtype)
    t_compute, t_memory = flops / b / peak, nbytes / b / bw
    rows.append({**{k: layer[k] for k in ('name', 'kind', 'length', 'c_in')}, 'gflop': flops / b / 1e9,
                 'mbytes': nbytes / b / 1e6, 'compute_us': t_compute * 1e6, 'memory_us': t_memory * 1e6,
                 'bound': 'memory' if t_memory > t_compute else 'compute'})
    total += max(t_compute, t_memory) * views
  compute_only = sum(r['compute_us'] for r in rows) * views / 1e6
  result = {'config': xla_cost.CONFIG.value, 'analysis': _ANALYSIS.value, 'views': views, 'stem_fold': _FOLD.value, 'fused_norm': _FUSED.value,
            'ceiling_examples_per_s': 1.0 / total, 'compute_only_examples_per_s': 1.0 / compute_only,
            'memory_bound_layers': sum(r['bound'] == 'memory' for r in rows), 'layers_analysed': len(rows),
            'memory_bound_share_of_time': sum(max(r['compute_us'], r['memory_us']) for r in rows
                                              if r['bound'] == 'memory') /
                                          sum(max(r['compute_us'], r['memory_us']) for r in rows),
            'peak_tflops': xla_cost.PEAK_TFLOPS.value, 'bandwidth_tbs': xla_cost.BANDWIDTH_TBS.value, 'layers': rows}
  print(f"{'layer':32s} {'GFLOP':>8s} {'MB':>8s} {'compute µs':>11s} {'memory µs':>10s}  bound")
  for r in rows:
    print(f"{r['name']:32s} {r['gflop']:8.3f} {r['mbytes']:8.2f} {r['compute_us']:11.3f} {r['memory_us']:10.3f}  "
          f"{r['bound']}")
  print(f"ceiling: {result['ceiling_examples_per_s']:,.0f} examples/s ({views} views; compute alone "
        f"{result['compute_only_examples_per_s']:,.0f}); {result['memory_bound_layers']} of {len(rows)} layers "
        f"memory-bound, {100 * result['memory_bound_share_of_time']:.0f}% of the time")
  if xla_cost.JSON.value:
    print(json.dumps(result))


if __name__ == '__main__':
  app.run(main)
