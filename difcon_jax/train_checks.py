"""Checks the trainer runs before it touches anything: the config's values and the config against the checkpoint
already in the workdir (the workdir itself is checked and locked by difcon_jax/workdir.py).

A mistaken rerun (a changed model shape on an existing workdir, `steps=-1`, `best_metric=nope`) is refused with
one line per problem before config.json, checkpoints or logs are written, so the workdir stays usable. So are a
config file that cannot be loaded, a grid too coarse for the augmentation's peak windows, a batch that cannot fit
in the devices' memory (`check_memory`), views the loss cannot use, batches that do not split over the devices
(`device_errors`), a measured evaluation set whose data is missing or unreadable (`data_errors`), a network field
the network cannot use (each named itself, never the grid), and a resume asking for fewer steps than its
checkpoint holds (`check_resume_steps`).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from absl import logging
import numpy as np

from difcon_jax import cli
from difcon_jax import evaluators
from difcon_jax import grid as grid_lib
from difcon_jax import workdir as workdir_lib
from difcon_jax.augment import kernel as augment_kernel
from difcon_jax.augment import params as augment_params

OPTIMIZERS = ('adamw', 'lars')
SSL_LOSSES = ('barlow_twins', 'nt_xent')


class ConfigError(ValueError):
  """A config the trainer refuses; the message has one line per problem."""


def best_metric_names(config) -> list[str]:
  """What best_metric may be: a metric of a simulated evaluation set of config.evals. Checkpoints are never chosen
  on measured patterns, which stay a test set."""
  return [name for name in evaluators.metric_names(config)
          if evaluators.specs(config)[name.split('/')[0]]['kind'] == 'simulated']


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
  need(grid_lib.model_grid(config) in grid_lib.GRIDS, 'grid', f'one of {", ".join(grid_lib.GRIDS)}')
  if grid_lib.model_grid(config) == 'log_d' and isinstance(config.get('two_theta_max'), (int, float)):
    number('log_d_from', 0.5, config.two_theta_max, hi_open=True)
  number('ema_decay', 0, 1, hi_open=True)
  if _get(config, 'loss.crystal_system_balance') is not None:  # absent from configs written before it existed
    number('loss.crystal_system_balance', 0, 2)
  number('optimizer.learning_rate', 0, 1e3)
  need(isinstance(config.get('corpus'), str) and config.corpus != '', 'corpus', 'a corpus folder')
  evals = config.get('evals')
  evals_ok = evals is None or (hasattr(evals, 'items') and all(
      hasattr(e, 'get') and e.get('kind') in evaluators.KINDS for e in evals.values()))
  need(evals_ok, 'evals', 'evaluation sets by name, each config_base.evaluator(kind) with kind one of '
       f'{", ".join(evaluators.KINDS)}')
  if evals_ok:
    for name, spec in evaluators.specs(config).items():
      if spec['kind'] == 'simulated':
        need(spec.get('distribution') in augment_params.DISTRIBUTIONS, f'evals.{name}.distribution',
             f'one of {", ".join(augment_params.DISTRIBUTIONS)}')
      every = spec.get('every')
      need(every is None or (isinstance(every, int) and not isinstance(every, bool) and every >= 1),
           f'evals.{name}.every', 'an integer at least 1, or None for config.eval_every')
  if evals_ok:
    allowed = best_metric_names(config)
    need(config.get('best_metric') in allowed, 'best_metric', f'a metric of a simulated evaluation set, one of '
         f'{", ".join(allowed)}')
  need(config.get('augmentation') in augment_params.DISTRIBUTIONS, 'augmentation',
       f'one of {", ".join(augment_params.DISTRIBUTIONS)}')
  augment = config.get('augment')
  need(augment is None or hasattr(augment, 'items'), 'augment', 'quantities of the augmentation by name, e.g. '
       'dict(U=(1e-4, 3e-4)) (difcon_jax/augment/params.py)')
  if config.get('augmentation') in augment_params.DISTRIBUTIONS and hasattr(augment, 'items'):
    for key, allowed in augment_params.override_problems(config.augmentation, augment).items():
      need(False, f'augment.{key}', allowed)
  need(_get(config, 'optimizer.name') in OPTIMIZERS, 'optimizer.name', f'one of {", ".join(OPTIMIZERS)}')
  need(_get(config, 'loss.ssl') in SSL_LOSSES, 'loss.ssl', f'one of {", ".join(SSL_LOSSES)}')
  stages = _get(config, 'model.stage_sizes')
  need(isinstance(stages, (tuple, list)) and len(stages) > 0 and all(isinstance(s, int) and s >= 1 for s in stages),
       'model.stage_sizes', 'a non-empty tuple of integers at least 1')
  errors += _training_errors(config) + _model_errors(config)
  if not errors:
    too_coarse = coarse_grid_error(config)
    if too_coarse:
      errors.append(too_coarse)
  return errors


def _is_int(v, lo: int) -> bool:
  return isinstance(v, int) and not isinstance(v, bool) and v >= lo


def _is_number(v, lo: float, hi: float = math.inf, lo_open: bool = False) -> bool:
  return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v <= hi and
          (v > lo if lo_open else v >= lo))


def _field_errors(config, rules) -> list[str]:
  """'config.FIELD=value: allowed' for each (field, ok(value), allowed) of rules whose value fails (a field the
  config lacks, from before it existed, is not checked)."""
  out = []
  for field, ok, allowed in rules:
    v = _get(config, field)
    if v is not None and not ok(v):
      out.append(f'config.{field}={v!r}: {allowed}')
  return out


def _training_errors(config) -> list[str]:
  """The fields of the batch, the views, the optimiser and the loss the trainer would otherwise meet only at its
  first step, after the workdir was written."""
  errors = _field_errors(config, (
      ('per_device_batch_size', lambda v: _is_int(v, 0), 'an integer at least 0 (0: config.batch_size is global)'),
      ('views', lambda v: _is_int(v, 0), 'an integer at least 0 (0: what the loss needs)'),
      ('prefetch', lambda v: _is_int(v, 1), 'an integer at least 1 (batches placed ahead of the step)'),
      ('max_loss', lambda v: _is_number(v, 0, lo_open=True), 'a number above 0'),
      ('optimizer.warmup_steps', lambda v: _is_int(v, 0), 'an integer at least 0'),
      ('optimizer.final_lr_fraction', lambda v: _is_number(v, 0, 1), 'a number from 0 to 1'),
      ('optimizer.weight_decay', lambda v: _is_number(v, 0), 'a number at least 0'),
      ('optimizer.clip_norm', lambda v: _is_number(v, 0, lo_open=True), 'a number above 0'),
      ('optimizer.reference_batch', lambda v: _is_int(v, 0), 'an integer at least 0 (0: no scaling)'),
      ('loss.crystal_system', lambda v: _is_number(v, 0), 'a weight at least 0'),
      ('loss.extinction_group', lambda v: _is_number(v, 0), 'a weight at least 0'),
      ('loss.space_group', lambda v: _is_number(v, 0), 'a weight at least 0'),
      ('loss.ssl_weight', lambda v: _is_number(v, 0), 'a weight at least 0'),
      ('loss.barlow_lambda', lambda v: _is_number(v, 0), 'a number at least 0'),
      ('loss.temperature', lambda v: _is_number(v, 0, lo_open=True), 'a number above 0')))
  views, ssl = _get(config, 'views'), _get(config, 'loss.ssl_weight')
  if _is_int(views, 1) and views < 2 and _is_number(ssl, 0, lo_open=True):
    errors.append(f'config.views={views}: the contrastive loss (config.loss.ssl_weight={ssl}) compares two views '
                  'of each example; 0 (what the loss needs) or at least 2')
  return errors


MODEL_CHOICES = {'norm': ('batch', 'group'), 'pooling': ('mean', 'flatten', 'attention'),
                 'heads_input': ('embedding', 'projection')}
GROUP_NORM_GROUPS = 8  # models/resnet1d._norm: GroupNorm(num_groups=8)


def _model_errors(config) -> list[str]:
  """The network's fields, each named itself: a network that cannot be built is otherwise reported against the
  grid by the memory check."""
  errors = _field_errors(config, [(f'model.{k}', lambda v, c=c: v in c, f'one of {", ".join(c)}')
                                  for k, c in MODEL_CHOICES.items()] + [
      ('model.attention_layers', lambda v: _is_int(v, 0), 'an integer at least 0'),
      ('model.attention_heads', lambda v: _is_int(v, 1), 'an integer at least 1'),
      ('model.flatten_channels', lambda v: _is_int(v, 1), 'an integer at least 1'),
      ('model.projector_dims', lambda v: isinstance(v, (tuple, list)) and all(_is_int(d, 1) for d in v),
       'a tuple of integers at least 1')])
  width, stages = _get(config, 'model.width'), _get(config, 'model.stage_sizes')
  if not (_is_int(width, 1) and isinstance(stages, (tuple, list)) and stages):
    return errors
  channels = width * 2 ** (len(stages) - 1)  # of the last stage, which the pooling reads
  heads = _get(config, 'model.attention_heads')
  if _get(config, 'model.pooling') == 'attention' and _is_int(heads, 1) and channels % heads:
    errors.append(f'config.model.attention_heads={heads}: must divide the {channels} channels the attention reads '
                  f'(config.model.width={width} doubled per stage after the first)')
  if _get(config, 'model.norm') == 'group' and width % GROUP_NORM_GROUPS:
    errors.append(f'config.model.width={width}: GroupNorm (config.model.norm=\'group\') splits the channels into '
                  f'{GROUP_NORM_GROUPS} groups; a multiple of {GROUP_NORM_GROUPS}')
  return errors


def device_errors(config, device_count: int | None = None) -> list[str]:
  """The batches against the devices (one line each): the global training batch and the evaluation batch are
  split evenly over them. Not checked for a distributed run, whose devices are known only after
  jax.distributed.initialize (the trainer checks the batch then).

  device_count: default jax.device_count()."""
  if config.get('distributed', False):
    return []
  if device_count is None:
    import jax  # pylint: disable=g-import-not-at-top
    device_count = jax.device_count()
  errors = []
  per_device = config.get('per_device_batch_size', 0)
  if not per_device and _is_int(config.get('batch_size'), 1) and config.batch_size % device_count:
    errors.append(f'config.batch_size={config.batch_size}: split over {device_count} devices; a multiple of '
                  f'{device_count} (or set config.per_device_batch_size)')
  eval_batch = config.get('eval_batch_size')
  if _is_int(eval_batch, 1) and eval_batch % device_count:
    errors.append(f'config.eval_batch_size={eval_batch}: split over {device_count} devices; a multiple of '
                  f'{device_count}')
  return errors


def data_errors(config) -> list[str]:
  """The measured evaluation sets the config names (evals.NAME.data): one line each for data that is not there or
  cannot be read as a set (the set is read here, before any work, as the trainer would read it after writing the
  workdir). A pattern of a set that cannot be used is not an error: the trainer leaves it out with a warning."""
  from difcon_jax.io import measured  # pylint: disable=g-import-not-at-top  (pulls in the readers)
  from difcon_jax.io import patterns as patterns_lib  # pylint: disable=g-import-not-at-top
  errors = []
  for name, spec in evaluators.enabled(config).items():
    if spec['kind'] != 'measured':
      continue
    data, labels = spec['data'], spec.get('labels')
    where = f'config.evals.{name}.data={data}'
    if not os.path.exists(data):
      errors.append(f'{where}: no such file or folder (an .npz like rruff_dev.npz, or a folder with labels.csv)')
    elif os.path.isdir(data) and not (labels and os.path.isfile(labels)):
      errors.append(f'config.evals.{name}.labels={labels}: a folder for data needs its labels.csv (columns file, '
                    'space_group[, wavelength])')
    else:
      try:
        measured.read_set(data, labels)
      except (patterns_lib.PatternError, OSError, ValueError, KeyError) as e:
        errors.append(f'{where}: cannot be read ({str(e).splitlines()[0] if str(e) else type(e).__name__})')
  return errors


def _windows_fit(num_bins: int, two_theta_max: float, profiles) -> bool:
  grid = grid_lib.config(num_bins, grid_lib.TWO_THETA_MIN, two_theta_max)
  try:
    for profile in profiles:
      augment_kernel.window_bins(grid, profile)
  except ValueError:
    return False
  return True


def coarse_grid_error(config) -> str | None:
  """'config.num_bins=...: ...' when the bins are too wide for the peak windows of the augmentation the run renders
  (training's and the evaluation sets'), else None. The windows' far zone must reach past their core, so a grid
  needs bins narrower than a few peak widths."""
  # The kernel configs as the trainer builds them: training's with config.augment merged in.
  rendered = [augment_params.config(config.augmentation, overrides=config.get('augment'))]
  rendered += [augment_params.config(spec['distribution']) for spec in evaluators.specs(config).values()
               if spec['kind'] == 'simulated']
  profiles = [c.profile for c in rendered]
  if _windows_fit(config.num_bins, config.two_theta_max, profiles):
    return None
  least = next(n for n in range(config.num_bins + 1, 10**7)
               if _windows_fit(n, config.two_theta_max, profiles))
  width = (config.two_theta_max - grid_lib.TWO_THETA_MIN) / config.num_bins
  return (f'config.num_bins={config.num_bins}: bins of {width:.4g}° are too wide for the augmentation\'s peak '
          f'profiles (a window must reach past its core); at least {least} bins over '
          f'{grid_lib.TWO_THETA_MIN:g}-{config.two_theta_max:g}°')


def _get(config, dotted: str):
  node = config
  for part in dotted.split('.'):
    try:
      node = node[part]
    except (KeyError, TypeError, AttributeError):
      return None
  return node


def check_config(config, device_count: int | None = None) -> None:
  """Raises ConfigError listing every bad field, or naming a --config file that could not be loaded: the values
  (config_errors), the batches against the devices (device_errors; device_count: default jax.device_count()) and
  the measured evaluation sets' data (data_errors), all before the trainer writes anything."""
  try:
    errors = config_errors(config)
  except OSError as e:  # config_flags defers a file it could not load to the first use of the config
    reason = [l.strip() for l in str(e).splitlines() if l.strip()][-1]
    raise ConfigError(f'--config: the config file cannot be loaded ({reason})') from None
  if not errors:  # these read fields the checks above vouch for
    errors = device_errors(config, device_count) + data_errors(config)
  if errors:
    raise ConfigError('\n'.join(errors))


# Fields a resumed run may change: how long it trains, how often it logs, evaluates and saves, what it evaluates on,
# and how the processes find each other. Every other field changes what the weights learn from the next step on.
RESUMABLE_CHANGES = ('steps', 'log_every', 'eval_every', 'eval_batch_size', 'eval_examples', 'eval_seed', 'evals',
                     'checkpoint_every', 'keep_checkpoints', 'prefetch', 'max_loss', 'distributed',
                     'coordinator_address', 'num_processes', 'process_id')


def recorded_config(config) -> dict:
  """The config as config.json records it (a plain dict): references resolved, and config.augment as rendered
  (every range of the augmentation distribution, overrides merged), so that two configs that train alike record
  alike."""
  recorded = config.copy_and_resolve_references()
  with recorded.unlocked():
    recorded.augment = augment_params.resolved_ranges(config.augmentation, config.get('augment'))
  return json.loads(recorded.to_json_best_effort())


def _differences(before, now, prefix: str = '') -> list[tuple[str, Any, Any]]:
  """[(dotted field, recorded value, this value)] over the fields both dicts hold (a field added to the configs
  after the workdir was written is not a difference)."""
  out = []
  for key in before.keys() & now.keys():
    name = f'{prefix}{key}'
    if isinstance(before[key], dict) and isinstance(now[key], dict):
      out += _differences(before[key], now[key], f'{name}.')
    elif before[key] != now[key]:
      out.append((name, before[key], now[key]))
  return sorted(out)


def resume_changes(recorded: dict, config) -> tuple[list[tuple[str, Any, Any]], list[tuple[str, Any, Any]]]:
  """(refused, allowed): the fields in which `config` differs from the workdir's config.json (`recorded`), split
  into those that change training (refused on resume) and RESUMABLE_CHANGES. A corpus named by another path to the
  same folder is not a change."""
  recorded = dict(recorded)
  try:  # a workdir written before config.json held the rendered ranges records the overrides only: render them
    recorded['augment'] = json.loads(json.dumps(augment_params.resolved_ranges(recorded['augmentation'],
                                                                               recorded.get('augment'))))
  except Exception:  # pylint: disable=broad-except  (an unknown distribution: compared as recorded)
    pass
  now = recorded_config(config)
  changes = _differences(recorded, now)
  if isinstance(recorded.get('augment'), dict):  # a quantity the recorded run did not render is a change too
    changes += [(f'augment.{k}', None, v) for k, v in sorted(now['augment'].items()) if k not in recorded['augment']]
  same_folder = lambda a, b: isinstance(a, str) and isinstance(b, str) and cli.path(a) == cli.path(b)
  changes = [c for c in changes if not (c[0] == 'corpus' and same_folder(c[1], c[2]))]
  resumable = lambda change: change[0].split('.')[0] in RESUMABLE_CHANGES
  return [c for c in changes if not resumable(c)], [c for c in changes if resumable(c)]


def _describe(changes, most: int = 4) -> str:
  shown = '; '.join(f'{name}: {before!r} there, {now!r} here' for name, before, now in changes[:most])
  return shown + (f'; and {len(changes) - most} more' if len(changes) > most else '')


def check_resume_steps(config, workdir: str, step: int) -> None:
  """Raises ConfigError when the run asks for fewer steps than the checkpoint it resumes already holds: it would
  report the longer run's weights as a shorter one's (and its learning-rate schedule would have ended)."""
  steps = config.get('steps')
  if isinstance(steps, int) and steps < step:
    raise ConfigError(f'config.steps={steps}: {workdir} holds a checkpoint of step {step}, past the steps asked '
                      f'for; give --config.steps={step} or more to resume (or a new --workdir); nothing in '
                      f'{workdir} was changed.')


def check_resume_config(recorded: dict, workdir: str, step: int, config) -> None:
  """Raises ConfigError when the run being resumed at `step` was written by another config (`recorded`, its
  config.json) than `config` in a field that changes training (corpus, augmentation, optimiser, loss, seed, batch,
  ...): resuming would silently go on with other data or another recipe. Changes of RESUMABLE_CHANGES are logged."""
  refused, allowed = resume_changes(recorded, config)
  if refused:
    saved_config = workdir_lib.path(workdir, workdir_lib.CONFIG)
    raise ConfigError(f'{workdir} holds a run (step {step}) trained with another config: {_describe(refused)}. '
                      f'Resume with the config and flags that wrote it ({saved_config}; only steps and the '
                      f'evaluation, logging and saving cadence may change), or use a new --workdir; nothing in '
                      f'{workdir} was changed.')
  if allowed:
    logging.info('%s: resumed with changed %s', workdir, _describe(allowed))
    if any(name == 'steps' for name, _, _ in allowed):
      logging.warning('%s: steps changed on resume; the learning-rate schedule now spans %d steps', workdir,
                      config.steps)


def _shapes(tree) -> dict[str, tuple]:
  import jax  # pylint: disable=g-import-not-at-top
  flat = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, 'shape'))[0]
  # Checkpoint metadata keys lists by '0', '1'; the state by 0, 1: compare names as text.
  name = lambda path: '/'.join(str(getattr(p, 'key', getattr(p, 'idx', getattr(p, 'name', p)))) for p in path)
  return {name(k): tuple(v.shape) for k, v in flat if hasattr(v, 'shape')}


def _input_grid(config) -> str:
  grid = grid_lib.model_grid(config)
  return f'{grid} from {grid_lib.log_d_from(config):g}°' if grid == 'log_d' else grid


def check_checkpoint_matches(state, checkpoint_dir: str, step: int, workdir: str, config=None) -> None:
  """Raises ConfigError when the checkpoint at `step` holds arrays of other names or shapes than `state` (a model,
  optimiser or EMA setting that differs from the run that wrote the workdir) or, given `config`, when the run that
  wrote it read another grid (config.json's `grid`: same shapes, other meaning) or trained with another recipe
  (check_resume_config); ValueError (or Orbax's error) when its metadata cannot be read (a damaged checkpoint)."""
  import flax.serialization  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  metadata = ocp.StandardCheckpointer().metadata(cli.path(checkpoint_dir) / str(step) / 'default')
  saved = _shapes(getattr(metadata, 'item_metadata', metadata))
  if not saved:  # Orbax reads damaged metadata as none: a damaged checkpoint, not another model
    raise ValueError(f'{checkpoint_dir}/{step}: the checkpoint lists no arrays; its files are damaged')
  if config is not None:
    check_resume_steps(config, workdir, step)
  wanted = _shapes(flax.serialization.to_state_dict(state))
  saved_config = workdir_lib.path(workdir, workdir_lib.CONFIG)
  if saved == wanted:
    try:
      recorded = workdir_lib.read_config(workdir) if config is not None else None
    except ValueError:  # a damaged config.json is rewritten by this run
      recorded = None
    # The input grid changes what every weight means without changing a shape.
    grids = [_input_grid(c) for c in (recorded, config)] if recorded is not None else []
    if grids and grids[0] != grids[1]:
      raise ConfigError(f'{workdir} holds a checkpoint (step {step}) of a model that reads another grid '
                        f'({grids[0]}; this config: {grids[1]}). Use a new --workdir, or the config that wrote '
                        f'this one ({saved_config}); nothing in {workdir} was changed.')
    if isinstance(recorded, dict):
      check_resume_config(recorded, workdir, step, config)
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
  raise ConfigError(f'{workdir} holds a checkpoint (step {step}) of a different model: {"; ".join(detail)}. '
                    f'Use a new --workdir, or the config that wrote this one ({saved_config}); '
                    f'nothing in {workdir} was changed.')


def host_memory() -> int:
  """Bytes of physical memory of this host."""
  return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')


def device_memory() -> tuple[int, str]:
  """(bytes one device can use, its description): the accelerator's limit (`memory_stats`), else (CPU devices,
  which share the host's memory) the host's physical memory."""
  import jax  # pylint: disable=g-import-not-at-top
  device = jax.local_devices()[0]
  try:
    stats = device.memory_stats() or {}
  except Exception:  # pylint: disable=broad-except  (backends without memory statistics)
    stats = {}
  if stats.get('bytes_limit'):
    return int(stats['bytes_limit']), f'each {device.device_kind} device'
  return host_memory(), 'this host'


def bytes_per_example(config, views: int) -> int:
  """A lower bound of the memory (bytes) one training example takes on its device: the activations the backward
  pass keeps (the network's residuals, traced at batch sizes 1 and 2 without running anything) for each of its
  views, and the rendered views themselves."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from difcon_jax.models import resnet1d  # pylint: disable=g-import-not-at-top
  model = resnet1d.from_config(config)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, config.num_bins)), train=False))

  def loss(params, stats, x):
    out, _ = model.apply({'params': params, 'batch_stats': stats}, x, train=True, mutable=['batch_stats'])
    return sum(jnp.sum(leaf.astype(jnp.float32)) for leaf in jax.tree.leaves(out))

  def residual_bytes(batch: int) -> int:
    x = jax.ShapeDtypeStruct((batch, config.num_bins), jnp.float32)
    kept = jax.eval_shape(lambda p, s, x: jax.vjp(lambda p, x: loss(p, s, x), p, x)[1], variables['params'],
                          variables.get('batch_stats', {}), x)
    return sum(int(np.prod(leaf.shape)) * leaf.dtype.itemsize for leaf in jax.tree.leaves(kept))

  per_view = residual_bytes(2) - residual_bytes(1)  # what grows with the batch (the weights' share cancels)
  return views * (per_view + 4 * config.num_bins)


def check_memory(config, views: int, memory: tuple[int, str] | None = None, batch_size: int | None = None) -> None:
  """Raises ConfigError when the batch cannot fit: the examples each device holds times `bytes_per_example`
  exceed its memory (an accelerator's limit, or the host's for CPU devices). Runs in a second or two, before any
  data is read, instead of failing at the first step.

  views: augmented views per example (train.num_views). memory: (bytes, what) to compare with (default
  `device_memory()`). batch_size: the global batch (default config.batch_size).
  """
  import jax  # pylint: disable=g-import-not-at-top
  try:
    per_example = bytes_per_example(config, views)
  except Exception as e:  # pylint: disable=broad-except  (a network this grid cannot carry)
    # The model's own fields were checked (config_errors); what is left is the network against the grid.
    raise ConfigError(f'config.model: the network cannot be built on the grid of config.num_bins={config.num_bins} '
                      f'({type(e).__name__}: {(str(e).splitlines() or [""])[0][:200]})') from None
  available, where = memory or device_memory()
  cpu = where == 'this host'
  holders = jax.process_count() if cpu else jax.device_count()  # CPU devices of a host share its memory
  batch = batch_size or config.batch_size
  per_holder = -(-batch // holders)
  need = per_holder * per_example
  if need <= available:
    return
  fits = max(available // per_example, 0) * holders
  per_device = config.get('per_device_batch_size', 0)
  field = f'config.per_device_batch_size={per_device}' if per_device else f'config.batch_size={batch}'
  raise ConfigError(f'{field}: a global batch of {batch} needs at least {need / 2**30:.1f} GiB on {where} '
                    f'({per_holder} examples x {per_example / 2**20:.1f} MiB: the activations kept for the backward '
                    f'pass of {views} view(s)), which has {available / 2**30:.1f} GiB; at most about {fits} examples '
                    'fit')
