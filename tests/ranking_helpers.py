"""The definition the heads' ranking is checked against: top-1 labels by argmax, computed without `heads.rank`."""

import jax.numpy as jnp

from difcon_jax.models import heads


def top1_labels(logits: dict) -> dict:
  """Top-1 labels [batch] per head: the crystal system by argmax, then the extinction group and the space group by
  argmax inside that crystal system (what the first entries of `heads.rank` must be)."""
  logits = heads.finite_logits(logits)
  cs = jnp.argmax(logits['crystal_system'], -1)
  cond = heads.space_group_conditional_log_probs(logits, cs)
  eg_inside = jnp.where(jnp.asarray(heads.EG_SYSTEM)[None, :] == cs[:, None], logits['extinction_group'], -jnp.inf)
  return {'crystal_system': cs, 'extinction_group': jnp.argmax(eg_inside, -1), 'space_group': jnp.argmax(cond, -1)}
