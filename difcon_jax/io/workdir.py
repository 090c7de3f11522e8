"""A training run's folder (the workdir): the one owner of its layout and files.

    WORKDIR/config.json          the run's config (predict, evaluate and export rebuild the network from it)
    WORKDIR/metrics.jsonl        one JSON row per logged or evaluated step ({'step': n, name: value, ...})
    WORKDIR/final_metrics.json   the last evaluation, the last step and the training's CPU and wall seconds
    WORKDIR/checkpoints/STEP     Orbax checkpoints of the latest steps; WORKDIR/best/STEP the best by best_metric
    WORKDIR/tensorboard/         the same scalars as metrics.jsonl, for TensorBoard
    WORKDIR/train.lock           held by the training in progress
    WORKDIR/eval_*/              what `evaluate` writes about the run

The trainer, inference (model loading and export), `evaluate` and the sweep runner read and write through this
module. A workdir may be local or in cloud storage (etils.epath); cloud objects cannot be appended to, so there
metrics.jsonl is rewritten whole at each write (small: one row per logged step).
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

from absl import logging
from etils import epath
import jax
import orbax.checkpoint as ocp

from difcon_jax.io import folder_lock
from difcon_jax.io import outputs

CONFIG = 'config.json'
METRICS = 'metrics.jsonl'
FINAL = 'final_metrics.json'
CHECKPOINTS = 'checkpoints'
BEST = 'best'
TENSORBOARD = 'tensorboard'
LOCK = 'train.lock'
# What a training workdir holds (besides eval_* folders of `evaluate` and hidden files): anything else means the
# folder is not one, and training there would write config.json, checkpoints and logs among foreign files.
RUN_FILES = (CONFIG, METRICS, FINAL, CHECKPOINTS, BEST, TENSORBOARD)
# An exported model (inference.export, difcon_jax/pretrained/default): config.json beside these.
VARIABLES = 'variables.msgpack'
MODEL_INFO = 'model.json'
EXPORTED_FILES = (VARIABLES, MODEL_INFO)
# The files and folders of a training workdir or an exported model that no other command's output may overwrite.
MODEL_FILES = (CONFIG, MODEL_INFO, VARIABLES, CHECKPOINTS, BEST, METRICS, FINAL)


class WorkdirError(ValueError):
  """A folder that cannot be a training workdir (a file, an exported model, foreign files, not writable) or one
  that another training holds; one line naming the folder."""


def path(workdir: str, name: str = '') -> epath.Path:
  """The workdir (or a file in it) as an epath.Path: a local path made absolute, a cloud URL as given."""
  return outputs.path(workdir) / name if name else outputs.path(workdir)


# ------------------------------------------------------------------------------------------- the folder itself

def check(workdir: str) -> None:
  """Raises WorkdirError when workdir (local or cloud) exists but is not a folder, cannot be written, holds an
  exported model (its config.json would be overwritten and the model lost) or other files than a training's."""
  folder = epath.Path(workdir)
  if folder.exists() and not folder.is_dir():
    raise WorkdirError(f'--workdir={workdir}: a file, not a folder')
  names = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
  exported = [n for n in EXPORTED_FILES if n in names]
  if exported:
    raise WorkdirError(f'--workdir={workdir}: an exported model ({exported[0]} is there), not a training workdir; '
                       'training would overwrite its config.json. Give a new --workdir; nothing was changed')
  if CONFIG not in names:
    foreign = [n for n in names if n not in (*RUN_FILES, LOCK) and not n.startswith(('eval_', '.'))]
    if foreign:
      raise WorkdirError(f'--workdir={workdir}: not a training workdir (it holds {", ".join(foreign[:3])}'
                         f'{", ..." if len(foreign) > 3 else ""}); give a new or empty folder; nothing was changed')
  if not outputs.is_local(workdir):
    return  # cloud storage: a prefix, written by the first object
  # Nothing is created here: the checks after this one (the batch against the memory, the checkpoint) may still
  # refuse the run, which must leave no folder behind; the lock makes the folder when training starts.
  if not outputs.can_write_folder(workdir):
    raise WorkdirError(f'--workdir={workdir}: cannot be created or written (a file on its path, or a folder '
                       'without write permission)')


def lock(workdir: str, process_index: int = 0) -> folder_lock.Lock:
  """Holds WORKDIR/train.lock for this training (on the first process only; every process of one run shares the
  workdir): a second training in the same workdir would save into the first one's checkpoints and write its rows
  into the same metrics.jsonl. Keep the returned lock while training; it is released when dropped or at exit, and
  the lock of a process that died is taken over with a warning.

  Raises:
    WorkdirError: another live process trains in this workdir (its pid and host named).
  """
  if process_index != 0:
    return folder_lock.Lock(None, None)
  try:
    return folder_lock.acquire(workdir, LOCK, 'a training')
  except folder_lock.LockedError as e:
    raise WorkdirError(f'--workdir={e}') from None


# ---------------------------------------------------------------------------------------------- config.json

def write_config(workdir: str, config: dict) -> None:
  """config.json from a config as a plain dict (predict and evaluate rebuild the model from it; it records the
  grid and the wavelength)."""
  path(workdir, CONFIG).write_text(json.dumps(config, indent=1))


def read_config(workdir: str) -> dict | None:
  """config.json as a dict, None when there is none. Errors of a damaged file are the caller's to judge
  (inference reads it with its own checks)."""
  p = path(workdir, CONFIG)
  return json.loads(p.read_text()) if p.exists() else None


# ------------------------------------------------------------------------------------------- metrics.jsonl

def read_metrics(workdir: str) -> list[dict]:
  """metrics.jsonl's rows in file order ([] when there is none); a line cut short by a kill is skipped."""
  p = path(workdir, METRICS)
  if not p.exists():
    return []
  rows = []
  for line in p.read_text().splitlines():
    try:
      row = json.loads(line)
    except ValueError:
      continue
    if isinstance(row, dict):
      rows.append(row)
  return rows


def trim_metrics(workdir: str, step: int) -> int:
  """Drops the rows of metrics.jsonl after `step` (written by a run that died before its next checkpoint; the
  resumed run writes them again), so that each step has its rows once. Returns how many lines were dropped."""
  p = path(workdir, METRICS)
  if not p.exists():
    return 0
  lines = p.read_text().splitlines()
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
  with outputs.write(p) as f:
    f.write(''.join(l + '\n' for l in keep))
  return len(lines) - len(keep)


def time_spent(workdir: str, step: int) -> tuple[float, float]:
  """(CPU seconds, wall seconds) that earlier runs of this workdir spent training up to `step`: the train/cpu_s and
  train/wall_s of the last metrics.jsonl row at or before it (0, 0 for a fresh workdir). A resumed run adds its own,
  so the final figures are the whole training's, across interruptions (less the time after each run's last log)."""
  cpu = wall = 0.0
  for row in read_metrics(workdir):
    if row.get('step', 0) <= step and 'train/cpu_s' in row:
      cpu, wall = float(row['train/cpu_s']), float(row['train/wall_s'])
  return cpu, wall


class MetricWriter:
  """Scalars to metrics.jsonl and to TensorBoard event files (tensorboardX, no TensorFlow). Only the first process
  writes (every process has the same replicated metrics): give `enabled=False` on the others."""

  def __init__(self, workdir: str, enabled: bool = True):
    self._jsonl = self._tb = None
    self._path, self._rows = path(workdir, METRICS), None
    if not enabled:
      return
    if outputs.is_local(workdir):
      self._jsonl = self._path.open('a')
    else:
      self._rows = self._path.read_text().splitlines(keepends=True) if self._path.exists() else []
    try:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._tb = SummaryWriter(str(path(workdir, TENSORBOARD)))
    except ImportError:
      pass
    except Exception as e:  # pylint: disable=broad-except  (a storage tensorboardX cannot write to)
      logging.warning('no TensorBoard events in %s: %s', workdir, e)

  def write(self, step: int, scalars: dict) -> None:
    if self._jsonl is None and self._rows is None:
      return
    row = json.dumps({'step': step, **{k: float(v) for k, v in scalars.items()}}) + '\n'
    if self._jsonl is not None:
      self._jsonl.write(row)
      self._jsonl.flush()
    else:
      self._rows.append(row)
      self._path.write_text(''.join(self._rows))
    if self._tb is not None:
      for k, v in scalars.items():
        self._tb.add_scalar(k, float(v), step)
      self._tb.flush()

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    if self._tb is not None:
      self._tb.close()


# --------------------------------------------------------------------------------------- final_metrics.json

def write_final(workdir: str, step: int, metrics: dict[str, Any]) -> None:
  """final_metrics.json: the last step and the run's last evaluation and time spent ({name: number})."""
  path(workdir, FINAL).write_text(json.dumps({'step': int(step), **{k: float(v) for k, v in metrics.items()}},
                                             indent=1))


def read_final(workdir: str) -> dict | None:
  """final_metrics.json as a dict, None when the run has not finished once."""
  p = path(workdir, FINAL)
  return json.loads(p.read_text()) if p.exists() else None


def trained_step(workdir: str) -> int | None:
  """The last step of a finished training (final_metrics.json at its config's steps), else None."""
  final, config = read_final(workdir), read_config(workdir)
  if final is None or config is None:
    return None
  step = final.get('step')
  return step if step == config.get('steps') else None


# ----------------------------------------------------------------------------------------------- checkpoints

def checkpoint_managers(workdir: str, keep: int, best_metric: str):
  """(latest, best) Orbax CheckpointManagers for training: the `keep` latest steps, and the one step with the
  highest evaluation `best_metric`; both save asynchronously."""

  def barriers(name):
    # Orbax names its cross-process barriers after the step; both managers save the last step, so without a
    # prefix of their own two concurrent saves meet at the same barrier and a multi-host run can hang at exit.
    return ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=name)

  latest = ocp.CheckpointManager(path(workdir, CHECKPOINTS), options=ocp.CheckpointManagerOptions(
      max_to_keep=keep, create=True, enable_async_checkpointing=True, multiprocessing_options=barriers(CHECKPOINTS)))
  best = ocp.CheckpointManager(path(workdir, BEST), options=ocp.CheckpointManagerOptions(
      max_to_keep=1, best_fn=lambda m: m[best_metric], best_mode='max', create=True,
      enable_async_checkpointing=True, multiprocessing_options=barriers(BEST)))
  return latest, best


def checkpoint_folders(workdir: str, which: str) -> list[tuple[str, epath.Path]]:
  """[(name, folder)] to restore weights from, in the order to try: 'best' -> best, then the latest checkpoints
  (a run stopped before its first evaluation has no best); 'latest' -> the latest checkpoints."""
  names = (BEST, CHECKPOINTS) if which == 'best' else (CHECKPOINTS,)
  return [(n, path(workdir, n)) for n in names]


def is_training_workdir(folder: str) -> bool:
  """Whether `folder` holds a training's config.json and checkpoints (as opposed to an exported model)."""
  return path(folder, CONFIG).exists() and any(path(folder, n).is_dir() for n in (CHECKPOINTS, BEST))


def array_shapes(tree) -> dict[str, tuple]:
  """{'params/Conv_0/kernel': shape} of a tree of arrays or of a checkpoint's metadata. Dict keys and list indices
  are named alike as text: checkpoint metadata lists by '0', '1', a state by 0, 1."""
  flat = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, 'shape'))[0]
  name = lambda keys: '/'.join(str(getattr(k, 'key', getattr(k, 'idx', getattr(k, 'name', k)))) for k in keys)
  return {name(k): tuple(v.shape) for k, v in flat if hasattr(v, 'shape')}


def shape_differences(have: dict, want: dict) -> tuple[list[str], list[str], list[str]]:
  """(names of arrays of another shape, names only in `have`, names only in `want`), each sorted, of two
  array_shapes; all empty when they hold the same arrays."""
  return (sorted(k for k in have.keys() & want.keys() if have[k] != want[k]), sorted(have.keys() - want.keys()),
          sorted(want.keys() - have.keys()))


def restore_newest(steps, restore: Callable[[int], Any], on_damaged: Callable[[int, Exception], None],
                   refuse: tuple[type[Exception], ...] = ()) -> tuple[int | None, Any]:
  """(step, restore(step)) of the first of `steps` (newest first) whose restore works, else (None, None). A step
  whose restore raises (a checkpoint cut or garbled by a kill or a full disk) is passed to on_damaged(step, error)
  and the one before it tried; errors of the types in `refuse` (a checkpoint of another model) are raised."""
  drop_closed_loop_reports()  # a damaged checkpoint's read leaves dozens of harmless tracebacks behind
  for step in steps:
    if step is None:
      continue
    try:
      return step, restore(step)
    except refuse:
      raise
    except Exception as e:  # pylint: disable=broad-except  (any damage to a checkpoint's files: use the one before)
      on_damaged(step, e)
  return None, None


def drop_closed_loop_reports() -> None:
  """Hides the 'RuntimeError: Event loop is closed' tracebacks (dozens) that follow a failed checkpoint read: Orbax
  closes the read's event loop at the first error while tensorstore's other reads are still completing, and their
  callbacks into the closed loop are reported as unraisable exceptions after the error was handled. Only these
  reports are dropped (sys.unraisablehook); every other one is shown."""
  if getattr(sys.unraisablehook, 'drops_closed_loop', False):
    return
  previous = sys.unraisablehook

  def hook(unraisable):
    if isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == 'Event loop is closed':
      return
    previous(unraisable)

  hook.drops_closed_loop = True
  sys.unraisablehook = hook
