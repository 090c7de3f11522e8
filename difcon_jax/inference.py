"""A trained model for inference: restore from a workdir, bring measured patterns to the training grid, predict.

Preprocessing (`to_grid`): 2θ converted from the measurement wavelength to the training wavelength through d
(the paper's formula; points with no counterpart are dropped with a warning), background removed with
pybaselines' SNIP, intensities interpolated at the bin centres (zero outside the measured range), strongest
point scaled to 1 as in training.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os

import flax.serialization
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from difcon_jax.augment import kernel as augment_kernel
from difcon_jax.augment import params as augment_params
from difcon_jax.crystallography import wavelength as wavelength_lib
from difcon_jax.io import patterns as patterns_lib
from difcon_jax.models import resnet1d

TRAINING_WAVELENGTH = wavelength_lib.CU_KA


@dataclasses.dataclass
class GridPattern:
  values: np.ndarray  # [bins]
  warnings: list[str]


def to_grid(pattern: patterns_lib.Pattern, grid: ml_collections.ConfigDict, wavelength: float | None,
            training_wavelength: float = TRAINING_WAVELENGTH, remove_background: bool = True) -> GridPattern:
  """A measured pattern on the training bins. Raises PatternError when nothing of it lands on the grid."""
  warnings = []
  wl = wavelength or pattern.wavelength
  if wl is None:
    wl = training_wavelength
    warnings.append(f'{pattern.path}: no wavelength given or in the file; assumed {training_wavelength} Å')
  tt = wavelength_lib.convert_two_theta(pattern.two_theta, wl, training_wavelength)
  y = pattern.intensity
  ok = np.isfinite(tt)
  if not ok.all():
    limit = 2 * np.degrees(np.arcsin(min(1.0, wl / training_wavelength)))
    warnings.append(f'{pattern.path}: {int((~ok).sum())} points above 2θ = {limit:.2f}° (measured at {wl} Å) '
                    f'have no counterpart at {training_wavelength} Å: range truncated')
    tt, y = tt[ok], y[ok]
  lo, hi = grid.two_theta_min, grid.two_theta_max
  inside = (tt >= lo) & (tt <= hi)
  if inside.sum() < 10:
    raise patterns_lib.PatternError(f'{pattern.path}: 2θ {tt.min():.2f}-{tt.max():.2f}° (at {training_wavelength} Å)'
                                    f' lies outside the model grid {lo}-{hi}°')
  tt, y = tt[inside], y[inside]
  if remove_background:
    from pybaselines import Baseline  # pylint: disable=g-import-not-at-top
    step = float(np.median(np.diff(tt)))
    half_window = max(3, int(round(1.5 / max(step, 1e-4))))  # wider than any Bragg peak
    baseline, _ = Baseline(x_data=tt).snip(y, max_half_window=half_window, decreasing=True, smooth_half_window=1)
    y = np.maximum(y - baseline, 0.0)
  w = augment_kernel.bin_width(grid)
  centres = lo + (np.arange(grid.num_bins) + 0.5) * w
  values = np.interp(centres, tt, y, left=0.0, right=0.0)
  top = values.max()
  if not top > 0:
    raise patterns_lib.PatternError(f'{pattern.path}: no signal left after background removal')
  return GridPattern((values / top).astype(np.float32), warnings)


# The model that predict and evaluate use when no --checkpoint is given: an exported model inside the package.
BUNDLED_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'pretrained', 'default')
_VARIABLES = 'variables.msgpack'


class Model:
  """A trained DIFCON: from a training workdir (config.json and best or latest checkpoint) or an exported model
  (config.json, variables.msgpack and model.json, as `export` writes and the package bundles).

  Attributes:
    config: the training config.
    step: the training step of the weights.
    source: where the weights came from, for the user ('bundled model ...', 'workdir ... step N').
  """

  def __init__(self, path: str | None = None, which: str = 'best'):
    path = path or BUNDLED_MODEL
    config_path = os.path.join(path, 'config.json')
    if not os.path.exists(config_path):
      raise FileNotFoundError(f'{path}: no config.json (not a training workdir or an exported model, or '
                              'training never started)')
    self.config = ml_collections.ConfigDict(json.load(open(config_path)))
    self.model = resnet1d.from_config(self.config)
    self.grid = augment_params.grid_config(self.config.num_bins, 0.0, self.config.two_theta_max)
    if os.path.exists(os.path.join(path, _VARIABLES)):
      variables, info = _read_exported(path)
      self.step = int(info['step'])
      bundled = os.path.abspath(path) == os.path.abspath(BUNDLED_MODEL)
      self.source = f"{'bundled model' if bundled else 'exported model'} {info.get('name', path)} (step {self.step})"
    else:
      variables, self.step = _restore_workdir(path, which)
      self.source = f'workdir {path} (step {self.step})'
    self._apply = jax.jit(lambda v, x: self.model.apply(v, x, train=False))
    # Data parallel over all local devices: the batch is split along a 1-D mesh, the weights replicated.
    self._mesh = Mesh(np.array(jax.devices()), ('data',))
    self.variables = jax.device_put(variables, NamedSharding(self._mesh, P()))

  def __call__(self, x: np.ndarray) -> tuple[dict, dict]:
    """Logits and aux (embeddings) for patterns [batch, bins]."""
    x = np.asarray(x, np.float32)
    if len(x) % jax.device_count() == 0:
      x = jax.device_put(x, NamedSharding(self._mesh, P('data')))
    return self._apply(self.variables, x)


def _restore_workdir(workdir: str, which: str) -> tuple[dict, int]:
  """({'params', 'batch_stats'}, step) of the best (else latest) checkpoint; EMA weights when trained with EMA."""
  for name in ((which, 'checkpoints') if which == 'best' else ('checkpoints',)):
    mngr = ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, name)))
    step = mngr.best_step() if name == 'best' else mngr.latest_step()
    if step is not None:
      restored = mngr.restore(step, args=ocp.args.StandardRestore())
      params = restored['ema_params'] if restored.get('ema_params') is not None else restored['params']
      return {'params': params, 'batch_stats': restored['batch_stats']}, int(restored['step'])
  raise FileNotFoundError(f'{workdir}: no checkpoint')


def _read_exported(path: str) -> tuple[dict, dict]:
  with open(os.path.join(path, _VARIABLES), 'rb') as f:
    variables = flax.serialization.msgpack_restore(f.read())
  with open(os.path.join(path, 'model.json')) as f:
    info = json.load(f)
  return variables, info


def export(workdir: str, out: str, name: str, which: str = 'best') -> dict:
  """Writes the inference weights of a training workdir (no optimiser state) as an exported model into out.

  Returns model.json's content: name, step, the workdir, parameter count and the date.
  """
  variables, step = _restore_workdir(workdir, which)
  variables = jax.tree.map(np.asarray, variables)
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(workdir, 'config.json')) as f:
    config = json.load(f)
  with open(os.path.join(out, 'config.json'), 'w') as f:
    json.dump(config, f, indent=1)
  with open(os.path.join(out, _VARIABLES), 'wb') as f:
    f.write(flax.serialization.msgpack_serialize(variables))
  info = {'name': name, 'step': step, 'workdir': os.path.abspath(workdir),
          'parameters': int(sum(x.size for x in jax.tree.leaves(variables['params']))),
          'date': datetime.date.today().isoformat()}
  with open(os.path.join(out, 'model.json'), 'w') as f:
    json.dump(info, f, indent=1)
  return info


def ranked(logits: dict, k: int) -> dict:
  """Top-k (labels, probabilities) per head; space groups ranked inside the predicted crystal system first.

  Space groups: the k most probable under p(sg | predicted cs) — all consistent with the top crystal system —
  with their joint probabilities p(cs) p(sg | cs).
  """
  cs_p = jax.nn.softmax(logits['crystal_system'], -1)
  eg_p = jax.nn.softmax(logits['extinction_group'], -1)
  cs_top = jnp.argmax(cs_p, -1)
  cond = resnet1d.space_group_conditional_log_probs(logits, cs_top)
  joint_log = resnet1d.space_group_log_probs(logits)
  joint = jnp.exp(joint_log)
  # Groups of the predicted crystal system first (by p(sg | cs)), then the others by joint probability.
  score = jnp.where(jnp.isfinite(cond), cond + 1e4, joint_log)
  sg_idx = jax.lax.top_k(score, k)[1]
  out = {}
  for name, p in (('crystal_system', cs_p), ('extinction_group', eg_p)):
    idx = jax.lax.top_k(p, min(k, p.shape[-1]))[1]
    out[name] = (np.asarray(idx), np.asarray(jnp.take_along_axis(p, idx, -1)))
  out['space_group'] = (np.asarray(sg_idx), np.asarray(jnp.take_along_axis(joint, sg_idx, -1)))
  return out
