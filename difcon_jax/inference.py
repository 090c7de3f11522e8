"""A trained model for inference: restore from a workdir, bring measured patterns to the training grid, predict.

Preprocessing (`to_grid`, used by predict, evaluate and HAND alike): a finely sampled pattern averaged down to
MAX_POINTS_PER_BIN points per model bin (the work after reading then scales with the grid, not the file), 2θ
converted from the measurement wavelength to the training wavelength through d (the paper's formula; points with
no counterpart are dropped with a warning), background removed with pybaselines' SNIP, intensities interpolated
at the bin centres (zero outside the measured range), strongest point scaled to 1 as in training.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os

from etils import epath
import flax.serialization
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from difcon_jax import cli
from difcon_jax import grid as grid_lib
from difcon_jax.crystallography import spacegroups
from difcon_jax.crystallography import wavelength as wavelength_lib
from difcon_jax.io import patterns as patterns_lib
from difcon_jax.models import resnet1d

MAX_POINTS_PER_BIN = 2  # finer patterns are averaged down to this many points per model bin first


@dataclasses.dataclass
class GridPattern:
  values: np.ndarray  # [bins]
  warnings: list[str]


def to_grid(pattern: patterns_lib.Pattern, grid: ml_collections.ConfigDict, wavelength: float | None,
            training_wavelength: float = grid_lib.WAVELENGTH, remove_background: bool = True) -> GridPattern:
  """A measured pattern on the training bins, with its reading warnings and those of the conversion.

  wavelength: of the measurement, Å (None: the file's, else the training wavelength, with a warning).
  Raises PatternError when nothing of it lands on the grid.
  """
  pattern = patterns_lib.coarsen(pattern, MAX_POINTS_PER_BIN * grid.num_bins)
  warnings = list(pattern.warnings)
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
  values = np.interp(grid_lib.bin_centres(grid), tt, y, left=0.0, right=0.0)
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
    """path: a local or cloud (gs://) folder; None: the bundled model. which: 'best' or 'latest' checkpoint of a
    training workdir."""
    path = os.fspath(path or BUNDLED_MODEL)
    config_path = epath.Path(path) / 'config.json'
    if not config_path.exists():
      raise FileNotFoundError(f'{path}: no config.json (not a training workdir or an exported model, or '
                              'training never started)')
    self.config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
    self.model = resnet1d.from_config(self.config)
    self.grid = grid_lib.config(self.config.num_bins, grid_lib.TWO_THETA_MIN, self.config.two_theta_max)
    # Models trained before config.json recorded it were trained at the one wavelength there was.
    self.wavelength = float(self.config.get('wavelength', grid_lib.WAVELENGTH))
    if (epath.Path(path) / _VARIABLES).exists():
      variables, info = _read_exported(path)
      self.step = int(info['step'])
      bundled = cli.is_local(path) and os.path.abspath(path) == os.path.abspath(BUNDLED_MODEL)
      self.source = f"{'bundled model' if bundled else 'exported model'} {info.get('name', path)} (step {self.step})"
    else:
      variables, self.step = _restore_workdir(path, which)
      self.source = f'workdir {path} (step {self.step})'
    self._apply = jax.jit(lambda v, x: self.model.apply(v, x, train=False))
    # Data parallel over all local devices: the batch is split along a 1-D mesh, the weights replicated.
    self.mesh = Mesh(np.array(jax.devices()), ('data',))
    self.variables = jax.device_put(variables, NamedSharding(self.mesh, P()))

  def __call__(self, x: np.ndarray) -> tuple[dict, dict]:
    """Logits and aux (embeddings) for patterns [batch, bins]."""
    x = np.asarray(x, np.float32)
    if len(x) % jax.device_count() == 0:
      x = jax.device_put(x, NamedSharding(self.mesh, P('data')))
    return self._apply(self.variables, x)


def _restore_workdir(workdir: str, which: str) -> tuple[dict, int]:
  """({'params', 'batch_stats'}, step) of the best (else latest) checkpoint; EMA weights when trained with EMA."""
  for name in ((which, 'checkpoints') if which == 'best' else ('checkpoints',)):
    mngr = ocp.CheckpointManager(cli.path(workdir) / name)
    step = mngr.best_step() if name == 'best' else mngr.latest_step()
    if step is not None:
      restored = mngr.restore(step, args=ocp.args.StandardRestore())
      params = restored['ema_params'] if restored.get('ema_params') is not None else restored['params']
      return {'params': params, 'batch_stats': restored['batch_stats']}, int(restored['step'])
  raise FileNotFoundError(f'{workdir}: no checkpoint')


def _read_exported(path: str) -> tuple[dict, dict]:
  variables = flax.serialization.msgpack_restore((epath.Path(path) / _VARIABLES).read_bytes())
  info = json.loads((epath.Path(path) / 'model.json').read_text())
  return variables, info


def export(workdir: str, out: str, name: str, which: str = 'best') -> dict:
  """Writes the inference weights of a training workdir (no optimiser state) as an exported model into out.

  Returns model.json's content: name, step, the workdir, parameter count and the date.
  """
  variables, step = _restore_workdir(workdir, which)
  variables = jax.tree.map(np.asarray, variables)
  out = epath.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  config = json.loads((epath.Path(workdir) / 'config.json').read_text())
  (out / 'config.json').write_text(json.dumps(config, indent=1))
  (out / _VARIABLES).write_bytes(flax.serialization.msgpack_serialize(variables))
  info = {'name': name, 'step': step, 'workdir': os.fspath(cli.path(workdir)),
          'parameters': int(sum(x.size for x in jax.tree.leaves(variables['params']))),
          'date': datetime.date.today().isoformat()}
  (out / 'model.json').write_text(json.dumps(info, indent=1))
  return info


def prediction_columns(ranked: dict, j: int, k: int) -> dict:
  """predict's CSV columns of pattern j from a ranking ({head: (labels [N, k'], probabilities [N, k'])}, as
  models.heads.rank gives): the top-k crystal systems, extinction groups and space groups, best first."""
  row = {}
  cs_i, cs_p = ranked['crystal_system']
  eg_i, eg_p = ranked['extinction_group']
  sg_i, sg_p = ranked['space_group']
  for r in range(k):
    if r < cs_i.shape[1]:
      row[f'crystal_system_{r + 1}'] = spacegroups.CRYSTAL_SYSTEMS[cs_i[j, r]]
      row[f'crystal_system_{r + 1}_p'] = f'{cs_p[j, r]:.4f}'
    if r < eg_i.shape[1]:
      row[f'extinction_group_{r + 1}'] = spacegroups.extinction_group_label(int(eg_i[j, r]))
      row[f'extinction_group_{r + 1}_index'] = int(eg_i[j, r])
      row[f'extinction_group_{r + 1}_p'] = f'{eg_p[j, r]:.4f}'
    row[f'space_group_{r + 1}'] = int(sg_i[j, r])
    row[f'space_group_{r + 1}_symbol'] = spacegroups.symbol(int(sg_i[j, r]))
    row[f'space_group_{r + 1}_p'] = f'{sg_p[j, r]:.4f}'
  return row
