"""Bad input, round 3 (issue 35): what a new user and a third fault probe broke.

Sections follow the probe's classes: nothing written before the checks pass (6), outputs that would overwrite
inputs or another run's files (1), the less-used commands' checks (2), training config values checked up front
(3, 9, 12), file names that are not UTF-8 (5), measured data misread (7, 8), flags ignored and empty work (10),
bounded queues (11), sweep runs that share a folder (13), and help screens that list every flag.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from difcon_jax.io import cli
from difcon_jax import sweeps
from difcon_jax.training import config_checks
from difcon_jax.training import resume_checks
from difcon_jax.io import workdir as workdir_lib
from difcon_jax.data import workers as workers_lib
from difcon_jax.io import measured
from difcon_jax.io import outputs
from difcon_jax.io import patterns

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args, timeout=300):
  return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                        timeout=timeout)


def _refused(run, code=2) -> str:
  """The stderr of a command refused in lines (no traceback), with the exit status `code`."""
  assert run.returncode == code, run.stdout[-800:] + run.stderr[-2000:]
  assert 'Traceback' not in run.stderr, run.stderr[-2000:]
  return run.stderr


def _pattern_lines(fmt='{:.3f} {:.1f}', tt=None, scale=1.0):
  tt = np.linspace(10, 80, 400) if tt is None else tt
  y = 50 + 1000 * np.exp(-((tt - 30) / 0.2) ** 2) + 500 * np.exp(-((tt - 50) / 0.2) ** 2)
  return ''.join(fmt.format(a, b * scale) + '\n' for a, b in zip(tt, y))


# ------------------------------------------------------------------- 6: nothing written before the checks pass

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


def test_evaluate_refused_leaves_no_folders_and_refuses_ignored_flags(tmp_path):
  npz = tmp_path / 'set.npz'
  npz.write_bytes(b'')
  run = _run('-m', 'difcon_jax.evaluate', '--set=experimental', f'--data={npz}', f'--labels={tmp_path / "l.csv"}',
             f'--corpus={tmp_path}', f'--out={tmp_path / "out"}', f'--report={tmp_path / "report"}')
  err = _refused(run)
  assert '--labels=' in err and 'an .npz holds its own labels' in err  # 10: not silently ignored
  assert '--corpus=' in err and 'only with a simulated set' in err
  assert not (tmp_path / 'out').exists() and not (tmp_path / 'report').exists()


def test_hand_refused_leaves_no_folder_and_checks_its_flags(tmp_path):
  bad = tmp_path / 'bad.npz'
  bad.write_bytes(b'not an npz')
  err = _refused(_run('-m', 'difcon_jax.hand', f'--corpus={tmp_path / "nope"}', f'--out={tmp_path / "out"}',
                      '--seed=-1', '--min_intensity=2', f'--experimental={bad}'))
  for flag in ('corpus', 'seed', 'min_intensity', 'experimental'):
    assert f'--{flag}=' in err
  assert not (tmp_path / 'out').exists()


def test_train_refuses_config_values_before_writing_anything(tmp_path):
  work = tmp_path / 'work'
  err = _refused(_run('-m', 'difcon_jax.train', '--config=configs/quickstart.py', f'--workdir={work}',
                      '--config.views=1', '--config.model.pooling=nope'))
  assert 'config.views=1' in err and 'config.model.pooling' in err
  assert not work.exists()


# ---------------------------------------------------------------- 1: outputs that overwrite what is not theirs

def _fake_training_workdir(folder):
  folder.mkdir(parents=True)
  (folder / 'config.json').write_text('{}')
  (folder / 'checkpoints').mkdir()
  return folder


def test_export_refuses_another_runs_folder_and_foreign_files(tmp_path):
  mine = _fake_training_workdir(tmp_path / 'mine')
  other = _fake_training_workdir(tmp_path / 'other')
  err = _refused(_run('-m', 'difcon_jax.export', f'--workdir={mine}', f'--out={other}', '--name=x'))
  assert f'--out={other}' in err and 'training workdir' in err
  notes = tmp_path / 'notes'
  notes.mkdir()
  (notes / 'thesis.tex').write_text('mine')
  model = tmp_path / 'model'
  model.mkdir()
  (model / 'model.json').write_text(json.dumps({'name': 'v2', 'workdir': str(other)}))
  for out, why in ((notes, 'thesis.tex'), (model, 'exported from')):
    assert why in _refused(_run('-m', 'difcon_jax.export', f'--workdir={mine}', f'--out={out}', '--name=x'))
  assert (notes / 'thesis.tex').read_text() == 'mine' and (other / 'config.json').read_text() == '{}'


def test_similarity_checks_flags_and_refuses_one_file_for_two_outputs(tmp_path):
  err = _refused(_run('-m', 'difcon_jax.similarity', f'--corpus={tmp_path / "nope"}', '--views=1',
                      f'--out={tmp_path / "fig.json"}', f'--checkpoint={tmp_path}'))
  for flag in ('corpus', 'views', 'checkpoint'):
    assert f'--{flag}=' in err
  assert 'the same file' in err and not (tmp_path / 'fig.json').exists()


def test_synthetic_refuses_a_file_and_a_folder_of_another_run(tmp_path):
  (tmp_path / 'afile').write_text('x')
  assert '--out=' in _refused(_run('-m', 'difcon_jax.data.synthetic', f'--out={tmp_path / "afile"}', '--count=1',
                                   '--workers=1'))
  held = tmp_path / 'cifs'
  held.mkdir()
  (held / 'sg225_000000.cif.gz').write_bytes(b'another seed')
  assert 'sg225_000000.cif.gz' in _refused(_run('-m', 'difcon_jax.data.synthetic', f'--out={held}', '--count=1',
                                                 '--workers=1'))
  assert (held / 'sg225_000000.cif.gz').read_bytes() == b'another seed'


# ------------------------------------------------------------------------- 13, 1, 2, 10: the sweep launcher

def _sweep_file(tmp_path, name, runs):
  path = tmp_path / name
  path.write_text(f'def get_sweep():\n  return {runs!r}\n')
  return path


def test_sweep_runs_that_share_a_folder_are_refused_before_anything(tmp_path):
  quick = 'configs/quickstart.py'
  clash = _sweep_file(tmp_path, 'clash.py', [{'name': 'a b', 'config': quick}, {'name': 'a_b', 'config': quick}])
  with pytest.raises(sweeps.SweepError, match="'a b' and 'a_b'"):
    sweeps.load(str(clash))
  lines = sweeps.clashes(['Run', 'run', 'x.log', 'x', 'results.md', 'fine'])
  assert len(lines) == 3 and "'Run' and 'run'" in lines[0] and "'x.log' and 'x'" in lines[1]
  assert "'results.md'" in lines[2]
  with pytest.raises(sweeps.SweepError, match='no runs'):
    sweeps.load(str(_sweep_file(tmp_path, 'empty.py', [])))


def test_sweep_launcher_checks_before_running(tmp_path):
  quick = 'configs/quickstart.py'
  clash = _sweep_file(tmp_path, 'clash.py', [{'name': 'a b', 'config': quick}, {'name': 'a_b', 'config': quick}])
  root = tmp_path / 'root'
  err = _refused(_run('launch/sweep.py', f'--sweep={clash}', f'--root={root}'))
  assert "'a b' and 'a_b'" in err and not root.exists()
  ok = _sweep_file(tmp_path, 'ok.py', [{'name': 'a', 'config': quick}, {'name': 'b', 'config': quick}])
  err = _refused(_run('launch/sweep.py', f'--sweep={ok}', f'--root={root}', '--only=zzz', '--parallel=0',
                      f'--results_csv={root / "results.csv"}', f'--results_md={ok}', '--set=nokey'))
  for flag in ('only', 'parallel', 'results_csv', 'results_md', 'set'):
    assert f'--{flag}=' in err
  assert not root.exists() and ok.read_text().startswith('def get_sweep')
  err = _refused(_run('launch/sweep.py', f'--sweep={tmp_path / "missing.py"}', f'--root={root}'))
  assert '--sweep=' in err
  dry = _run('launch/sweep.py', f'--sweep={ok}', f'--root={root}', '--dry_run')
  assert dry.returncode == 0 and 'difcon_jax.train' in dry.stdout and not root.exists()


# --------------------------------------------------------------------------------- 3, 9, 12: training configs

def _config():
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import train_helpers  # pylint: disable=g-import-not-at-top
  return train_helpers.tiny_config('/nowhere')


def _errors(**fields):
  c = _config()
  with c.unlocked():
    for dotted, value in fields.items():
      node = c
      *parents, last = dotted.split('__')
      for p in parents:
        node = node[p]
      node[last] = value
  return config_checks.config_errors(c), c


def test_views_batches_and_devices_are_config_errors():
  errors, _ = _errors(views=1)
  assert errors and errors[0].startswith('config.views=1') and 'ssl_weight' in errors[0]
  errors, _ = _errors(per_device_batch_size=-2, prefetch=0)
  assert [e.split('=')[0] for e in errors] == ['config.per_device_batch_size', 'config.prefetch']
  _, c = _errors(batch_size=9, eval_batch_size=6)
  with pytest.raises(config_checks.ConfigError) as e:
    config_checks.check_config(c, device_count=4)
  assert [l.split('=')[0] for l in str(e.value).splitlines()] == ['config.batch_size', 'config.eval_batch_size']
  _, c = _errors(batch_size=8, eval_batch_size=8)
  config_checks.check_config(c, device_count=4)


def test_a_measured_set_that_is_not_there_or_unreadable(tmp_path):
  bad = tmp_path / 'bad.npz'
  bad.write_bytes(b'garbage')
  for data, expected in ((tmp_path / 'none.npz', 'no such file'), (bad, 'cannot be read'),
                         (tmp_path, 'labels')):
    _, c = _errors()
    c.evals.experimental.data = str(data)
    with pytest.raises(config_checks.ConfigError, match=expected) as e:
      config_checks.check_config(c, device_count=1)
    assert str(e.value).startswith('config.evals.experimental.')


def test_network_fields_are_named_themselves_not_the_grid():
  for fields, named in (({'model__pooling': 'attention', 'model__attention_heads': 3}, 'config.model.attention_heads'),
                        ({'model__norm': 'nope'}, 'config.model.norm'),
                        ({'model__heads_input': 'x'}, 'config.model.heads_input'),
                        ({'model__projector_dims': (0,)}, 'config.model.projector_dims'),
                        ({'model__norm': 'group', 'model__width': 12}, 'config.model.width')):
    errors, _ = _errors(**fields)
    assert errors and errors[0].startswith(named + '='), (fields, errors)
    assert not any(e.startswith('config.num_bins') for e in errors)


def test_a_resume_with_fewer_steps_than_the_checkpoint_is_refused(tmp_path):
  import jax.numpy as jnp
  import orbax.checkpoint as ocp
  from difcon_jax import train
  config = _config()
  config.steps = 4
  work = tmp_path / 'work'
  work.mkdir()
  (work / 'config.json').write_text(json.dumps(resume_checks.recorded_config(config)))
  model, tx = train.create_model(config), train.create_optimizer(config)
  state = train.init_state(config, model, tx, jnp.zeros((1, config.num_bins)))
  latest, _ = workdir_lib.checkpoint_managers(str(work), 2, config.best_metric)
  latest.save(4, args=ocp.args.StandardSave(state.replace(step=jnp.asarray(4, jnp.int32))))
  latest.wait_until_finished()
  resume_checks.check_checkpoint_matches(state, str(latest.directory), 4, str(work), config)  # same steps: fine
  config.steps = 2
  with pytest.raises(config_checks.ConfigError, match=r'config.steps=2: .* step 4'):
    resume_checks.check_checkpoint_matches(state, str(latest.directory), 4, str(work), config)


# ------------------------------------------------------------------------------ 5: names that are not UTF-8

def test_a_file_name_that_is_not_utf8_keeps_every_row(tmp_path):
  good = tmp_path / 'good.xy'
  good.write_text(_pattern_lines())
  bad = os.path.join(os.fsencode(tmp_path), b'bad\xff.xy')
  with open(bad, 'w') as f:
    f.write(_pattern_lines())
  from difcon_jax.crystallography import pattern_grid as grid_lib
  names = [str(good), os.fsdecode(bad)]
  records = [measured.load(n, grid_lib.config(2000), None) for n in names]
  assert all(r.ok for r in records)
  rows = [{'file': r.name, 'status': 'ok', 'warning': '; '.join(r.warnings)} for r in records]
  outputs.write_rows(tmp_path / 'p.csv', rows)
  text = (tmp_path / 'p.csv').read_text(encoding='utf-8')
  assert 'good.xy' in text and 'bad\\xff.xy' in text


# ------------------------------------------------------------------------ 7, 8: measured data read rightly

def _read(tmp_path, name, text):
  path = tmp_path / name
  path.write_text(text)
  return patterns.read_pattern(str(path))


def test_several_blocks_in_a_text_file_read_the_first_and_say_so(tmp_path):
  two = '# scan 1\n' + _pattern_lines() + '# scan 2\n' + _pattern_lines(scale=2)
  p = _read(tmp_path, 'blocks.xy', two)
  assert len(p.two_theta) == 400 and any('2 blocks' in w for w in p.warnings)
  p = _read(tmp_path, 'restart.xy', _pattern_lines() + _pattern_lines(scale=2))  # no header between
  assert len(p.two_theta) == 400 and any('starts again' in w for w in p.warnings)
  p = _read(tmp_path, 'footer.xy', _pattern_lines() + 'END\n')  # a footer is no second block
  assert len(p.two_theta) == 400 and not p.warnings


def test_another_axis_than_two_theta_is_refused(tmp_path):
  for name, header in (('d.xy', '# d-spacing (A)  Intensity\n'), ('q.xy', 'Q (1/A) I\n'),
                       ('tof.xy', '# TOF counts\n')):
    with pytest.raises(patterns.PatternError, match='not 2θ'):
      _read(tmp_path, name, header + _pattern_lines())
  assert not _read(tmp_path, 'tth.xy', '# 2theta d-spacing I\n' + _pattern_lines()).warnings


_XRDML = ('<xrdMeasurements><xrdMeasurement><usedWavelength><kAlpha1 unit="Angstrom">1.5406</kAlpha1>'
          '</usedWavelength>{scans}</xrdMeasurement></xrdMeasurements>')
_SCAN = ('<scan scanAxis="{axis}"><dataPoints><positions axis="2Theta" unit="deg"><startPosition>10'
         '</startPosition><endPosition>80</endPosition></positions><intensities unit="counts">{counts}</intensities>'
         '</dataPoints></scan>')


def test_xrdml_with_several_scans_or_another_axis(tmp_path):
  y = 50 + 1000 * np.exp(-((np.linspace(10, 80, 400) - 30) / 0.2) ** 2)
  counts = ' '.join(f'{v:.0f}' for v in y)
  scan = _SCAN.format(axis='Gonio', counts=counts)
  p = _read(tmp_path, 'two.xrdml', _XRDML.format(scans=scan + _SCAN.format(axis='Gonio', counts=counts + ' 5')))
  assert len(p.two_theta) == 400 and any('2 scans' in w for w in p.warnings)
  with pytest.raises(patterns.PatternError, match='Omega'):
    _read(tmp_path, 'rocking.xrdml', _XRDML.format(scans=_SCAN.format(axis='Omega', counts=counts)))


def test_a_flag_against_the_files_wavelength_is_said_naming_both(tmp_path):
  from difcon_jax.crystallography import pattern_grid as grid_lib
  path = tmp_path / 'mo.xy'
  path.write_text('# Wavelength: 0.7107\n' + _pattern_lines(tt=np.linspace(5, 40, 400)))
  m = measured.load(str(path), grid_lib.config(2000), 1.5418)
  assert m.ok and m.file_wavelength == pytest.approx(0.7107) and m.wavelength == pytest.approx(1.5418)
  assert '0.7107' in m.wavelength_conflict and '1.5418' in m.wavelength_conflict
  assert m.wavelength_conflict in m.warnings
  assert measured.load(str(path), grid_lib.config(2000), 0.7093).wavelength_conflict == ''  # Kα1 of the same anode
  assert measured.load(str(path), grid_lib.config(2000), None).wavelength_conflict == ''


def test_fortran_exponents_and_quoted_spreadsheet_exports(tmp_path):
  p = _read(tmp_path, 'fortran.dat', _pattern_lines('{:.6E} {:.6E}').replace('E', 'D'))
  assert len(p.two_theta) == 400 and p.two_theta.max() == pytest.approx(80)
  quoted = 'Angle;Intensity\n' + _pattern_lines('"{:.3f}";"{:.1f}"').replace('.', ',')
  p = _read(tmp_path, 'sheet.csv', quoted)
  assert len(p.two_theta) == 400 and p.two_theta.max() == pytest.approx(80)


# ---------------------------------------------------------------------------- 10: nothing passed over unsaid

def test_the_input_finder_says_what_it_passed_over(tmp_path):
  folder = tmp_path / 'in'
  folder.mkdir()
  (folder / 'a.xy').write_text('1 2\n')
  (folder / 'noext').write_text('1 2\n')
  (folder / 'notes.docx').write_bytes(b'x')
  (folder / '.DS_Store').write_bytes(b'x')
  (tmp_path / 'empty').mkdir()
  found = patterns.find_inputs([str(folder), str(tmp_path / 'empty'), str(tmp_path / 'z*.xy')])
  assert found.paths == [str(folder / 'a.xy')]
  said = '\n'.join(found.skipped)
  assert 'noext: no suffix' in said and 'notes.docx' in said and '.DS_Store' not in said
  assert 'empty: a folder with no pattern file' in said and 'z*.xy: no file matches' in said


# --------------------------------------------------------------------------------------- 11: bounded queues

def test_results_waiting_for_a_slow_item_are_bounded():
  taken = []

  def items():
    for i in range(60):
      taken.append(i)
      yield ('sleep', 3.0) if i == 0 else ('value', i)

  results = workers_lib.imap(_pool_work(), items(), workers=2, memory_limit=None)
  first = next(results)
  assert first == 30.0  # work(('sleep', s)) returns s * 10 once it has slept
  assert len(taken) <= workers_lib.AHEAD_PER_WORKER * 2 + 2, len(taken)
  assert list(results) == [i * 10 for i in range(1, 60)]


def _pool_work():
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import pool_helpers  # pylint: disable=g-import-not-at-top
  return pool_helpers.work


def test_a_prefetch_depth_of_zero_is_refused():
  from difcon_jax.data import input_pipeline
  batches = object.__new__(input_pipeline.PeakBatches)
  with pytest.raises(ValueError, match='at least 1'):
    next(input_pipeline.PeakBatches.prefetch(batches, 0, depth=0))


# ------------------------------------------------------------------------------------------------ help

def test_help_lists_the_flags_helpers_define():
  run = _run('-m', 'difcon_jax.predict', '--help')
  assert run.returncode == 0
  for flag in ('--input', '--anode', '--wavelength', '--checkpoint'):
    assert f'  {flag}' in run.stdout + run.stderr, flag
  sweep = _run('launch/sweep.py', '--help')
  assert sweep.returncode == 0 and '--sweep' in sweep.stdout + sweep.stderr
