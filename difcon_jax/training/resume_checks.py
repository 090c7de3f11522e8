"""A resumed run checked against what its workdir holds: the recipe of config.json (only steps and the evaluation,
logging and saving cadence may change), the steps of the checkpoint, and the checkpoint's arrays against the model
the config builds. Each refusal is one line, raised before anything in the workdir is changed.
"""

from __future__ import annotations

import json
from typing import Any

from absl import logging
import flax.serialization
import orbax.checkpoint as ocp

from difcon_jax.crystallography import pattern_grid as grid_lib
from difcon_jax.io import workdir as workdir_lib
from difcon_jax.augment import params as augment_params
from difcon_jax.training.config_checks import ConfigError
from difcon_jax.io import outputs


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
  same_folder = lambda a, b: isinstance(a, str) and isinstance(b, str) and outputs.path(a) == outputs.path(b)
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


def _input_grid(config) -> str:
  grid = grid_lib.model_grid(config)
  return f'{grid} from {grid_lib.log_d_from(config):g}°' if grid == 'log_d' else grid


def check_checkpoint_matches(state, checkpoint_dir: str, step: int, workdir: str, config=None) -> None:
  """Raises ConfigError when the checkpoint at `step` holds arrays of other names or shapes than `state` (a model,
  optimiser or EMA setting that differs from the run that wrote the workdir) or, given `config`, when the run that
  wrote it read another grid (config.json's `grid`: same shapes, other meaning) or trained with another recipe
  (check_resume_config); ValueError (or Orbax's error) when its metadata cannot be read (a damaged checkpoint)."""
  metadata = ocp.StandardCheckpointer().metadata(outputs.path(checkpoint_dir) / str(step) / 'default')
  saved = workdir_lib.array_shapes(getattr(metadata, 'item_metadata', metadata))
  if not saved:  # Orbax reads damaged metadata as none: a damaged checkpoint, not another model
    raise ValueError(f'{checkpoint_dir}/{step}: the checkpoint lists no arrays; its files are damaged')
  if config is not None:
    check_resume_steps(config, workdir, step)
  wanted = workdir_lib.array_shapes(flax.serialization.to_state_dict(state))
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
  differ, only_saved, only_wanted = workdir_lib.shape_differences(saved, wanted)
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


