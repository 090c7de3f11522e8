"""A tiny corpus and config for training tests, and the short run that the multi-device test repeats."""

import os
import shutil
import sys

import numpy as np

from difcon_jax.data import build
from difcon_jax.data import corpus
from difcon_jax.data import bundled_sample as sample

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from configs import quickstart  # pylint: disable=g-import-not-at-top  (configs/ is not a package)


def tiny_corpus(out: str, n: int = 120) -> str:
  cifs = os.path.join(out, 'cifs')
  os.makedirs(cifs, exist_ok=True)
  paths = corpus.find_cifs(sample.cif_dir())
  for p in paths[::len(paths) // n][:n]:
    shutil.copy(p, cifs)
  build.build(cifs, os.path.join(out, 'corpus'), workers=1, progress=False)
  return os.path.join(out, 'corpus')


def measured_npz(corpus_path: str, path) -> str:
  """A small 'measured' set in the layout of rruff_dev.npz: six rendered training structures (Table 1 effects,
  8,500 points over 5-90°, counts up to ~1000) with their space groups."""
  import jax
  from difcon_jax.augment import kernel
  from difcon_jax.augment import params
  arrays = corpus.load_arrays(corpus_path, 'train')
  x = np.asarray(kernel.make_augment_fn(params.config('train', 8500, 85.0))(
      jax.random.key(0), arrays['two_theta'][:6], arrays['intensity'][:6]))
  np.savez(path, two_theta=(5 + (np.arange(8500) + 0.5) * 0.01).astype(np.float32),
           intensity=np.maximum(x, 0) * 1000, space_group=arrays['space_group'][:6].astype(np.int16),
           source_id=np.array([f'{i}.npy' for i in range(6)]))
  return str(path)


def tiny_config(corpus_path: str, steps: int = 2):
  c = quickstart.get_config()
  c.corpus = corpus_path
  c.num_bins = 2000
  c.batch_size = 8
  c.steps = steps
  c.log_every = 1
  c.eval_every = steps
  c.eval_batch_size = 8
  c.eval_examples = 8
  c.checkpoint_every = 2
  c.model.stage_sizes = (1,)
  c.model.width = 8
  c.model.embedding_dim = 16
  c.model.projector_dims = (32, 32)
  c.optimizer.warmup_steps = 1
  return c


def data_parallel_params(corpus_path: str, devices: int, steps: int = 2) -> dict:
  """Parameters and BatchNorm statistics after `steps` training steps on the first global batches, with the batch
  split over the first `devices` devices, flattened to {path: array}; the initial ones under 'init/' + path.

  The paper's optimiser, LARS, at learning rate 1 from the first step (no warmup): biases and norm parameters move
  by -lr·g, so the result depends on the gradients of the whole global batch, all-reduced across the devices.
  (AdamW would not do here: it scales the rounding noise of gradients that vanish, e.g. of a bias in front of a
  BatchNorm, up to full-size steps, which then differ with the reduction order.) Mean pooling: the pooling has no
  part in the data parallelism and compiles much faster than attention.
  """
  import jax
  import jax.numpy as jnp
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
  from difcon_jax import train
  from difcon_jax.augment import params as augment_params
  from difcon_jax.data import input_pipeline
  import functools
  config = tiny_config(corpus_path, steps=steps)
  config.model.pooling = 'mean'
  # BatchNorm over the global batch: with each device's own statistics (the default) 8 devices normalise by other
  # statistics than one.
  config.model.cross_device_norm = True
  config.optimizer.update(dict(name='lars', learning_rate=1.0, warmup_steps=0))
  data = input_pipeline.PeakBatches(config.corpus, 'train', config.batch_size, config.seed)
  mesh = Mesh(np.array(jax.devices()[:devices]), ('data',))
  rep, shard = NamedSharding(mesh, P()), NamedSharding(mesh, P('data'))
  model, tx = train.create_model(config), train.create_optimizer(config)
  state = jax.device_put(train.init_state(config, model, tx, jnp.zeros((1, config.num_bins))), rep)
  aug_cfg = augment_params.config(config.augmentation, config.num_bins, config.two_theta_max)
  step = functools.partial(train.train_step, model=model, tx=tx, config=config, aug_cfg=aug_cfg, mesh=mesh)
  step = jax.jit(step, in_shardings=(rep, shard), out_shardings=(rep, rep))
  flat = lambda s: jax.tree_util.tree_flatten_with_path({'params': s.params, 'batch_stats': s.batch_stats})[0]
  out = {'init/' + jax.tree_util.keystr(k): np.asarray(v) for k, v in flat(state)}
  for s in range(steps):
    state, _ = step(state, {k: jax.device_put(v, shard) for k, v in data.batch(s).items()})
  return out | {jax.tree_util.keystr(k): np.asarray(v) for k, v in flat(state)}


if __name__ == '__main__':
  if sys.argv[1] == 'distributed':
    # python tests/train_helpers.py distributed CORPUS WORKDIR OUT.npz [COORDINATOR NUM_PROCESSES PROCESS_ID]:
    # two training steps, as one of several processes when the last three are given; saves the parameters.
    import jax
    from difcon_jax import train
    config = tiny_config(sys.argv[2], steps=2)
    for name in [n for n in config.evals.keys() if n != 'equivariance']:  # one set: evaluation across processes
      del config.evals[name]                                               # is the same for every set
    if len(sys.argv) > 5:
      config.distributed = True
      config.coordinator_address = sys.argv[5]
      config.num_processes, config.process_id = int(sys.argv[6]), int(sys.argv[7])
    state, _ = train.train_and_evaluate(config, sys.argv[3])
    flat = jax.tree_util.tree_flatten_with_path(state.params)[0]
    np.savez(sys.argv[4], processes=jax.process_count(), devices=jax.device_count(),
             **{jax.tree_util.keystr(k): np.asarray(v) for k, v in flat})
  elif sys.argv[1] == 'collectives':
    # python tests/train_helpers.py collectives CORPUS [cross_device_norm]: the all-reduces of the compiled step of
    # tiny_config on every visible device (benchmarks/collectives.py), as one JSON line.
    import json
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'benchmarks'))
    import collectives  # pylint: disable=g-import-not-at-top
    config = tiny_config(sys.argv[2])
    config.model.cross_device_norm = len(sys.argv) > 3
    hlo, param_bytes = collectives.compiled_step_hlo(config)
    print(json.dumps({**collectives.collective_stats(hlo), 'param_bytes': int(param_bytes)}))
  elif sys.argv[1] == 'train':
    # python tests/train_helpers.py train CORPUS WORKDIR STEPS: a run that saves at every step.
    from difcon_jax import train
    config = tiny_config(sys.argv[2], steps=int(sys.argv[4]))
    config.checkpoint_every = 1
    config.keep_checkpoints = 1000
    train.train_and_evaluate(config, sys.argv[3])
  else:
    # python tests/train_helpers.py CORPUS OUT.npz N [N ...]: data_parallel_params on the first N devices for each N,
    # saved under 'N/' + path (XLA_FLAGS=--xla_force_host_platform_device_count gives the process its devices).
    import jax
    runs = {}
    for n in map(int, sys.argv[3:]):
      assert n <= jax.device_count(), (n, jax.device_count())
      runs |= {f'{n}/{k}': v for k, v in data_parallel_params(sys.argv[1], n).items()}
    np.savez(sys.argv[2], devices=jax.device_count(), **runs)
