r"""The paper's ablation at the scale of a 2-core CPU: HAND, CNNstatic, CNNaug, DIFCON-SimCLR, DIFCON-Barlow.

  python -m difcon_jax.data.build --synthetic 100000 --prior realistic --seed 0 --out runs/realistic_100k
  python launch/sweep.py --sweep=configs/sweeps/cpu_ablation.py --root=runs/cpu_ablation --parallel=2 \
      --experimental=../shared/data/rruff_dev.npz --results_csv=docs/results.csv --results_md=docs/results.md

The four networks are configs/cpu.py (the shipped model's network and optimiser) with only the paper's
differences: CNNstatic draws each structure's pattern once (`static_augmentation`) and has no contrastive loss,
CNNaug redraws the augmentation every step without it, the DIFCON runs add SimCLR's NT-Xent or Barlow Twins on
two views. All train on the same corpus for the same number of steps, with two augmented views of each structure
per step (CNNstatic: two copies of its one fixed draw), and with the paper's Table 1 augmentation (`train`), so
that the invariance set (`invariance_test`) holds effects none of them saw, as in the paper. Each network runs
with three seeds, so that an effect can be told from noise. STEPS x 64 structures is about 20 CPU minutes per
run on the dev machine; the sweep writes each run's wall and CPU seconds to ROOT/NAME.timing.json.
"""

from difcon_jax import sweeps

CONFIG = 'configs/cpu.py'
CORPUS = 'runs/realistic_100k'
# 2,000 steps: every network's invariance accuracy peaks by step 2,000 (the first ablation ran 4,000 steps of
# the same networks, docs/results.md), and three seeds of 2,000 cost what two of 4,000 did.
STEPS = 2000
EVAL_EVERY = 250  # the invariance peak is early: evaluate often enough to see it
SEEDS = (0, 1, 2)

# views=2 for every network: each step renders two augmented patterns per structure for all four (the
# contrastive loss needs them; the CNNs average their classification loss over both), so that the networks see
# the same patterns and spend the same CPU time per step.
COMMON = {'corpus': CORPUS, 'steps': STEPS, 'augmentation': 'train', 'eval_every': EVAL_EVERY,
          'checkpoint_every': EVAL_EVERY, 'views': 2}

MODELS = {
    'CNNstatic': {'static_augmentation': True, 'loss.ssl_weight': 0.0},
    'CNNaug': {'loss.ssl_weight': 0.0},
    'DIFCON-SimCLR': {'loss.ssl': 'nt_xent', 'loss.ssl_weight': 1.0, 'loss.temperature': 0.1},
    'DIFCON-Barlow': {'loss.ssl_weight': 1.0},  # config_base's weight since the hypothesis experiments
}


# The paper's numbers, shown under each model's row (configs/sweeps/paper_ablation.py holds them).
PAPER = sweeps.load_file(sweeps.beside(__file__, 'paper_ablation.py')).PAPER


def get_sweep():
  # Bounded trees: fully grown ones need more than 19 GB on 90,000 structures (docs/results.md).
  runs = [{'name': 'HAND', 'hand': True, 'corpus': CORPUS, 'hand_flags': {'trees': 100, 'min_samples_leaf': 10}}]
  for seed in SEEDS:  # every model's first seed before any second one
    for name, overrides in MODELS.items():
      runs.append({'name': f'{name}[seed={seed}]', 'model': name, 'seed': seed, 'config': CONFIG,
                   'overrides': {**COMMON, **overrides, 'seed': seed}})
  return runs
