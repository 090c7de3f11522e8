r"""The paper's ablation (Table of section 4): HAND, CNNstatic, CNNaug, DIFCON-SimCLR, DIFCON-Barlow.

  python launch/sweep.py --sweep=configs/sweeps/paper_ablation.py --root=runs/ablation \
      --set=corpus=corpora/icsd --experimental=PATTERNS.npz

Each model trains with its own config file; HAND trains its trees on the same corpus.
"""

CORPUS = 'corpora/icsd'


def get_sweep():
  return [
      {'name': 'HAND', 'hand': True, 'corpus': CORPUS},
      {'name': 'CNNstatic', 'config': 'configs/cnn_static.py', 'overrides': {'corpus': CORPUS}},
      {'name': 'CNNaug', 'config': 'configs/cnn_aug.py', 'overrides': {'corpus': CORPUS}},
      {'name': 'DIFCON-SimCLR', 'config': 'configs/difcon_simclr.py', 'overrides': {'corpus': CORPUS}},
      {'name': 'DIFCON-Barlow', 'config': 'configs/difcon_barlow.py', 'overrides': {'corpus': CORPUS}},
  ]
