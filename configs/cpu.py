r"""The CPU recipe: a small DIFCON that learns symmetry on a 2-core CPU in about two hours.

  python -m difcon_jax.data.build --synthetic 200000 --prior realistic --seed 0 --out runs/realistic_200k
  python -m difcon_jax.train --config=configs/cpu.py --workdir=runs/cpu

Trains on the realistic synthetic corpus with the paper's augmentation and Barlow Twins head. The network's
pattern features go through attention over the downsampled positions (`pooling='attention'`): the measured
comparison with global average pooling and with flattened positions is in docs/results.md. The shipped model
(difcon_jax/pretrained/default, docs/model_card.md) was trained with this config.
"""

from difcon_jax import config_base


def get_config():
  c = config_base.paper_config()
  c.corpus = 'runs/realistic_200k'
  c.batch_size = 64
  c.steps = 40_000
  c.log_every = 100
  c.eval_every = 1000
  c.eval_batch_size = 256
  c.eval_examples = 2048
  c.checkpoint_every = 500
  c.keep_checkpoints = 2
  c.best_metric = 'equivariance/crystal_system_top1'
  c.model.update(dict(stage_sizes=(1, 1, 1), width=16, stem_stride=8, embedding_dim=128, projector_dims=(256, 256),
                      bf16=False, pooling='attention', attention_layers=2, attention_heads=4))
  c.optimizer.update(dict(name='adamw', learning_rate=2e-3, warmup_steps=500, final_lr_fraction=0.02,
                          weight_decay=1e-4))
  return c
