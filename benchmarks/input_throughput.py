r"""Host input throughput: batches of peak lists delivered to the training step's input, against the per-record path.

  python benchmarks/input_throughput.py --corpus DIR [--batch 1024] [--seconds 10] [--json]

DIR: any built corpus (the sample corpus of README command 1, runs/realistic_100k, ...). Both paths deliver the
same thing, batches of --batch structures of the train split with the fields the training step reads (peaks and
labels), as arrays on the step's device (`jax.make_array_from_process_local_data` onto the data-parallel
sharding, here the CPU device), each for about --seconds:
- the trainer's pipeline (`input_pipeline.PeakBatches.prefetch`): whole batches gathered from the in-memory
  arrays by one fancy index per field, in a per-epoch permutation, built and placed by a background thread;
- the baseline, the per-record path the trainer used before: a grain MapDataset over the in-memory arrays
  (grain's global shuffle, a dict per record, `grain`'s batching by `np.stack`, read ahead by 4 threads), placed
  on the device by the main thread.
Structures per wall-clock second and per CPU second of this process (all its threads). With --json the last line
is {"structures_per_s", "baseline_structures_per_s", "ratio", "structures_per_cpu_s", ...}.
"""

import json
import os
import time

from absl import app
from absl import flags
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

_CORPUS = flags.DEFINE_string('corpus', None, 'A built corpus (required).')
_BATCH = flags.DEFINE_integer('batch', 1024, 'Structures per batch (global).')
_SECONDS = flags.DEFINE_float('seconds', 10.0, 'Seconds each path runs for (after a warm-up batch).')
_JSON = flags.DEFINE_bool('json', False, 'Print one JSON line at the end.')

# The fields of the training step (train.step_fields without lab effects or CNNstatic's index).
STEP_FIELDS = ('two_theta', 'intensity', 'crystal_system', 'extinction_group', 'space_group')


def _baseline_batches(path: str, batch: int, seed: int = 0):
  """The per-record pipeline: grain over the in-memory arrays, one dict per example."""
  import grain  # pylint: disable=g-import-not-at-top
  from difcon_jax.data import corpus  # pylint: disable=g-import-not-at-top
  arrays = corpus.load_arrays(path, 'train', STEP_FIELDS)
  size = len(arrays['two_theta'])
  lookup = lambda i: {'index': np.int64(i), **{k: v[i] for k, v in arrays.items()}}
  data = grain.MapDataset.range(size).shuffle(seed=seed).repeat().map(lookup).batch(batch)
  return iter(data.to_iter_dataset(grain.ReadOptions(num_threads=4, prefetch_buffer_size=4)))


def _timed(batches, place, seconds: float, batch: int) -> dict:
  jax.block_until_ready(place(next(batches)))  # warm-up: threads started, first epoch's order drawn
  cpu, wall, n = time.process_time(), time.time(), 0
  while time.time() - wall < seconds:
    out = place(next(batches))
    n += 1
  jax.block_until_ready(out)
  wall, cpu = time.time() - wall, time.process_time() - cpu
  return {'structures_per_s': n * batch / wall, 'structures_per_cpu_s': n * batch / max(cpu, 1e-9), 'batches': n}


def main(argv):
  del argv
  if not _CORPUS.value:
    raise app.UsageError('--corpus=DIR is required (a built corpus, e.g. runs/sample_corpus)')
  from difcon_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  sharding = NamedSharding(Mesh(np.array(jax.devices()), ('data',)), P('data'))
  to_device = lambda b: {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in b.items()}
  batch = _BATCH.value

  t = time.time()
  data = input_pipeline.PeakBatches(_CORPUS.value, 'train', batch, seed=0, fields=STEP_FIELDS)
  load_s = time.time() - t
  # The trainer's path: the background thread gathers and places; this thread only takes the ready batches.
  new = _timed((b for _, b in data.prefetch(0, place=to_device)), lambda b: b, _SECONDS.value, batch)
  base = _timed(_baseline_batches(_CORPUS.value, batch), to_device, _SECONDS.value, batch)
  out = {'structures_per_s': round(new['structures_per_s']),
         'baseline_structures_per_s': round(base['structures_per_s']),
         'ratio': round(new['structures_per_s'] / base['structures_per_s'], 1),
         'structures_per_cpu_s': round(new['structures_per_cpu_s']),
         'baseline_structures_per_cpu_s': round(base['structures_per_cpu_s']),
         'batch': batch, 'train_structures': data.size, 'load_s': round(load_s, 1),
         'device': jax.devices()[0].device_kind, 'load_average': os.getloadavg()[0]}
  print(f"pipeline {out['structures_per_s']:,} structures/s, per-record baseline "
        f"{out['baseline_structures_per_s']:,}/s: {out['ratio']}x (batches of {batch}, {data.size:,} structures)")
  if _JSON.value:
    print(json.dumps(out))


if __name__ == '__main__':
  app.run(main)
