r"""The paper's ablation at the scale of a 2-core CPU: HAND, CNNstatic, CNNaug, DIFCON-SimCLR, DIFCON-Barlow.

  python -m difcon_jax.data.build --synthetic 100000 --prior realistic --seed 0 --out runs/realistic_100k
  python launch/sweep.py --sweep=configs/sweeps/cpu_ablation.py --root=runs/cpu_ablation --parallel=2 \
      --experimental=../shared/data/rruff_dev.npz

The four networks are configs/cpu.py (the shipped model's network and optimiser) with only the paper's
differences: CNNstatic draws each structure's pattern once (`static_augmentation`) and has no contrastive loss,
CNNaug redraws the augmentation every step without it, the DIFCON runs add SimCLR's NT-Xent or Barlow Twins on
two views. All train on the same corpus for the same number of steps with the paper's Table 1 augmentation
(`train`), so that the invariance set (`invariance_test`) holds effects none of them saw, as in the paper. Each
network runs with two seeds, so that an effect can be told from noise. STEPS x 64 examples is about 30 minutes
per run with two runs side by side on the dev machine (80-95 examples/s each, docs/results.md).
"""

CONFIG = 'configs/cpu.py'
CORPUS = 'runs/realistic_100k'
STEPS = 2500
SEEDS = (0, 1)

_COMMON = {'corpus': CORPUS, 'steps': STEPS, 'augmentation': 'train', 'eval_every': 500,
           'checkpoint_every': 500}

MODELS = {
    'CNNstatic': {'static_augmentation': True, 'loss.ssl_weight': 0.0},
    'CNNaug': {'loss.ssl_weight': 0.0},
    'DIFCON-SimCLR': {'loss.ssl': 'nt_xent', 'loss.ssl_weight': 1.0, 'loss.temperature': 0.1},
    'DIFCON-Barlow': {},
}


def get_sweep():
  runs = [{'name': 'HAND', 'hand': True, 'corpus': CORPUS}]
  for name, overrides in MODELS.items():
    for seed in SEEDS:
      runs.append({'name': f'{name}[seed={seed}]', 'config': CONFIG,
                   'overrides': {**_COMMON, **overrides, 'seed': seed}})
  return runs
