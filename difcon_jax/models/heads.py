"""The classification heads: their names (HEADS) and their maths (pure JAX): log p(sg) and the one ranking of
labels.

The network (resnet1d) has a crystal-system head (7), an extinction-group head and one space-group head per crystal
system over that system's groups (the paper's 7 + 1 heads). Here they become distributions and rankings; training,
evaluation, predict and the metrics all rank through `rank`, so a metric's top-k is the list predict writes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from difcon_jax.crystallography import spacegroups

HEADS = ('crystal_system', 'extinction_group', 'space_group')  # the one list of the heads' names (labels, metrics)
# Space groups of each crystal system, and for each space group (1-230) its system and its index in that head.
SYSTEM_GROUPS = tuple(tuple(spacegroups.space_groups_of_system(i)) for i in range(7))
HEAD_SIZES = tuple(len(g) for g in SYSTEM_GROUPS)
SG_SYSTEM = np.array([0] + [spacegroups.crystal_system_index(n) for n in range(1, 231)], np.int32)
SG_INDEX_IN_SYSTEM = np.array([0] + [n - SYSTEM_GROUPS[SG_SYSTEM[n]][0] for n in range(1, 231)], np.int32)
# The crystal system of each extinction group (every group lies inside one system), and the groups per system.
EG_SYSTEM = np.array([SG_SYSTEM[m[0]] for m in spacegroups.extinction_table().members], np.int32)
EG_PER_SYSTEM = np.bincount(EG_SYSTEM, minlength=7).astype(np.int32)


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


# A diverging or broken model can emit NaN or infinite logits; ranked as they are, they give space group 0 (the
# -inf column that stands for no group) and repeated labels, and evaluation fails on them.
LOGIT_LIMIT = 1e30


def finite_logits(logits: dict) -> dict:
  """The logits with NaN as the lowest score and every value clipped to ±LOGIT_LIMIT (less for narrow dtypes), so
  that (log-)softmax stays finite and every ranking holds real labels (space groups 1-230)."""
  def fix(x):
    limit = min(LOGIT_LIMIT, float(jnp.finfo(x.dtype).max) / 4)
    return jnp.clip(jnp.nan_to_num(x, nan=-limit), -limit, limit)
  return jax.tree.map(fix, logits)


def _system_first(inside: jax.Array, outside: jax.Array, in_system: jax.Array, size: jax.Array, k: int) -> jax.Array:
  """[batch, k] label indices: the labels of the predicted crystal system by `inside` while there are any, then
  the others by `outside`.

  inside, outside: [batch, labels] scores; in_system: [batch, labels] bool, the labels of the predicted system;
  size: [batch] how many labels that system has. Exact (no bonus added to the scores), so the first entry is the
  argmax of `inside` over the system; ties go to the lower index, as argmax.
  """
  first = jax.lax.top_k(jnp.where(in_system, inside, -jnp.inf), k)[1]
  rest = jax.lax.top_k(jnp.where(in_system, -jnp.inf, outside), k)[1]
  n = jnp.minimum(size, k)[:, None]
  r = jnp.arange(k)[None, :]
  # Rank r: the r-th label inside the system while r < n, then the (r - n)-th outside it.
  return jnp.take_along_axis(jnp.concatenate([first, rest], -1), jnp.where(r < n, r, k + r - n), -1)


def rank(logits: dict, k: int) -> dict:
  """The top-k labels and their probabilities per head: {head: (labels [batch, k'], probabilities [batch, k'])}.

  Crystal systems by their probabilities (k' = min(k, classes)). Extinction groups and space groups are ranked
  with those of the predicted (first) crystal system first, as a crystallographer reads them: extinction groups of
  that system by p(eg), then the others by p(eg), each with p(eg) of the extinction-group head; space groups of
  that system by p(sg | cs), then the others by the joint p(cs) p(sg | cs), each with the joint probability. So the
  first extinction group and the first space group always belong to the first crystal system, and the first
  entries are the argmax of each head (the extinction group and the space group inside the first crystal system).
  Non-finite logits are ranked as `finite_logits` makes them. Jittable (k static).
  """
  logits = finite_logits(logits)
  cs_p = jax.nn.softmax(logits['crystal_system'], -1)
  k_cs = min(k, cs_p.shape[-1])
  cs_idx = jax.lax.top_k(logits['crystal_system'], k_cs)[1]  # ties: the lower index first, as argmax
  out = {'crystal_system': (cs_idx, jnp.take_along_axis(cs_p, cs_idx, -1))}
  cs = cs_idx[:, 0]
  eg_logits = logits['extinction_group']
  k_eg = min(k, eg_logits.shape[-1])
  eg_idx = _system_first(eg_logits, eg_logits, jnp.asarray(EG_SYSTEM)[None, :] == cs[:, None],
                         jnp.asarray(EG_PER_SYSTEM)[cs], k_eg)
  out['extinction_group'] = (eg_idx, jnp.take_along_axis(jax.nn.softmax(eg_logits, -1), eg_idx, -1))
  cond = space_group_conditional_log_probs(logits, cs)  # [batch, 231], finite inside the predicted system
  joint_log = space_group_log_probs(logits)
  sg_idx = _system_first(cond, joint_log, jnp.isfinite(cond), jnp.asarray(HEAD_SIZES)[cs], k)
  out['space_group'] = (sg_idx, jnp.exp(jnp.take_along_axis(joint_log, sg_idx, -1)))
  return out
