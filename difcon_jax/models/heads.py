"""The maths of the classification heads (pure JAX): log p(sg), top-1 labels and the one ranking of labels.

The network (resnet1d) has a crystal-system head (7), an extinction-group head and one space-group head per crystal
system over that system's groups (the paper's 7 + 1 heads). Here they become distributions and rankings; training,
evaluation, predict and the metrics all rank through `rank`, so a metric's top-k is the list predict writes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from difcon_jax.crystallography import spacegroups

HEADS = ('crystal_system', 'extinction_group', 'space_group')
# Space groups of each crystal system, and for each space group (1-230) its system and its index in that head.
SYSTEM_GROUPS = tuple(tuple(spacegroups.space_groups_of_system(i)) for i in range(7))
HEAD_SIZES = tuple(len(g) for g in SYSTEM_GROUPS)
SG_SYSTEM = np.array([0] + [spacegroups.crystal_system_index(n) for n in range(1, 231)], np.int32)
SG_INDEX_IN_SYSTEM = np.array([0] + [n - SYSTEM_GROUPS[SG_SYSTEM[n]][0] for n in range(1, 231)], np.int32)


def space_group_log_probs(logits: dict) -> jax.Array:
  """[batch, 231] log p(sg) = log p(cs) + log p(sg | cs); column 0 (no space group) is -inf."""
  cs = jax.nn.log_softmax(logits['crystal_system'], -1)
  parts = [jnp.full(cs.shape[:1] + (1,), -jnp.inf, cs.dtype)]
  for c, head in enumerate(logits['space_group']):
    parts.append(cs[:, c:c + 1] + jax.nn.log_softmax(head, -1))
  return jnp.concatenate(parts, -1)


def space_group_conditional_log_probs(logits: dict, crystal_system: jax.Array) -> jax.Array:
  """[batch, 231] log p(sg | cs = crystal_system), -inf outside that system (the training loss, the ranking)."""
  parts = [jnp.full(crystal_system.shape + (1,), -jnp.inf)]
  for c, head in enumerate(logits['space_group']):
    lp = jax.nn.log_softmax(head, -1)
    parts.append(jnp.where((crystal_system == c)[:, None], lp, -jnp.inf))
  return jnp.concatenate(parts, -1)


def predict(logits: dict) -> dict:
  """Top-1 labels [batch] per head: the first entries of `rank`, the space group inside the predicted system."""
  cs = jnp.argmax(logits['crystal_system'], -1)
  cond = space_group_conditional_log_probs(logits, cs)
  return {'crystal_system': cs, 'extinction_group': jnp.argmax(logits['extinction_group'], -1),
          'space_group': jnp.argmax(cond, -1)}


def rank(logits: dict, k: int) -> dict:
  """The top-k labels and their probabilities per head: {head: (labels [batch, k'], probabilities [batch, k'])}.

  Crystal systems and extinction groups by their probabilities (k' = min(k, classes)). Space groups: those of the
  predicted crystal system first, by p(sg | cs), then the others by the joint p(cs) p(sg | cs); the probability
  given is the joint one. So the first space group always belongs to the first crystal system, and the first
  entries are `predict`'s labels. Jittable (k static).
  """
  cs_p = jax.nn.softmax(logits['crystal_system'], -1)
  eg_p = jax.nn.softmax(logits['extinction_group'], -1)
  out = {}
  for name, p in (('crystal_system', cs_p), ('extinction_group', eg_p)):
    idx = jax.lax.top_k(logits[name], min(k, p.shape[-1]))[1]  # ties: the lower index first, as argmax
    out[name] = (idx, jnp.take_along_axis(p, idx, -1))
  cs = out['crystal_system'][0][:, 0]
  cond = space_group_conditional_log_probs(logits, cs)  # [batch, 231], finite inside the predicted system
  joint_log = space_group_log_probs(logits)
  inside = jax.lax.top_k(cond, k)[1]
  outside = jax.lax.top_k(jnp.where(jnp.isfinite(cond), -jnp.inf, joint_log), k)[1]
  # Rank r: the r-th group inside the system while there are any, then the (r - n)-th outside it (exact, no
  # bonus added to the scores, so the first entry is predict's argmax).
  n = jnp.minimum(jnp.asarray(HEAD_SIZES)[cs], k)[:, None]
  r = jnp.arange(k)[None, :]
  sg_idx = jnp.take_along_axis(jnp.concatenate([inside, outside], -1), jnp.where(r < n, r, k + r - n), -1)
  out['space_group'] = (sg_idx, jnp.exp(jnp.take_along_axis(joint_log, sg_idx, -1)))
  return out
