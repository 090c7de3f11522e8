r"""Real structures against synthetic ones at equal CPU time: the candidates for difcon-cpu-v3.

  python -m difcon_jax.data.build --cifs ../shared/data/mp_structures.tar.xz --out runs/mp
  python -m difcon_jax.data.build --synthetic 100000 --prior realistic --seed 0 --out runs/realistic_100k
  python -m difcon_jax.data.build --merge runs/mp,runs/realistic_100k --out runs/mp_mix
  python launch/sweep.py --sweep=configs/sweeps/v3_data.py --root=runs/v3_data --parallel=2
  python launch/learning_curves.py runs/v3_data/* --every 1

Every run is configs/cpu_v3.py (difcon-cpu-v2's network, optimiser and `lab` distribution) for the same number of
steps of the same batch: the same network, so the same CPU time per step (the strain and the loss weights cost
nothing measurable); compare the CPU-minutes column of learning_curves all the same. What changes is the training
data and two additions: the lattice strain of `lab` (off in the control, as v2 was trained) and a class-weighted
crystal-system loss. Each run is evaluated on the same held-out real structures (`real_lab`, `real_table1`) and
the same held-out synthetic ones (the paper's sets). Chosen on those only; the measured patterns are evaluated
once, on the model that is shipped.
"""

CONFIG = 'configs/cpu_v3.py'
STEPS = 3000  # about 40 CPU minutes per run on the dev machine (v2's network: 0.8 CPU s per step of 64)
EVALUATIONS = 6  # per run, evenly spaced: the learning curve's points
NO_STRAIN = {'augment.lattice_strain': (0.0, 0.0), 'augment.lattice_strain_free': (0.0, 0.0)}

# name -> overrides of configs/cpu_v3.py
CANDIDATES = {
    'synthetic (v2 recipe, control)': {'corpus': 'runs/realistic_100k', **NO_STRAIN},
    'real': {'corpus': 'runs/mp', **NO_STRAIN},
    'real + strain': {'corpus': 'runs/mp'},
    'real + synthetic + strain': {'corpus': 'runs/mp_mix'},
    'real + strain + balanced crystal systems': {'corpus': 'runs/mp', 'loss.crystal_system_balance': 0.5},
}


def get_sweep():
  runs = []
  for name, overrides in CANDIDATES.items():
    runs.append({'name': name, 'model': name, 'seed': 0, 'config': CONFIG, 'overrides': {
        'steps': STEPS, 'eval_every': STEPS // EVALUATIONS, 'checkpoint_every': STEPS // EVALUATIONS,
        'optimizer.warmup_steps': 500, **overrides, 'seed': 0}})
  return runs
