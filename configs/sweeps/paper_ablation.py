r"""The paper's ablation (Table of section 4): HAND, CNNstatic, CNNaug, DIFCON-SimCLR, DIFCON-Barlow.

  python launch/sweep.py --sweep=configs/sweeps/paper_ablation.py --root=runs/ablation \
      [--set=corpus=corpora/icsd] --experimental=PATTERNS.npz [--results_csv=FILE.csv --results_md=FILE.md]

Each model trains with its own config file (the paper-size network, an accelerator's work); HAND trains its trees
on the same corpus. The table shows the paper's numbers (PAPER) under each model. The same ablation at the scale
of a 2-core CPU, with two seeds per network, is configs/sweeps/cpu_ablation.py; its results are docs/results.csv
and the section "The paper's ablation at CPU scale" of docs/results.md.
"""

CORPUS = 'runs/mp'  # real structures: data.build --cifs ../shared/data/mp_structures.tar.xz --out runs/mp

# The paper's numbers (section 4: CNNstatic, CNNaug, DIFCON with Barlow Twins; HAND section 4.2, no invariance
# figure; no numbers are given for SimCLR) for the table's paper rows, as fractions.
PAPER = {
    'HAND': {'equivariance/crystal_system': 0.94, 'equivariance/extinction_group': 0.91,
             'equivariance/space_group': 0.87, 'experimental/crystal_system': 0.555,
             'experimental/extinction_group': 0.32, 'experimental/space_group': 0.395},
    'CNNstatic': {'equivariance/crystal_system': 0.89, 'equivariance/extinction_group': 0.82,
                  'equivariance/space_group': 0.79, 'invariance/crystal_system': 0.40,
                  'invariance/extinction_group': 0.33, 'invariance/space_group': 0.24,
                  'experimental/crystal_system': 0.22, 'experimental/extinction_group': 0.15,
                  'experimental/space_group': 0.13},
    'CNNaug': {'equivariance/crystal_system': 0.90, 'equivariance/extinction_group': 0.83,
               'equivariance/space_group': 0.81, 'invariance/crystal_system': 0.45,
               'invariance/extinction_group': 0.35, 'invariance/space_group': 0.28,
               'experimental/crystal_system': 0.23, 'experimental/extinction_group': 0.16,
               'experimental/space_group': 0.13},
    'DIFCON-Barlow': {'equivariance/crystal_system': 0.88, 'equivariance/extinction_group': 0.80,
                      'equivariance/space_group': 0.78, 'invariance/crystal_system': 0.79,
                      'invariance/extinction_group': 0.71, 'invariance/space_group': 0.66,
                      'experimental/crystal_system': 0.74, 'experimental/extinction_group': 0.48,
                      'experimental/space_group': 0.41},
}


def get_sweep():
  return [
      {'name': 'HAND', 'hand': True, 'corpus': CORPUS},
      {'name': 'CNNstatic', 'config': 'configs/cnn_static.py', 'overrides': {'corpus': CORPUS}},
      {'name': 'CNNaug', 'config': 'configs/cnn_aug.py', 'overrides': {'corpus': CORPUS}},
      {'name': 'DIFCON-SimCLR', 'config': 'configs/difcon_simclr.py', 'overrides': {'corpus': CORPUS}},
      {'name': 'DIFCON-Barlow', 'config': 'configs/difcon_barlow.py', 'overrides': {'corpus': CORPUS}},
  ]
