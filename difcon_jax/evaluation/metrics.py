"""Metrics of ranked predictions (pure functions of arrays): hits at k, accuracies, consistency, confusion.

Every evaluation (the trainer's periodic one, evaluate, HAND) ranks its labels once, into [examples, k] arrays per
head with the best first (the network through `models.heads.rank`), and computes every number here from those
rankings; top-1 is the first column of the same list as top-5, so top-1 <= top-5 always. The array functions
accept NumPy or JAX arrays (the training step calls them inside jit).
"""

from __future__ import annotations

import numpy as np

from difcon_jax.crystallography import spacegroups
from difcon_jax.models import heads

TOP_K = (1, 5)


def accuracy_names() -> list[str]:
  """The keys of `accuracies`: '{head}_top{k}'."""
  return [f'{h}_top{k}' for h in heads.HEADS for k in TOP_K]


def labels_of_space_groups(space_groups) -> dict[str, np.ndarray]:
  """{head: [N] int} for ITA space-group numbers 1-230: the crystal system, extinction group and space group."""
  sg = np.asarray(space_groups, np.int64).reshape(-1)
  return {'crystal_system': np.array([spacegroups.crystal_system_index(int(s)) for s in sg], np.int64),
          'extinction_group': np.array([spacegroups.extinction_group(int(s)) for s in sg], np.int64),
          'space_group': sg}


def hits_at_k(ranked, labels, k: int):
  """[N] bool: the label is among the first k of the ranking. ranked: [N, K] labels, best first; labels: [N]."""
  return (ranked[:, :k] == labels[:, None]).any(-1)


def accuracies(ranked: dict, labels: dict, ks=TOP_K) -> dict[str, float]:
  """{'{head}_top{k}': share of hits} for each head of `ranked` ({head: [N, K]}) and each k."""
  return {f'{h}_top{k}': float(np.mean(np.asarray(hits_at_k(r, labels[h], k)))) for h, r in ranked.items()
          for k in ks}


def outside_rate(crystal_system, labels, head: str = 'space_group') -> float:
  """Share of examples whose label [N] of `head` (a space group 1-230, or an extinction-group index) does not
  belong to their crystal system [N] (0-6)."""
  if head == 'space_group':
    system_of = lambda s: spacegroups.crystal_system_index(int(s))
  else:
    system_of = lambda e: spacegroups.crystal_system_index(spacegroups.extinction_table().members[int(e)][0])
  cs_of = np.array([system_of(x) for x in np.asarray(labels)], np.int64)
  return float(np.mean(cs_of != np.asarray(crystal_system))) if len(cs_of) else 0.0


def confusion(truth, pred, classes: int = 7) -> np.ndarray:
  """[classes, classes] counts, rows the true class and columns the predicted one."""
  m = np.zeros((classes, classes), np.int64)
  np.add.at(m, (np.asarray(truth), np.asarray(pred)), 1)
  return m


def by_crystal_system(confusion_matrix) -> dict[str, dict]:
  """{system: {'examples': patterns of that true system, 'top1': the share of them whose top crystal system is
  right (None when there are none)}} from a [7, 7] crystal-system confusion (rows true): where a model is right
  and where it is not, which one accuracy over a set dominated by a few systems hides."""
  m = np.asarray(confusion_matrix)
  n = m.sum(1)
  return {name: {'examples': int(n[i]), 'top1': float(m[i, i] / n[i]) if n[i] else None}
          for i, name in enumerate(spacegroups.CRYSTAL_SYSTEMS)}


def summary(ranked: dict, labels: dict) -> dict:
  """All metrics of a set: top-1/top-5 per head, the shares of top extinction groups and top space groups outside
  the top crystal system (the consistency of the predictions), the crystal-system confusion, crystal-system top-1
  per true system and the number of examples."""
  out = accuracies(ranked, labels)
  for h in ('extinction_group', 'space_group'):
    out[f'{h}_outside_predicted_crystal_system'] = outside_rate(ranked['crystal_system'][:, 0], ranked[h][:, 0], h)
  out['crystal_system_confusion'] = confusion(labels['crystal_system'], ranked['crystal_system'][:, 0]).tolist()
  out['crystal_system_top1_by_system'] = by_crystal_system(out['crystal_system_confusion'])
  out['examples'] = int(len(labels['crystal_system']))
  return out
