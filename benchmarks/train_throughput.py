r"""Training-step throughput: the JAX step (augmentation of two views included) against the same network and
step in PyTorch (benchmarks/torch_reference.py), in the same run.

  python benchmarks/train_throughput.py [--model quickstart|paper] [--batch 32] [--steps 10] [--json]

Needs torch (CPU build: pip install torch==2.13.0). Inputs: the bundled sample corpus, built on the fly.
"""

import functools
import json
import os
import sys
import tempfile
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

_MODEL = flags.DEFINE_enum('model', 'quickstart', ['quickstart', 'paper'], 'Network size.')
_BATCH = flags.DEFINE_integer('batch', 32, 'Global batch.')
_STEPS = flags.DEFINE_integer('steps', 10, 'Timed steps.')
_CORPUS = flags.DEFINE_string('corpus', None, 'A built corpus (default: build the bundled sample).')
_JSON = flags.DEFINE_bool('json', False, 'Print one JSON line at the end.')


def main(argv):
  del argv
  import torch
  from configs import quickstart
  from difcon_jax import config_base
  from difcon_jax import train
  from difcon_jax.augment import params as augment_params
  from difcon_jax.crystallography import spacegroups
  from difcon_jax.data import build
  from difcon_jax.data import input_pipeline
  from difcon_jax.data import bundled_sample as sample
  import torch_reference

  config = quickstart.get_config() if _MODEL.value == 'quickstart' else config_base.paper_config()
  config.model.bf16 = False  # CPU
  config.batch_size = _BATCH.value
  config.corpus = _CORPUS.value
  if config.corpus is None:
    config.corpus = tempfile.mkdtemp()
    build.build(sample.cif_dir(), config.corpus, progress=False)
  data = input_pipeline.PeakBatches(config.corpus, 'train', config.batch_size, 0)
  aug_cfg = augment_params.config('train', config.num_bins, config.two_theta_max)

  # JAX.
  model, tx = train.create_model(config), train.create_optimizer(config)
  state = train.init_state(config, model, tx, jnp.zeros((1, config.num_bins)))
  step = jax.jit(functools.partial(train.train_step, model=model, tx=tx, config=config, aug_cfg=aug_cfg),
                 donate_argnums=0)
  batches = [data.batch(i) for i in range(_STEPS.value + 1)]
  state, _ = step(state, batches[0])
  jax.block_until_ready(state)
  t0 = time.perf_counter()
  for b in batches[1:]:
    state, m = step(state, b)
  jax.block_until_ready(state)
  jax_rate = _STEPS.value * config.batch_size / (time.perf_counter() - t0)
  params = sum(x.size for x in jax.tree.leaves(state.params))

  # PyTorch.
  tmodel = torch_reference.Net(config.model, spacegroups.num_extinction_groups())
  tstep = torch_reference.make_step(config, tmodel, aug_cfg.grid, aug_cfg.dist)
  tb = [{k: torch.as_tensor(v.astype(np.int64) if v.dtype.kind in 'iu' else v) for k, v in b.items()}
        for b in batches]
  tstep(tb[0])
  t0 = time.perf_counter()
  for b in tb[1:]:
    tstep(b)
  torch_rate = _STEPS.value * config.batch_size / (time.perf_counter() - t0)
  tparams = sum(p.numel() for p in tmodel.parameters())

  result = dict(model=_MODEL.value, batch=config.batch_size, jax_examples_per_s=jax_rate,
                torch_examples_per_s=torch_rate, ratio=jax_rate / torch_rate, jax_params=int(params),
                torch_params=int(tparams), device=str(jax.devices()[0].device_kind), torch=torch.__version__,
                torch_threads=torch.get_num_threads())
  print(f'{_MODEL.value}: JAX {jax_rate:.1f} examples/s, PyTorch {torch_rate:.1f} examples/s, ratio '
        f'{jax_rate / torch_rate:.2f}x (batch {config.batch_size}, {params:,} / {tparams:,} parameters)')
  if _JSON.value:
    print(json.dumps(result))


if __name__ == '__main__':
  app.run(main)
