"""The config's values, checked before the trainer touches anything (the workdir itself is checked and locked by
difcon_jax/io/workdir.py; a resume against the workdir's checkpoint by resume_checks.py; the memory by memory_check.py).

A mistaken run (`steps=-1`, `best_metric=nope`) is refused with one line per problem before config.json,
checkpoints or logs are written, so the workdir stays usable. So are a config file that cannot be loaded, a grid too
coarse for the augmentation's peak windows, views the loss cannot use, batches that do not split over the devices
(`device_errors`), a measured evaluation set whose data is missing or unreadable (`data_errors`), a network field
the network cannot use (each named itself, never the grid), and a corpus that is missing, damaged or built for
another grid (`check_corpus`).
"""

from __future__ import annotations

import math
import os

import jax

from difcon_jax.evaluation import evaluators
from difcon_jax.crystallography import pattern_grid as grid_lib
from difcon_jax.augment import kernel as augment_kernel
from difcon_jax.augment import params as augment_params
from difcon_jax.data import corpus as corpus_lib
from difcon_jax.io import measured
from difcon_jax.io import patterns as patterns_lib


class ConfigError(ValueError):
  """A config the trainer refuses; the message has one line per problem."""


OPTIMIZERS = ('adamw', 'lars')
SSL_LOSSES = ('barlow_twins', 'nt_xent')


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



def check_corpus(config) -> None:
  """Raises ConfigError (one line each) when a corpus the run reads (config.corpus, and the corpus of
  each simulated evaluation set that names its own) is missing, damaged (a record file cut short), lacks a split
  the run reads (train for training; test, which the evaluation renders), or was built for another grid than the
  config's (wavelength, 2θ range): training on it would learn the wrong peak positions."""
  errors = []
  for path, field in evaluators.corpora(config).items():
    errors += _corpus_problems(config, path, field, ('train', 'test') if field == 'corpus' else ('test',))
  if errors:
    raise ConfigError('\n'.join(errors))


def _corpus_problems(config, path: str, field: str, needed: tuple[str, ...]) -> list[str]:
  where = f'config.{field}={path}'
  try:
    info = corpus_lib.metadata(path)
    counts = corpus_lib.splits(path)
  except FileNotFoundError:
    return [f'{where}: no corpus there; build one with python -m difcon_jax.data.build --cifs=DIR --out={path} '
            f'(or --synthetic=N, see BUILD.md)']
  except corpus_lib.CorpusError as e:
    return [f'{where}: {e}']
  errors = []
  uses = {'train': 'training', 'test': 'the evaluation'}
  for split in needed:
    if not counts.get(split):
      errors.append(f'{where}: no {split!r} split (the corpus has '
                    f'{", ".join(f"{k} {v}" for k, v in counts.items()) or "no records"}), which {uses[split]} '
                    'needs; build it from more structures (or another --test_fraction)')
  if info.get('wavelength') is not None and abs(float(info['wavelength']) - config.wavelength) > 1e-6:
    errors.append(f'config.wavelength={config.wavelength}: the corpus {path} holds peak lists at '
                  f'{info["wavelength"]} Å; build the corpus at the training wavelength (data.build --wavelength) '
                  f'or set --config.wavelength={info["wavelength"]}')
  if info.get('two_theta_max') is not None and config.two_theta_max > float(info['two_theta_max']) + 1e-9:
    errors.append(f'config.two_theta_max={config.two_theta_max}: the corpus {path} has peaks up to '
                  f'{info["two_theta_max"]}° only (the grid beyond would always be empty)')
  return errors
