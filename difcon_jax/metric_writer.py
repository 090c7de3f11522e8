"""Scalars to TensorBoard event files (tensorboardX, no TensorFlow) and to metrics.jsonl in the workdir.

The workdir may be local or in cloud storage (etils.epath). Cloud objects cannot be appended to, so there
metrics.jsonl is rewritten whole at each write (small: one row per logged step).
"""

from __future__ import annotations

import json

from absl import logging
from etils import epath
import jax

from difcon_jax import cli


class MetricWriter:
  """Scalars to TensorBoard event files (tensorboardX, no TensorFlow) and to metrics.jsonl in the workdir."""

  def __init__(self, workdir: str):
    """Only the first process writes (every process has the same replicated metrics)."""
    self._jsonl = self._tb = None
    self._path, self._rows = epath.Path(workdir) / 'metrics.jsonl', None
    if jax.process_index() == 0:
      if cli.is_local(workdir):
        self._jsonl = self._path.open('a')
      else:
        self._rows = self._path.read_text().splitlines(keepends=True) if self._path.exists() else []
      try:
        from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
        self._tb = SummaryWriter(str(epath.Path(workdir) / 'tensorboard'))
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
