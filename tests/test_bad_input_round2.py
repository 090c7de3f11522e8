"""Bad input and bad circumstances, round 2 (issue 23): nothing lost, nothing hangs.

Sections: outputs that would destroy inputs or foreign files, transactional corpus builds and their lock, one
training per workdir, damaged models and corpora, a model's garbage output, config checks up front, and inputs
(encodings, thousands separators, wavelength units, loops, FIFOs, overflow). Whatever could hang runs in a
subprocess or thread with a timeout.
"""

import codecs
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from difcon_jax.io import cli
from difcon_jax.io import folder_lock
from difcon_jax.crystallography import pattern_grid as grid_lib
from difcon_jax.inference import model as inference
from difcon_jax.inference import rows as summary
from difcon_jax.training import config_checks
from difcon_jax.training import memory_check
from difcon_jax.io import workdir as workdir_lib
from difcon_jax.data import build
from difcon_jax.data import corpus
from difcon_jax.io import measured
from difcon_jax.io import outputs
from difcon_jax.io import patterns
from conftest import STRUCTURES
import ranking_helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args, timeout=300, **kw):
  return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                        timeout=timeout, **kw)


def _pattern_text(rng, n=400, fmt='{:.3f} {:.1f}'):
  tt = np.linspace(10, 80, n)
  y = 50 + sum(rng.uniform(200, 2000) * np.exp(-((tt - c) / 0.15) ** 2) for c in rng.uniform(15, 75, 8))
  return tt, y, '\n'.join(fmt.format(a, b) for a, b in zip(tt, y)) + '\n'


def _one_line_error(run, code=2):
  assert run.returncode == code, run.stdout[-500:] + run.stderr[-2000:]
  assert 'Traceback' not in run.stderr, run.stderr[-2000:]
  return [l for l in run.stderr.splitlines() if 'error' in l]


# ---------------------------------------------------------------------------------------------- outputs

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


def test_predict_never_overwrites_its_input(tmp_path):
  rng = np.random.default_rng(0)
  data = tmp_path / 'q.xy'
  data.write_text(_pattern_text(rng)[2])
  before = data.read_bytes()
  for extra in ([f'--output={data}'], [f'--output={tmp_path / "p.csv"}', f'--embeddings={data}'],
                [f'--output={tmp_path / "x"}', f'--embeddings={tmp_path / "x"}']):
    run = _run('-m', 'difcon_jax.predict', f'--input={data}', *extra)
    lines = _one_line_error(run)
    assert len(lines) == 1 and ('input' in lines[0] or 'same file' in lines[0]), run.stderr[-1000:]
    assert data.read_bytes() == before and not (tmp_path / 'x').exists()


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
  run = _run('-c', f'from difcon_jax import cli\nwith outputs.write({str(link)!r}) as f: f.write("through\\n")')
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


def test_export_refuses_a_missing_workdir_and_its_own_workdir(tmp_path):
  run = _run('-m', 'difcon_jax.export', f'--workdir={tmp_path / "nowhere"}', f'--out={tmp_path / "exp"}',
             '--name=x')
  assert len(_one_line_error(run)) == 1 and '--workdir=' in run.stderr
  assert not (tmp_path / 'nowhere').exists() and not (tmp_path / 'exp').exists()
  _, work = _workdir(tmp_path, (1,))
  before = (work / 'config.json').read_bytes()
  run = _run('-m', 'difcon_jax.export', f'--workdir={work}', f'--out={work}', '--name=x')
  assert len(_one_line_error(run)) == 1 and 'config.json' in run.stderr
  assert (work / 'config.json').read_bytes() == before and not (work / 'variables.msgpack').exists()


# ------------------------------------------------------------------------------- corpus builds: swap and lock

def _cifs(tmp_path, names=('nacl.cif', 'si.cif', 'cscl.cif', 'caf2.cif')):
  cifs = tmp_path / 'cifs'
  cifs.mkdir(exist_ok=True)
  for n in names:
    shutil.copy(STRUCTURES / n, cifs / n)
  return cifs


def test_a_rebuild_killed_half_way_leaves_the_old_corpus(tmp_path, monkeypatch):
  cifs, out = _cifs(tmp_path), tmp_path / 'out'
  first = build.build(str(cifs), str(out), workers=1, progress=False, test_fraction=0.5)
  files = lambda: {p: (out / p).read_bytes() for p in ('build_report.json',)} | {
      n: open(os.path.join(first['dataset'], n), 'rb').read() for n in sorted(os.listdir(first['dataset']))}
  before = files()
  real = corpus.write

  def killed(records, spec, folder):
    real(records, spec, folder)
    raise KeyboardInterrupt  # killed once the new records are written, before the swap
  monkeypatch.setattr(corpus, 'write', killed)
  with pytest.raises(KeyboardInterrupt):
    build.build(str(cifs), str(out), workers=1, progress=False, test_fraction=0.9)
  assert files() == before
  assert sum(corpus.splits(str(out)).values()) == sum(first['written'].values())


def test_a_swap_stopped_between_its_steps_is_finished_or_undone(tmp_path):
  """Every point where a kill can stop the swap: recover() leaves a corpus and the report that describes it."""
  cifs = _cifs(tmp_path)
  reports = {}
  for name, fraction in (('old', 0.0), ('new', 0.99)):
    reports[name] = build.build(str(cifs), str(tmp_path / name), workers=1, progress=False, test_fraction=fraction)
  target = lambda out: out / corpus.NAME / corpus.VERSION
  for stop in range(4):  # after 0-3 of the swap's four renames
    out = tmp_path / f'out{stop}'
    shutil.copytree(tmp_path / 'old', out)
    staging = out / '.building-x'
    shutil.copytree(target(tmp_path / 'new'), staging / corpus.NAME / corpus.VERSION)
    shutil.copy(tmp_path / 'new' / 'build_report.json', staging / 'build_report.json')
    moves = [(out / 'build_report.json', out / '.previous' / 'build_report.json'),
             (target(out), out / '.previous' / 'dataset'),
             (staging / corpus.NAME / corpus.VERSION, target(out)),
             (staging / 'build_report.json', out / 'build_report.json')]
    (out / '.previous').mkdir()
    for a, b in moves[:stop]:
      os.rename(a, b)
    build.recover(str(out))
    described = json.loads((out / 'build_report.json').read_text())['written']
    assert corpus.splits(str(out)) == {k: v for k, v in described.items() if v}, stop
    assert sorted(os.listdir(out)) == ['build_report.json', corpus.NAME], stop


def _hold_lock(folder, name, what):
  """A process that takes the lock and waits; returns it once the lock is held."""
  proc = subprocess.Popen([sys.executable, '-c', 'import sys, time; from difcon_jax import folder_lock; '
                           f'l = folder_lock.acquire({str(folder)!r}, {name!r}, {what!r}); print("held", flush=True); '
                           'time.sleep(120)'], stdout=subprocess.PIPE, text=True, cwd=ROOT)
  assert proc.stdout.readline().strip() == 'held'
  return proc


def test_two_builds_into_one_folder(tmp_path):
  cifs, out = _cifs(tmp_path, ('nacl.cif', 'si.cif')), tmp_path / 'out'
  out.mkdir()
  holder = _hold_lock(out, build.LOCK, 'a corpus build')
  try:
    start = time.time()
    with pytest.raises(folder_lock.LockedError, match=f'pid {holder.pid}'):
      build.build(str(cifs), str(out), workers=1, progress=False)
    assert not os.path.exists(out / 'build_report.json')
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  # The dead build's lock file is still there: taken over, not held forever.
  assert os.path.exists(out / build.LOCK)
  report = build.build(str(cifs), str(out), workers=1, progress=False)
  assert sum(report['written'].values()) == 2 and not os.path.exists(out / build.LOCK)


# ------------------------------------------------------------------------------------ the training workdir

def test_train_refuses_a_workdir_that_is_not_one(tmp_path):
  exported = tmp_path / 'exported'
  shutil.copytree(inference.BUNDLED_MODEL, exported)
  before = (exported / 'config.json').read_bytes()
  with pytest.raises(workdir_lib.WorkdirError, match='exported model'):
    workdir_lib.check(str(exported))
  assert (exported / 'config.json').read_bytes() == before
  other = tmp_path / 'other'
  other.mkdir()
  (other / 'notes.txt').write_text('mine')
  with pytest.raises(workdir_lib.WorkdirError, match='notes.txt'):
    workdir_lib.check(str(other))
  for fine in ('new', 'empty'):
    (tmp_path / 'empty').mkdir(exist_ok=True)
    workdir_lib.check(str(tmp_path / fine))
  _, work = _workdir(tmp_path, (1,))
  (work / 'notes.txt').write_text('a note beside a real run')
  workdir_lib.check(str(work))


def test_one_training_per_workdir(tmp_path):
  work = tmp_path / 'work'
  work.mkdir()
  holder = _hold_lock(work, workdir_lib.LOCK, 'a training')
  try:
    with pytest.raises(workdir_lib.WorkdirError) as e:
      workdir_lib.lock(str(work))
    assert f'pid {holder.pid}' in str(e.value) and '\n' not in str(e.value)
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  lock = workdir_lib.lock(str(work))  # the dead one's lock is stale
  assert json.loads((work / workdir_lib.LOCK).read_text())['pid'] == os.getpid()
  assert workdir_lib.lock(str(work)) is lock  # this process again: the same lock
  lock.release()
  assert not (work / workdir_lib.LOCK).exists()


# ------------------------------------------------------------------------------- damaged models and corpora

def _workdir(tmp_path, steps):
  """A training workdir with a checkpoint (untrained weights) at each step, written without training."""
  import jax.numpy as jnp
  import orbax.checkpoint as ocp
  import train_helpers
  from difcon_jax import train
  config = train_helpers.tiny_config(str(tmp_path / 'corpus'))
  config.keep_checkpoints = 5
  work = tmp_path / 'work'
  work.mkdir()
  (work / 'config.json').write_text(config.to_json_best_effort(indent=1))
  model, tx = train.create_model(config), train.create_optimizer(config)
  state = train.init_state(config, model, tx, jnp.zeros((1, config.num_bins)))
  latest, _ = workdir_lib.checkpoint_managers(str(work), config.keep_checkpoints, config.best_metric)
  for s in steps:
    latest.save(s, args=ocp.args.StandardSave(state.replace(step=jnp.asarray(s, jnp.int32))))
  latest.wait_until_finished()
  return config, work


def _cut(folder):
  for dirpath, _, names in os.walk(folder):
    for n in names:
      path = os.path.join(dirpath, n)
      os.truncate(path, os.path.getsize(path) // 2)


def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(tmp_path):
  import jax
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
  from difcon_jax import train
  config, work = _workdir(tmp_path, (1, 2))
  _cut(work / 'checkpoints' / '2')
  model = inference.Model(str(work), 'latest')
  assert model.step == 1 and 'damaged' in model.source and 'checkpoints/2' in model.source
  replicated = NamedSharding(Mesh(np.array(jax.devices()), ('data',)), P())
  state, latest, _ = train.restore_or_init(config, train.create_model(config), train.create_optimizer(config),
                                           str(work), replicated)
  assert int(state.step) == 1 and latest.all_steps() == [1]
  assert (work / 'checkpoints' / '2.damaged').is_dir()  # moved aside, not deleted
  _cut(work / 'checkpoints' / '1')
  with pytest.raises(inference.ModelError, match='no checkpoint can be restored'):
    inference.Model(str(work), 'latest')


def test_damaged_exported_models_are_named_in_one_line(tmp_path):
  good = inference.BUNDLED_MODEL
  config = json.load(open(os.path.join(good, 'config.json')))
  weights = open(os.path.join(good, 'variables.msgpack'), 'rb').read()
  rng = np.random.default_rng(1)
  other = json.loads(json.dumps(config))
  other['model']['width'] = config['model']['width'] * 2
  cases = {  # file -> (content, words in the error)
      'variables.msgpack': [(weights[:len(weights) // 2], 'cut or damaged'), (b'', 'empty'),
                            (rng.bytes(5000), 'variables.msgpack')],
      'config.json': [('{"num_bins": 12', 'not valid JSON'), ('{}', 'empty'), ('"text"', 'not a JSON object'),
                      (json.dumps({**config, 'num_bins': 'many'}), 'num_bins'),
                      (json.dumps({**config, 'two_theta_max': None}), 'two_theta_max'),
                      (json.dumps(other), 'another model')],
      'model.json': [(None, 'missing'), ('[1, 2]', 'not a JSON object'), ('{"name": "x", "step": "ten"}', 'step')],
  }
  for name, variants in cases.items():
    for k, (content, words) in enumerate(variants):
      folder = tmp_path / f'{name}{k}'
      shutil.copytree(good, folder)
      if content is None:
        os.remove(folder / name)
      elif isinstance(content, bytes):
        (folder / name).write_bytes(content)
      else:
        (folder / name).write_text(content)
      with pytest.raises(inference.ModelError) as e:
        inference.Model(str(folder))
      message = str(e.value)
      assert '\n' not in message and words in message and str(folder) in message, (name, k, message)


def test_damaged_corpora_are_named_before_any_training(tmp_path):
  import train_helpers
  cifs = _cifs(tmp_path)
  whole = tmp_path / 'whole'
  build.build(str(cifs), str(whole), workers=1, progress=False, test_fraction=0.5)
  only_train = tmp_path / 'only_train'
  build.build(str(cifs), str(only_train), workers=1, progress=False, test_fraction=0.0)
  with pytest.raises(config_checks.ConfigError, match="no 'test' split") as e:
    config_checks.check_corpus(train_helpers.tiny_config(str(only_train)))
  assert '\n' not in str(e.value)
  with pytest.raises(corpus.CorpusError, match="no 'test' split"):
    corpus.data_sources(str(only_train))['test']
  cut = tmp_path / 'cut'
  shutil.copytree(whole, cut)
  record = next(p for p in (cut / corpus.NAME / corpus.VERSION).iterdir() if 'train.array_record' in p.name)
  os.truncate(record, os.path.getsize(record) // 2)
  with pytest.raises(corpus.CorpusError) as e:
    corpus.load_arrays(str(cut), 'train')
  assert str(e.value).startswith(str(record)) and '\n' not in str(e.value)
  with pytest.raises(config_checks.ConfigError, match=record.name):
    config_checks.check_corpus(train_helpers.tiny_config(str(cut)))


def test_late_reports_of_a_failed_checkpoint_read_are_dropped():
  """Orbax closes its event loop at a read's first error; tensorstore's other reads then report 'Event loop is
  closed' as unraisable exceptions, dozens of tracebacks after the error was handled. Only those are dropped."""
  code = ('import sys\nfrom difcon_jax import cli\ncli.drop_closed_loop_reports()\n'
          'class Late:\n  def __del__(self):\n    raise RuntimeError(sys.argv[1])\n'
          'for _ in range(5):\n  Late()\n')
  dropped = _run('-c', code, 'Event loop is closed')
  shown = _run('-c', code, 'something else')
  assert dropped.returncode == 0 and 'Traceback' not in dropped.stderr, dropped.stderr
  assert shown.stderr.count('something else') == 5


# ---------------------------------------------------------------------------- a model's garbage output

def test_garbage_logits_still_rank_real_labels():
  from difcon_jax.evaluation import sets as eval_sets
  from difcon_jax.evaluation import metrics
  from difcon_jax.models import heads
  from difcon_jax.crystallography import spacegroups
  rng = np.random.default_rng(2)
  n = 6
  for fill in (np.nan, np.inf, -np.inf, 3e38, 'mixed'):
    def head(size):
      if fill == 'mixed':
        return rng.choice([np.nan, np.inf, -np.inf, 1e38, -1e38, 0.5], (n, size)).astype(np.float32)
      return np.full((n, size), fill, np.float32)
    logits = {'crystal_system': head(7), 'extinction_group': head(spacegroups.num_extinction_groups()),
              'space_group': [head(s) for s in heads.HEAD_SIZES]}
    ranked = heads.rank(logits, 5)
    sg = np.asarray(ranked['space_group'][0])
    assert sg.min() >= 1 and sg.max() <= 230, (fill, sg)
    assert all(len(set(row)) == 5 for row in sg), (fill, sg)
    assert np.all(np.asarray(ranking_helpers.top1_labels(logits)['space_group']) >= 1)
    batch = eval_sets.Batch(np.zeros((n, 10), np.float32), [f'p{i}' for i in range(n)],
                            metrics.labels_of_space_groups(rng.integers(1, 231, n)), n)
    m, preds = eval_sets.evaluate(lambda x: (logits, {}), [batch])
    assert m['examples'] == n and 0 <= m['space_group_top5'] <= 1
    summary.prediction_columns(preds.ranked, 0, 5)


# ------------------------------------------------------------------------------------ config checks up front

def test_a_grid_too_coarse_for_the_peak_windows():
  import train_helpers
  for bins in (10, 100, 1000):
    c = train_helpers.tiny_config('corpus')
    c.num_bins = bins
    errors = config_checks.config_errors(c)
    assert len(errors) == 1 and errors[0].startswith(f'config.num_bins={bins}:') and 'at least' in errors[0]
  least = int(errors[0].split('at least ')[1].split()[0])
  c.num_bins = least
  assert config_checks.config_errors(c) == []


def test_a_batch_that_cannot_fit_is_refused_before_any_work():
  sys.path.insert(0, ROOT)
  from configs import quickstart  # pylint: disable=g-import-not-at-top
  c = quickstart.get_config()
  per_example = memory_check.bytes_per_example(c, 2)
  assert per_example > 2 * 4 * c.num_bins  # more than the two rendered views alone
  c.batch_size = 100_000
  with pytest.raises(config_checks.ConfigError, match='config.batch_size=100000') as e:
    memory_check.check_memory(c, 2, (64 << 30, 'a 64 GiB device'))
  assert '\n' not in str(e.value) and 'a 64 GiB device' in str(e.value)
  c.batch_size = 32
  memory_check.check_memory(c, 2, (64 << 30, 'a 64 GiB device'))
  with pytest.raises(config_checks.ConfigError):
    memory_check.check_memory(c, 2, (31 * per_example, 'a small device'))


def test_a_missing_config_file_is_one_line(tmp_path):
  run = _run('-m', 'difcon_jax.train', f'--config={tmp_path / "nope.py"}', f'--workdir={tmp_path / "w"}')
  lines = _one_line_error(run)
  assert len(lines) == 1 and '--config' in lines[0] and 'nope.py' in lines[0], run.stderr[-1000:]
  assert not (tmp_path / 'w').exists()


def test_anode_and_wavelength_together_are_refused():
  c = cli.Checks()
  assert c.wavelength(0.7107, 'Cu') is None and len(c.errors) == 1 and 'not both' in c.errors[0]
  c = cli.Checks()
  assert c.wavelength(1.5406, 'Mo', wavelength_given=False) == pytest.approx(0.7107) and not c.errors
  run = _run('-m', 'difcon_jax.peaks', STRUCTURES / 'nacl.cif', '--anode=Cu', '--wavelength=0.7107')
  assert len(_one_line_error(run)) == 1 and 'not both' in run.stderr


# ----------------------------------------------------------------------------------------------- inputs

def test_encodings_from_windows_software(tmp_path):
  rng = np.random.default_rng(3)
  tt, y, body = _pattern_text(rng)
  header = '# Scan 2θ 10-80°, wavelength = 1.5406 Å, 40 kV\n'
  for name, data, warned in (('utf16.xy', codecs.BOM_UTF16_LE + (header + body).encode('utf-16-le'), False),
                             ('utf16be.xy', codecs.BOM_UTF16_BE + (header + body).encode('utf-16-be'), False),
                             ('cp1252.xy', (header.replace('θ', '') + '# “q”\n' + body).encode('cp1252'), True),
                             ('latin1.xy', (header.replace('θ', '') + body).encode('latin-1'), True)):
    (tmp_path / name).write_bytes(data)
    p = patterns.read_pattern(str(tmp_path / name))
    np.testing.assert_allclose(p.two_theta, np.round(tt, 3))
    np.testing.assert_allclose(p.intensity, np.round(y, 1))
    assert p.wavelength == pytest.approx(1.5406), name
    assert any('not UTF-8' in w for w in p.warnings) == warned, (name, p.warnings)
  (tmp_path / 'binary.xy').write_bytes(bytes(rng.integers(0, 256, 3000, dtype=np.uint8)))
  with pytest.raises(patterns.PatternError, match='binary'):
    patterns.read_pattern(str(tmp_path / 'binary.xy'))


def test_thousands_separators_are_read_right_or_refused(tmp_path):
  rng = np.random.default_rng(4)
  tt = np.linspace(10, 80, 300)
  y = rng.uniform(200, 90_000, 300).round()
  thousands = lambda v: f'{int(v):,}'
  files = {  # name -> (text, intensities expected, or words of the refusal)
      'us.xy': ('\n'.join(f'{a:.2f} {thousands(b)}' for a, b in zip(tt, y)), y),
      'us_quoted.csv': ('"2theta","counts"\n' + '\n'.join(f'"{a:.2f}","{thousands(b)}"' for a, b in zip(tt, y)), y),
      'us_semicolon.csv': ('\n'.join(f'{a:.2f};{thousands(b)}' for a, b in zip(tt, y)), y),
      'european.xy': ('\n'.join(f'{a:.2f} {b / 1000:.3f}'.replace('.', ',') for a, b in zip(tt, y)), y / 1000),
      'ambiguous.xy': ('\n'.join(f'{int(a)} {thousands(b)}' for a, b in zip(tt, y)), 'cannot tell'),
      'mixed.xy': ('\n'.join(f'{a:.2f}'.replace('.', ',') + f' {thousands(b)}.5' for a, b in zip(tt, y)),
                   'as decimal commas .* and as thousands separators'),
  }
  for name, (text, expected) in files.items():
    path = tmp_path / name
    path.write_text(text + '\n')
    if isinstance(expected, str):
      with pytest.raises(patterns.PatternError, match=expected):
        patterns.read_pattern(str(path))
      continue
    p = patterns.read_pattern(str(path))
    np.testing.assert_allclose(p.intensity, expected, rtol=1e-9, err_msg=name)
    np.testing.assert_allclose(p.two_theta, np.round(tt, 2), err_msg=name)
    assert any(('thousands' if 'us' in name else 'decimal commas') in w for w in p.warnings), (name, p.warnings)
  path = tmp_path / 'nbsp.xy'  # no-break spaces between digit groups (French, from spreadsheet exports)
  path.write_text('\n'.join(f'{a:.2f}\t{thousands(b)}'.replace(',', '\u00a0') for a, b in zip(tt, y)) + '\n')
  np.testing.assert_allclose(patterns.read_pattern(str(path)).intensity, y)
  path = tmp_path / 'one.xy'  # a single separated value among plain ones is still found
  path.write_text('\n'.join(f'{a:.2f} {int(b) if i != 150 else thousands(b + 1000)}'
                            for i, (a, b) in enumerate(zip(tt, y))) + '\n')
  assert patterns.read_pattern(str(path)).intensity[150] == y[150] + 1000


def test_wavelength_units_in_headers(tmp_path):
  rng = np.random.default_rng(5)
  _, _, body = _pattern_text(rng)
  for header, expected in (('# Wavelength (nm): 0.07107', 0.7107), ('# wavelength = 0.15406 nm', 1.5406),
                           ('# Wavelength [Å]: 1.5406', 1.5406), ('# lambda = 154.06 pm', 1.5406),
                           ('# Wavelength: 1.5406 A', 1.5406), ('# Wavelength 1.5406', 1.5406),
                           ('# Wellenlänge / wavelength: 1,5406', 1.5406),
                           ('# X-ray wavelength (keV): 17.479', 12.398419843320026 / 17.479)):
    (tmp_path / 'p.xy').write_text(header + '\n' + body)
    assert patterns.read_pattern(str(tmp_path / 'p.xy')).wavelength == pytest.approx(expected), header
  (tmp_path / 'p.xy').write_text('# Wavelength (cm): 1.5406e-8\n# wavelength 0.0000000154 cm\n' + body)
  with pytest.raises(patterns.PatternError, match='cm'):
    patterns.read_pattern(str(tmp_path / 'p.xy'))
  counts = ' '.join(f'{v:.1f}' for v in rng.uniform(1, 100, 50))
  (tmp_path / 'nm.xrdml').write_text(
      f'<x><kAlpha1 unit="nm">0.15406</kAlpha1><positions axis="2Theta"><startPosition>10</startPosition>'
      f'<endPosition>60</endPosition></positions><intensities>{counts}</intensities></x>')
  assert patterns.read_pattern(str(tmp_path / 'nm.xrdml')).wavelength == pytest.approx(1.5406)


def test_globs_and_folders_cut_loops_and_list_each_file_once(tmp_path):
  data = tmp_path / 'data'
  (data / 'sub').mkdir(parents=True)
  for n in ('a.xy', 'sub/b.xy'):
    (data / n).write_text('x')
  os.symlink('.', data / 'self')
  os.symlink('..', data / 'sub' / 'up')
  code = ('import json, sys; from difcon_jax.io import patterns; '
          'print(json.dumps([patterns.expand_inputs([a]) for a in sys.argv[1:]]))')
  run = _run('-c', code, str(data / '**' / '*.xy'), str(data), timeout=60)
  assert run.returncode == 0, run.stderr[-1000:]
  for found in json.loads(run.stdout):
    assert sorted(os.path.realpath(p) for p in found) == [str(data / 'a.xy'), str(data / 'sub' / 'b.xy')], found


def test_fifos_in_an_input_folder_are_refused_unopened(tmp_path):
  rng = np.random.default_rng(6)
  (tmp_path / 'good.xy').write_text(_pattern_text(rng)[2])
  fifo = tmp_path / 'pipe.xy'
  os.mkfifo(fifo)
  found = patterns.expand_inputs([str(tmp_path)])
  assert sorted(os.path.basename(p) for p in found) == ['good.xy', 'pipe.xy']
  results = {}

  def read_all():
    for p in found:
      try:
        patterns.read_pattern(p)
        results[p] = 'ok'
      except patterns.PatternError as e:
        results[p] = str(e)
  reader = threading.Thread(target=read_all, daemon=True)
  reader.start()
  reader.join(30)
  if reader.is_alive():  # unblock the reader before failing
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    os.close(fd)
  assert not reader.is_alive(), 'read_pattern blocked on a FIFO'
  assert results[str(tmp_path / 'good.xy')] == 'ok'
  assert results[str(fifo)].startswith(str(fifo)) and 'FIFO' in results[str(fifo)]


def test_overflowing_counts_and_scans_with_nothing_left_are_named(tmp_path):
  rng = np.random.default_rng(7)
  tt, y, _ = _pattern_text(rng)
  (tmp_path / 'huge.xy').write_text('\n'.join(f'{a:.3f} {b / y.max() * 1.7e308:.6g}' for a, b in zip(tt, y)))
  with pytest.raises(patterns.PatternError, match='overflow'):
    patterns.read_pattern(str(tmp_path / 'huge.xy'))
  # Measured with Mo Kα at 60-100°: at the Cu Kα training wavelength none of it has a counterpart.
  high = patterns.from_arrays('mo.xy', np.linspace(60, 100, 400), y)
  with pytest.raises(patterns.PatternError, match='nothing to predict') as e:
    measured.to_grid(high, grid_lib.config(2000), 0.7107)
  assert str(e.value).startswith('mo.xy')
