"""Output files (io/outputs.py): where they may go, atomic writes, clashes with inputs and model files, pipes and
descriptors, and nothing created before the checks pass."""

import os
import stat
import threading

import numpy as np
import pytest

from difcon_jax.data import build
from difcon_jax.inference import model as inference
from difcon_jax.io import cli
from difcon_jax.io import outputs
from difcon_jax.io import workdir as workdir_lib

from conftest import STRUCTURES

import input_helpers


def test_output_locations(tmp_path):
  afile = tmp_path / 'afile'
  afile.write_text('x')
  c = cli.Checks()
  assert c.output_file('output', str(tmp_path / 'new' / 'deeper' / 'p.csv'))
  assert not (tmp_path / 'new').exists()  # made with the file, not by the check (issue 35)
  assert not c.output_file('output', str(tmp_path))
  assert not c.output_file('output', str(afile / 'p.csv'))
  assert c.output_dir('out', str(tmp_path / 'o1'))
  assert not c.output_dir('out', str(afile))
  assert not c.output_dir('out', str(afile / 'sub'))
  assert len(c.errors) == 4
  with pytest.raises(ValueError, match='--out='):
    build.build(str(STRUCTURES), str(afile), progress=False)


def test_atomic_write_leaves_the_old_file_or_the_new(tmp_path):
  path = tmp_path / 'r.json'
  path.write_text('old')
  rng = np.random.default_rng(15)
  for k in range(3):
    with pytest.raises(RuntimeError):
      with outputs.write(str(path)) as f:
        f.write('x' * int(rng.integers(1, 10_000)))
        raise RuntimeError('killed half way')
    assert path.read_text() == 'old' and os.listdir(tmp_path) == ['r.json']
  with outputs.write(str(path)) as f:
    f.write('new')
  assert path.read_text() == 'new' and oct(path.stat().st_mode & 0o777) != oct(0o600)


def test_clashes_name_inputs_model_files_and_repeated_outputs(tmp_path):
  data = tmp_path / 'q.xy'
  data.write_text('10 1\n')
  os.link(data, tmp_path / 'hard.xy')
  os.symlink(data, tmp_path / 'soft.xy')
  model = tmp_path / 'model'
  (model / 'checkpoints' / '4').mkdir(parents=True)
  protected = inference.model_files(str(model))
  cases = {  # outputs -> flags refused
      (('output', data),): ['output'],
      (('output', tmp_path / 'hard.xy'),): ['output'],  # a hard link to the input
      (('output', tmp_path / 'soft.xy'),): ['output'],  # a symlink to it
      (('output', tmp_path / 'sub' / '..' / 'q.xy'),): ['output'],
      (('embeddings', data),): ['embeddings'],
      (('output', tmp_path / 'x.csv'), ('embeddings', tmp_path / 'x.csv')): ['embeddings'],
      (('output', model / 'config.json'),): ['output'],
      (('output', model / 'checkpoints' / '4' / 'x'),): ['output'],
      (('output', tmp_path / 'p.csv'), ('embeddings', tmp_path / 'e.npy')): [],
      (('output', model / 'preds.csv'),): [],  # beside the model's files is fine
  }
  (tmp_path / 'sub').mkdir()
  for outs, refused in cases.items():
    found = outputs.clashes({flag: str(p) for flag, p in outs}, [str(data)], protected)
    assert [f for f, _, _ in found] == refused, (outs, found)
  fifo = tmp_path / 'pipe'
  os.mkfifo(fifo)
  assert outputs.clashes({'output': str(fifo), 'embeddings': str(fifo)}, [], []) == []  # streams destroy nothing


def test_outputs_into_fifos_and_descriptors_are_streams(tmp_path):
  fifo = tmp_path / 'out.csv'
  os.mkfifo(fifo)
  got = []
  reader = threading.Thread(target=lambda: got.append(open(fifo).read()), daemon=True)
  reader.start()
  with outputs.write(str(fifo)) as f:
    f.write('a,b\n1,2\n')
  reader.join(30)
  assert got == ['a,b\n1,2\n'] and stat.S_ISFIFO(os.lstat(fifo).st_mode)
  assert cli.Checks().output_file('output', str(fifo))
  # The /dev/stdout idiom: a link to /proc/self/fd/1 is written through, never replaced by a file.
  link = tmp_path / 'stdout.csv'
  os.symlink('/proc/self/fd/1', link)
  run = input_helpers.run('-c', f'from difcon_jax.io import outputs\nwith outputs.write({str(link)!r}) as f: f.write("through\\n")')
  assert run.returncode == 0 and run.stdout == 'through\n', run.stderr[-1000:]
  assert os.path.islink(link)
  try:  # a character device (as /dev/null) stays one; needs the right to make device nodes
    os.mknod(tmp_path / 'null', stat.S_IFCHR | 0o666, os.makedev(1, 3))
  except (PermissionError, OSError):
    return
  try:
    with outputs.write(str(tmp_path / 'null')) as f:
      f.write('x')
  except OSError:  # a filesystem mounted nodev refuses to open it: still not replaced
    pass
  assert stat.S_ISCHR(os.lstat(tmp_path / 'null').st_mode)


def test_output_checks_create_nothing(tmp_path):
  c = cli.Checks()
  assert c.output_file('output', str(tmp_path / 'new' / 'deeper' / 'p.csv'))
  assert c.output_dir('out', str(tmp_path / 'o1' / 'o2'))
  assert not (tmp_path / 'new').exists() and not (tmp_path / 'o1').exists()
  (tmp_path / 'afile').write_text('x')
  assert not c.output_dir('out', str(tmp_path / 'afile' / 'sub'))
  workdir_lib.check(str(tmp_path / 'work' / 'run'))  # a workdir is made by its lock, when training starts
  assert not (tmp_path / 'work').exists()
  with outputs.write(tmp_path / 'new' / 'deeper' / 'p.csv') as f:  # the folder comes with the file
    f.write('a\n')
  assert (tmp_path / 'new' / 'deeper' / 'p.csv').read_text() == 'a\n'
