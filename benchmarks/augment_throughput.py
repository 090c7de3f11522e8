r"""Augmentation throughput: the jitted JAX kernel against the NumPy reference, in the same run.

  python benchmarks/augment_throughput.py [--batch 256] [--peaks 512] [--distribution train] [--render_chunk N]
                                         [--json]

Inputs are real peak lists: the bundled sample corpus (built on the fly into a temporary folder if --corpus is not
given), padded to --peaks, with each peak's hkl and the cells when the corpus has them (the lab distribution's
preferred orientation uses them). JAX time is after compilation, blocking on the result; the reference renders a
few patterns one at a time. Both are also timed in CPU seconds of this process (all its threads) and the load
average is recorded: on a machine shared with other jobs the wall-clock rates read low, while patterns per CPU
second hardly change. With --json the last line is
{"jax_patterns_per_s", "numpy_patterns_per_s", "jax_patterns_per_cpu_s", "batch", "peaks", "device", ...}.
"""

import json
import os
import tempfile
import time

from absl import app
from absl import flags
import jax
import numpy as np

_BATCH = flags.DEFINE_integer('batch', 256, 'Patterns per kernel call.')
_PEAKS = flags.DEFINE_integer('peaks', 512, 'Peaks per pattern (padded).')
_DIST = flags.DEFINE_string('distribution', 'train', 'train, invariance_test, ideal or lab.')
_CORPUS = flags.DEFINE_string('corpus', None, 'A built corpus (default: build the bundled sample).')
_REPEATS = flags.DEFINE_integer('repeats', 10, 'Timed kernel calls.')
_REF_PATTERNS = flags.DEFINE_integer('reference_patterns', 64, 'Patterns rendered by the NumPy reference.')
_CHUNK = flags.DEFINE_integer('render_chunk', None, 'Patterns rendered together (default: 8 on a CPU, the whole '
                              'batch on accelerators).')
_JSON = flags.DEFINE_bool('json', False, 'Print one JSON line at the end.')


def _peak_arrays(peaks):
  from difcon_jax.data import build
  from difcon_jax.data import corpus
  from difcon_jax.data import bundled_sample as sample
  path = _CORPUS.value
  if path is None:
    path = tempfile.mkdtemp()
    build.build(sample.cif_dir(), path, progress=False)
  a = corpus.load_arrays(path, 'train')
  tt, y, hkl = a['two_theta'], a['intensity'], a.get('hkl')
  if tt.shape[1] < peaks:
    pad = ((0, 0), (0, peaks - tt.shape[1]))
    tt, y = np.pad(tt, pad), np.pad(y, pad)
    hkl = None if hkl is None else np.pad(hkl, pad + ((0, 0),))
  hkl = None if hkl is None or 'cell' not in a else hkl[:, :peaks]
  return tt[:, :peaks], y[:, :peaks], hkl, a.get('cell'), a['num_peaks']


def main(argv):
  del argv
  from difcon_jax.augment import kernel
  from difcon_jax.augment import params
  from difcon_jax.augment import reference
  cfg = params.config(_DIST.value, render_chunk=_CHUNK.value)
  tt_all, y_all, hkl_all, cell_all, num_peaks = _peak_arrays(_PEAKS.value)
  idx = np.arange(_BATCH.value) % len(tt_all)
  tt, y = jax.device_put(tt_all[idx]), jax.device_put(y_all[idx])
  extra = () if hkl_all is None else (jax.device_put(hkl_all[idx]), jax.device_put(cell_all[idx]))
  fn = kernel.make_augment_fn(cfg)
  t0 = time.perf_counter()
  fn(jax.random.key(0), tt, y, *extra).block_until_ready()
  compile_s = time.perf_counter() - t0
  load_before = os.getloadavg()[0]
  t0, c0 = time.perf_counter(), time.process_time()
  for i in range(_REPEATS.value):
    out = fn(jax.random.key(i + 1), tt, y, *extra)
  out.block_until_ready()
  jax_rate = _REPEATS.value * _BATCH.value / (time.perf_counter() - t0)
  jax_cpu_rate = _REPEATS.value * _BATCH.value / (time.process_time() - c0)

  n_ref = _REF_PATTERNS.value
  draws = jax.jit(lambda k: kernel.sample_draws(k, cfg, n_ref, tt.shape[1]))(jax.random.key(0))
  draws = jax.tree.map(np.asarray, draws)
  t0, c0 = time.perf_counter(), time.process_time()
  for i in range(n_ref):
    orientation = () if hkl_all is None else (hkl_all[idx[i]], cell_all[idx[i]])
    reference.render(tt_all[idx[i]], y_all[idx[i]], {k: v[i] for k, v in draws.items()}, cfg, *orientation)
  numpy_rate = n_ref / (time.perf_counter() - t0)
  numpy_cpu_rate = n_ref / (time.process_time() - c0)

  device = jax.devices()[0]
  result = dict(jax_patterns_per_s=jax_rate, numpy_patterns_per_s=numpy_rate, ratio=jax_rate / numpy_rate,
                jax_patterns_per_cpu_s=jax_cpu_rate, numpy_patterns_per_cpu_s=numpy_cpu_rate,
                load_average=(load_before, os.getloadavg()[0]),
                batch=_BATCH.value, peaks=int(tt.shape[1]), mean_real_peaks=float(np.mean(num_peaks)),
                bins=cfg.grid.num_bins, distribution=_DIST.value, compile_s=compile_s,
                render_chunk=kernel.render_chunk(cfg, _BATCH.value), hkl=hkl_all is not None,
                device=f'{device.platform}: {device.device_kind}', num_devices=jax.device_count())
  print(f'JAX {jax_rate:,.0f} patterns/s, NumPy reference {numpy_rate:.1f} patterns/s, '
        f'ratio {jax_rate / numpy_rate:,.0f}x '
        f'(batch {_BATCH.value}, {tt.shape[1]} peak slots, {cfg.grid.num_bins} bins, {result["device"]}, '
        f'compile {compile_s:.1f} s)')
  print(f'per CPU second: JAX {jax_cpu_rate:,.0f}, NumPy reference {numpy_cpu_rate:.1f}; load average '
        f'{result["load_average"][0]:.1f} -> {result["load_average"][1]:.1f} on {os.cpu_count()} CPUs')
  if _JSON.value:
    print(json.dumps(result))


if __name__ == '__main__':
  app.run(main)
