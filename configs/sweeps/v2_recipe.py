r"""Which recipe learns most per CPU hour: candidates for the bundled model difcon-cpu-v2 at equal CPU time.

  python -m difcon_jax.data.build --synthetic 100000 --prior realistic --seed 0 --out runs/realistic_100k
  python launch/sweep.py --sweep=configs/sweeps/v2_recipe.py --root=runs/v2_recipe --parallel=2
  python launch/learning_curves.py runs/v2_recipe/* --every 1

Each candidate is configs/cpu.py with v1's contrastive weight (the v1 recipe: its network, `lab` augmentation,
Barlow Twins at weight 0.005, AdamW with a cosine schedule) with one change, trained for the number of steps that
costs the control's CPU budget by FLOPs: steps are set from each network's training-step FLOPs per structure (XLA's
cost analysis of the jitted step, two views and the augmentation included, `benchmarks/cost_analysis.py` with the
override). FLOPs overstate the time of the larger networks on this CPU (width 32 with stem stride 16: 1.9x the
control's FLOPs per step, 1.24x its CPU time; stages (2, 2, 2): 2.1x and 1.7x), so those runs used less than the
control's CPU: compare runs by learning_curves' CPU-minutes column. Chosen on the synthetic held-out sets only; the
measured patterns are evaluated once, on the model that is shipped.
"""

CONFIG = 'configs/cpu.py'
CORPUS = 'runs/realistic_100k'
BATCH = 64
CONTROL_STEPS = 3600  # about 40 CPU minutes of the control on the dev machine (100 structures/s per core)
EVALUATIONS = 6  # per run, evenly spaced: the learning curve's points
V1_SSL_WEIGHT = 0.005  # v1's contrastive weight; the fix of the hypothesis experiments (1.0) is a candidate

# name -> (overrides of configs/cpu.py, GFLOP per structure of the training step, measured as above).
CANDIDATES = {
    'control (v1 recipe)': ({}, 0.200),
    'Barlow Twins weight 1.0': ({'loss.ssl_weight': 1.0}, 0.200),
    'log d grid': ({'grid': 'log_d'}, 0.200),
    'width 32, stem stride 16': ({'model.width': 32, 'model.stem_stride': 16}, 0.381),
    'stages (2, 2, 2)': ({'model.stage_sizes': (2, 2, 2)}, 0.428),
    'width 24': ({'model.width': 24}, 0.434),
    # Do the two changes that moved the invariance set (each +7 points, one seed) add up?
    'log d grid + Barlow Twins weight 1.0': ({'grid': 'log_d', 'loss.ssl_weight': 1.0}, 0.200),
}


def steps(gflop: float) -> int:
  """Steps of BATCH that cost as many FLOPs as the control's CONTROL_STEPS, rounded to a multiple of
  EVALUATIONS x 10."""
  unit = EVALUATIONS * 10
  return max(unit, round(CONTROL_STEPS * CANDIDATES['control (v1 recipe)'][1] / gflop / unit) * unit)


def get_sweep():
  runs = []
  for name, (overrides, gflop) in CANDIDATES.items():
    n = steps(gflop)
    runs.append({'name': name, 'model': name, 'seed': 0, 'config': CONFIG, 'overrides': {
        'corpus': CORPUS, 'batch_size': BATCH, 'steps': n, 'eval_every': n // EVALUATIONS,
        'checkpoint_every': n // EVALUATIONS, 'optimizer.warmup_steps': min(500, n // 8),
        'loss.ssl_weight': V1_SSL_WEIGHT, **overrides, 'seed': 0}})
  return runs
