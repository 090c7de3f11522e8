"""Checks the trainer runs before it touches anything: the config's values, the config against the checkpoint
already in the workdir, and metrics.jsonl trimmed to the step a resumed run starts from.

A mistaken rerun (a changed model shape on an existing workdir, `steps=-1`, `best_metric=nope`) is refused with
one line per problem before config.json, checkpoints or logs are written, so the workdir stays usable.
"""

from __future__ import annotations

import json
import math

from etils import epath

from difcon_jax import cli
from difcon_jax import eval_sets
from difcon_jax import metrics
from difcon_jax.augment import params as augment_params

OPTIMIZERS = ('adamw', 'lars')
SSL_LOSSES = ('barlow_twins', 'nt_xent')


class ConfigError(ValueError):
  """A config the trainer refuses; the message has one line per problem."""


def metric_names() -> list[str]:
  """Every name the periodic evaluation reports (what best_metric may be)."""
  return [f'{e}/{m}' for e in eval_sets.SIMULATED for m in metrics.accuracy_names()]


def config_errors(config) -> list[str]:
  """One line per field with a value the trainer cannot use: 'config.steps=-1: an integer at least 1'."""
  errors = []

  def need(ok, field, allowed):
    if not ok:
      errors.append(f'config.{field}={_get(config, field)!r}: {allowed}')

  def integer(field, lo=1):
    v = _get(config, field)
    need(isinstance(v, int) and not isinstance(v, bool) and v >= lo, field, f'an integer at least {lo}')

  def number(field, lo, hi, hi_open=False):
    v = _get(config, field)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and lo <= v and (
        v < hi if hi_open else v <= hi)
    need(ok, field, f'a number from {lo:g} to {hi:g}{" (exclusive)" if hi_open else ""}')

  for field in ('steps', 'batch_size', 'log_every', 'eval_every', 'eval_batch_size', 'eval_examples',
                'checkpoint_every', 'keep_checkpoints', 'num_bins', 'model.width', 'model.embedding_dim',
                'model.kernel_size', 'model.stem_stride'):
    integer(field)
  integer('seed', 0)
  integer('eval_seed', 0)
  number('wavelength', 0.1, 10)
  number('two_theta_max', 1, 180, hi_open=True)
  number('ema_decay', 0, 1, hi_open=True)
  number('optimizer.learning_rate', 0, 1e3)
  need(isinstance(config.get('corpus'), str) and config.corpus != '', 'corpus', 'a corpus folder')
  need(config.get('best_metric') in metric_names(), 'best_metric', f'one of {", ".join(metric_names())}')
  need(config.get('augmentation') in augment_params.DISTRIBUTIONS, 'augmentation',
       f'one of {", ".join(augment_params.DISTRIBUTIONS)}')
  need(_get(config, 'optimizer.name') in OPTIMIZERS, 'optimizer.name', f'one of {", ".join(OPTIMIZERS)}')
  need(_get(config, 'loss.ssl') in SSL_LOSSES, 'loss.ssl', f'one of {", ".join(SSL_LOSSES)}')
  stages = _get(config, 'model.stage_sizes')
  need(isinstance(stages, (tuple, list)) and len(stages) > 0 and all(isinstance(s, int) and s >= 1 for s in stages),
       'model.stage_sizes', 'a non-empty tuple of integers at least 1')
  return errors


def _get(config, dotted: str):
  node = config
  for part in dotted.split('.'):
    try:
      node = node[part]
    except (KeyError, TypeError, AttributeError):
      return None
  return node


def check_config(config) -> None:
  """Raises ConfigError listing every bad field."""
  errors = config_errors(config)
  if errors:
    raise ConfigError('\n'.join(errors))


def _shapes(tree) -> dict[str, tuple]:
  import jax  # pylint: disable=g-import-not-at-top
  flat = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, 'shape'))[0]
  # Checkpoint metadata keys lists by '0', '1'; the state by 0, 1: compare names as text.
  name = lambda path: '/'.join(str(getattr(p, 'key', getattr(p, 'idx', getattr(p, 'name', p)))) for p in path)
  return {name(k): tuple(v.shape) for k, v in flat if hasattr(v, 'shape')}


def check_checkpoint_matches(state, checkpoint_dir: str, step: int, workdir: str) -> None:
  """Raises ConfigError when the checkpoint at `step` holds arrays of other names or shapes than `state` (a model,
  optimiser or EMA setting that differs from the run that wrote the workdir)."""
  import flax.serialization  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  metadata = ocp.StandardCheckpointer().metadata(cli.path(checkpoint_dir) / str(step) / 'default')
  saved = _shapes(getattr(metadata, 'item_metadata', metadata))
  wanted = _shapes(flax.serialization.to_state_dict(state))
  if saved == wanted:
    return
  only_saved = sorted(set(saved) - set(wanted))
  only_wanted = sorted(set(wanted) - set(saved))
  differ = sorted(k for k in set(saved) & set(wanted) if saved[k] != wanted[k])
  detail = []
  if differ:
    detail.append(f'{len(differ)} array(s) of another shape, e.g. {differ[0]} {saved[differ[0]]} in the '
                  f'checkpoint, {wanted[differ[0]]} in this config')
  if only_saved or only_wanted:
    detail.append(f'{len(only_saved)} array(s) only in the checkpoint, {len(only_wanted)} only in this config'
                  f' (e.g. {(only_saved or only_wanted)[0]})')
  saved_config = epath.Path(workdir) / 'config.json'
  raise ConfigError(f'{workdir} holds a checkpoint (step {step}) of a different model: {"; ".join(detail)}. '
                    f'Use a new --workdir, or the config that wrote this one ({saved_config}); '
                    f'nothing in {workdir} was changed.')


def check_workdir(workdir: str) -> None:
  """Raises ConfigError when workdir (local or cloud) exists but is not a folder, or cannot be written."""
  path = epath.Path(workdir)
  if path.exists() and not path.is_dir():
    raise ConfigError(f'--workdir={workdir}: a file, not a folder')
  try:
    path.mkdir(parents=True, exist_ok=True)
    probe = path / '.write_test'
    probe.write_text('')
    probe.unlink()
  except OSError as e:
    raise ConfigError(f'--workdir={workdir}: cannot be written ({e.strerror or e})') from None


def trim_metrics(workdir: str, step: int) -> int:
  """Drops the rows of metrics.jsonl after `step` (written by a run that died before its next checkpoint; the
  resumed run writes them again), so that each step has its rows once. Returns how many were dropped."""
  path = epath.Path(workdir) / 'metrics.jsonl'
  if not path.exists():
    return 0
  lines = path.read_text().splitlines()
  keep = []
  for line in lines:
    try:
      row_step = json.loads(line).get('step', 0)
    except (ValueError, AttributeError):
      continue  # a line cut short by the kill
    if row_step <= step:
      keep.append(line)
  if len(keep) == len(lines):
    return 0
  with cli.atomic_write(path) as f:
    f.write(''.join(l + '\n' for l in keep))
  return len(lines) - len(keep)


def time_spent(workdir: str, step: int) -> tuple[float, float]:
  """(CPU seconds, wall seconds) that earlier runs of this workdir spent training up to `step`: the train/cpu_s and
  train/wall_s of the last metrics.jsonl row at or before it (0, 0 for a fresh workdir). A resumed run adds its own,
  so the final figures are the whole training's, across interruptions (less the time after each run's last log)."""
  path = epath.Path(workdir) / 'metrics.jsonl'
  cpu = wall = 0.0
  if path.exists():
    for line in path.read_text().splitlines():
      try:
        row = json.loads(line)
      except ValueError:
        continue
      if row.get('step', 0) <= step and 'train/cpu_s' in row:
        cpu, wall = float(row['train/cpu_s']), float(row['train/wall_s'])
  return cpu, wall
