r"""Quickstart: the embedded default, a few minutes on a 2-core CPU.

  python -m difcon_jax.train --config=configs/quickstart.py --workdir=runs/quickstart

Trains a small DIFCON (Barlow Twins + classification heads) on the bundled synthetic sample corpus (built by the
README's main command into runs/sample_corpus) and reports equivariance and invariance accuracies per head.
"""

from difcon_jax import config_base


def get_config():
  c = config_base.paper_config()
  c.corpus = 'runs/sample_corpus'
  c.batch_size = 32
  c.steps = 600
  c.log_every = 25
  c.eval_every = 300
  c.eval_batch_size = 64
  c.eval_examples = 512
  c.checkpoint_every = 200
  c.keep_checkpoints = 2
  c.model.update(dict(stage_sizes=(1, 1, 1), width=16, stem_stride=8, embedding_dim=128, projector_dims=(256, 256),
                      bf16=False, pooling='attention', attention_layers=2, attention_heads=4))
  c.optimizer.update(dict(name='adamw', learning_rate=2e-3, warmup_steps=30, final_lr_fraction=0.05,
                          weight_decay=1e-4))
  # The weight the README's figures were measured with; the recipe's is 1.0 since the hypothesis experiments
  # (config_base), untested on this 600-step run.
  c.loss.ssl_weight = 0.005
  return c
