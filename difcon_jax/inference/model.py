"""A trained model for inference: restore from a workdir or an exported model, predict, export.

Measured patterns reach the model grid through io/measured.py (`to_grid`, used by predict, evaluate, index and
HAND alike).
"""

from __future__ import annotations

import datetime
import json
import math
import os

from absl import logging
from etils import epath
import flax.serialization
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from difcon_jax.crystallography import pattern_grid as grid_lib
from difcon_jax.io import workdir as workdir_lib
from difcon_jax.io import outputs
from difcon_jax.models import resnet1d

# The model that predict and evaluate use when no --checkpoint is given: an exported model inside the package.
BUNDLED_MODEL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'pretrained',
                             'default')


class ModelError(ValueError):
  """A model folder that cannot be used; the message is one line naming the file and the problem."""


def model_files(path: str | None) -> list[tuple[str, str]]:
  """(path, what) of the files and folders of a model folder (None: the bundled model) that outputs must not
  overwrite, for io.outputs.clashes."""
  folder = os.fspath(path or BUNDLED_MODEL)
  return [(os.fspath(epath.Path(folder) / name), f"the model's {name}") for name in workdir_lib.MODEL_FILES]


class Model:
  """A trained DIFCON: from a training workdir (config.json and best or latest checkpoint) or an exported model
  (config.json, variables.msgpack and model.json, as `export` writes and the package bundles).

  Every file is checked as it is read: a missing, cut or garbled file, a config.json this version cannot build or
  that describes another network than the weights raise ModelError naming the file and the problem. In a training
  workdir a checkpoint that cannot be restored is passed over, with a warning, for the one before it.

  Attributes:
    config: the training config.
    step: the training step of the weights.
    source: where the weights came from, for the user ('bundled model ...', 'workdir ... step N').
    folder: the model's folder.
  """

  def __init__(self, path: str | None = None, which: str = 'best'):
    """path: a local or cloud (gs://) folder; None: the bundled model. which: 'best' or 'latest' checkpoint of a
    training workdir."""
    path = os.fspath(path or BUNDLED_MODEL)
    self.folder = path  # where files fitted for this model live (autoindex.combine's combination.json)
    self.config, self.model, expected = read_config(path)
    self.grid = grid_lib.from_config(self.config)
    # Models trained before config.json recorded it were trained at the one wavelength there was.
    self.wavelength = float(self.config.get('wavelength', grid_lib.WAVELENGTH))
    if workdir_lib.path(path, workdir_lib.VARIABLES).exists():
      variables, info = _read_exported(path)
      self.step = info['step']
      bundled = outputs.is_local(path) and os.path.abspath(path) == os.path.abspath(BUNDLED_MODEL)
      self.source = f"{'bundled model' if bundled else 'exported model'} {info.get('name', path)} (step {self.step})"
      weights = workdir_lib.path(path, workdir_lib.VARIABLES)
    else:
      variables, self.step, weights, damaged = _restore_checkpoint(path, which)
      passed = f'; passed over {len(damaged)} damaged checkpoint(s): {damaged[0]}' if damaged else ''
      self.source = f'workdir {path} (step {self.step}{passed})'
    check_fits(variables, expected, weights, workdir_lib.path(path, workdir_lib.CONFIG))
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


def _read_json(path: epath.Path) -> dict:
  """A JSON object from a file; ModelError naming the file when it is missing, unreadable, not JSON or empty."""
  try:
    text = path.read_text()
  except FileNotFoundError:
    raise ModelError(f'{path}: missing') from None
  except (OSError, UnicodeDecodeError) as e:
    raise ModelError(f'{path}: cannot be read ({type(e).__name__}: {e})') from None
  try:
    value = json.loads(text)
  except ValueError as e:
    raise ModelError(f'{path}: not valid JSON ({e}); the file is damaged') from None
  if not isinstance(value, dict) or not value:
    raise ModelError(f'{path}: {"empty" if value == {} else "not a JSON object"} ({text.strip()[:40]!r})')
  return value


def read_config(path: str) -> tuple[ml_collections.ConfigDict, resnet1d.DifconNet, dict]:
  """(config, network, the variables' expected shapes) of a model folder's config.json.

  Raises:
    FileNotFoundError: no config.json (not a model folder).
    ModelError: a config.json that cannot be read, or from which no network can be built.
  """
  config_path = workdir_lib.path(path, workdir_lib.CONFIG)
  if not config_path.exists():
    raise FileNotFoundError(f'{path}: no config.json (not a training workdir or an exported model, or '
                            'training never started)')
  raw = _read_json(config_path)
  problems = []
  bins, tt_max, wl = raw.get('num_bins'), raw.get('two_theta_max'), raw.get('wavelength', grid_lib.WAVELENGTH)
  number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
  if not (isinstance(bins, int) and not isinstance(bins, bool) and bins >= 1):
    problems.append(f'num_bins={bins!r} (an integer at least 1)')
  if not (number(tt_max) and 0 < tt_max < 180):
    problems.append(f'two_theta_max={tt_max!r} (degrees, 0-180)')
  if not (number(wl) and 0 < wl <= 10):
    problems.append(f'wavelength={wl!r} (Å, 0-10)')
  if not isinstance(raw.get('model'), dict):
    problems.append(f'model={raw.get("model")!r} (the network\'s settings)')
  if problems:
    raise ModelError(f'{config_path}: {"; ".join(problems)}')
  config = ml_collections.ConfigDict(raw)
  try:
    model = resnet1d.from_config(config)
    expected = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, config.num_bins)), train=False))
  except Exception as e:  # pylint: disable=broad-except  (any value the network cannot take is this file's error)
    raise ModelError(f'{config_path}: no network can be built from it ({type(e).__name__}: '
                     f'{str(e).splitlines()[0] if str(e) else ""})') from None
  return config, model, expected


def check_fits(variables: dict, expected: dict, weights, config_path) -> None:
  """Raises ModelError when the weights (from the file or folder `weights`) are not those of the network that
  config.json describes (another model's config.json beside them, or weights of another version)."""
  have = workdir_lib.array_shapes({k: variables.get(k, {}) for k in ('params', 'batch_stats')})
  want = workdir_lib.array_shapes({k: expected.get(k, {}) for k in ('params', 'batch_stats')})
  differ, extra, missing = workdir_lib.shape_differences(have, want)
  if not (differ or extra or missing):
    return
  if differ:
    detail = f'{differ[0]} is {have[differ[0]]} there, {want[differ[0]]} by config.json'
  elif missing:
    detail = f'{len(missing)} array(s) missing there, e.g. {missing[0]}'
  else:
    detail = f'{len(extra)} array(s) config.json does not describe, e.g. {extra[0]}'
  raise ModelError(f'{weights}: not the weights of the network in {config_path} ({detail}); '
                   'config.json belongs to another model')


def _first_line(e: BaseException) -> str:
  text = str(e).strip().splitlines()
  return f'{type(e).__name__}: {text[0][:200]}' if text else type(e).__name__


def _restore_checkpoint(workdir: str, which: str) -> tuple[dict, int, str, list[str]]:
  """({'params', 'batch_stats'}, step, the checkpoint folder, the damaged checkpoints passed over) of the best
  (else latest) checkpoint; EMA weights when trained with EMA. A checkpoint that cannot be restored (cut or
  garbled files) is passed over with a warning for the next one (the latest checkpoints, newest first).

  Raises:
    FileNotFoundError: no checkpoint at all.
    ModelError: none of the checkpoints can be restored; names each and its problem.
  """
  failed = []
  options = ocp.CheckpointManagerOptions(read_only=True)  # reading never creates or deletes anything
  for name, folder in workdir_lib.checkpoint_folders(workdir, which):
    if not folder.is_dir():
      continue
    try:
      mngr = ocp.CheckpointManager(folder, options=options)
      steps = [mngr.best_step()] if name == workdir_lib.BEST else sorted(mngr.all_steps(), reverse=True)
    except Exception as e:  # pylint: disable=broad-except  (a garbled checkpoint folder is that folder's error)
      failed.append(f'{folder}: {_first_line(e)}')
      continue

    def restore(step, mngr=mngr):
      restored = mngr.restore(step, args=ocp.args.StandardRestore())
      params = restored['ema_params'] if restored.get('ema_params') is not None else restored['params']
      return {'params': params, 'batch_stats': restored['batch_stats']}, int(restored['step'])

    def passed_over(step, e, folder=folder):
      failed.append(f'{folder / str(step)}: {_first_line(e)}')
      logging.warning('%s: cannot be restored (%s); trying the checkpoint before it', folder / str(step),
                      _first_line(e))

    step, restored = workdir_lib.restore_newest(steps, restore, passed_over)
    if step is not None:
      variables, step_done = restored
      return variables, step_done, os.fspath(folder / str(step)), failed
  if failed:
    raise ModelError(f'{workdir}: no checkpoint can be restored; {"; ".join(failed)}')
  raise FileNotFoundError(f'{workdir}: no checkpoint')


def _restore_workdir(workdir: str, which: str) -> tuple[dict, int]:
  """({'params', 'batch_stats'}, step) of the best (else latest) checkpoint that can be restored."""
  variables, step, _, _ = _restore_checkpoint(workdir, which)
  return variables, step


def _read_exported(path: str) -> tuple[dict, dict]:
  """(variables, model.json) of an exported model, each file checked."""
  weights = workdir_lib.path(path, workdir_lib.VARIABLES)
  try:
    raw = weights.read_bytes()
  except OSError as e:
    raise ModelError(f'{weights}: cannot be read ({e.strerror or e})') from None
  if not raw:
    raise ModelError(f'{weights}: empty')
  try:
    variables = flax.serialization.msgpack_restore(raw)
  except Exception as e:  # pylint: disable=broad-except  (msgpack raises many kinds for cut or garbled bytes)
    raise ModelError(f'{weights}: not readable weights, the file is cut or damaged ({_first_line(e)})') from None
  if not isinstance(variables, dict) or not isinstance(variables.get('params'), dict):
    raise ModelError(f'{weights}: no params in it; not the weights of a model')
  info = _read_json(workdir_lib.path(path, workdir_lib.MODEL_INFO))
  step = info.get('step')
  if not (isinstance(step, int) and not isinstance(step, bool) and step >= 0):
    raise ModelError(f"{workdir_lib.path(path, workdir_lib.MODEL_INFO)}: step={step!r} (an integer at least 0)")
  return variables, info


def export(workdir: str, out: str, name: str, which: str = 'best') -> dict:
  """Writes the inference weights of a training workdir (no optimiser state) as an exported model into out, each
  file atomically (io.outputs.write), model.json last.

  Returns model.json's content: name, step, the workdir, parameter count and the date.
  Raises FileNotFoundError (not a training workdir, no checkpoint) or ModelError (damaged).
  """
  _, _, expected = read_config(workdir)
  variables, step, weights, _ = _restore_checkpoint(workdir, which)
  config_path = workdir_lib.path(workdir, workdir_lib.CONFIG)
  check_fits(variables, expected, weights, config_path)
  variables = jax.tree.map(np.asarray, variables)
  out = epath.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  with outputs.write(out / workdir_lib.CONFIG) as f:
    f.write(json.dumps(_read_json(config_path), indent=1))  # as the training wrote it
  with outputs.write(out / workdir_lib.VARIABLES, 'wb') as f:
    f.write(flax.serialization.msgpack_serialize(variables))
  # The workdir as given (runs/NAME): a shipped model.json names no folder of the machine that exported it.
  info = {'name': name, 'step': step, 'workdir': os.fspath(workdir),
          'parameters': int(sum(x.size for x in jax.tree.leaves(variables['params']))),
          'date': datetime.date.today().isoformat()}
  with outputs.write(out / workdir_lib.MODEL_INFO) as f:
    f.write(json.dumps(info, indent=1))
  return info

