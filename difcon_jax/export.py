r"""Export a trained model for inference: the weights of a training workdir without the optimiser state.

  python -m difcon_jax.export --workdir=runs/cpu_v2 --out=difcon_jax/pretrained/default --name=difcon-cpu-v2

writes OUT/config.json (the training config), OUT/variables.msgpack (params and BatchNorm statistics of the best
checkpoint, else the latest) and OUT/model.json (name, step, parameters, date). `predict` and `evaluate` take such
a folder as --checkpoint; the one in difcon_jax/pretrained/default is their default.

Bad input: --workdir must be a training workdir (config.json and checkpoints), else one line and nothing is
created; --out must not be the workdir (its config.json would be overwritten), another training workdir, a folder
with other files, or a model exported from another workdir (remove it first to replace it): only the same workdir's
earlier export is replaced. A damaged config.json or checkpoint
is named in one line (a damaged latest checkpoint is passed over for the one before it, with a warning). The three
files are written atomically, model.json last.
"""

import json
import sys

from absl import app
from absl import flags
from etils import epath

from difcon_jax.io import cli
from difcon_jax.inference import model as inference
from difcon_jax.io import workdir as workdir_lib
from difcon_jax.io import outputs

FLAGS = flags.FLAGS


def define_flags():
  """Command-line flags; defined only when run as a program, so that importing this module defines none."""
  flags.DEFINE_string('workdir', None, 'Training workdir.', required=True)
  flags.DEFINE_string('out', None, 'Folder for the exported model.', required=True)
  flags.DEFINE_string('name', None, 'Name of the model (model.json, and what predict reports).', required=True)
  flags.DEFINE_enum('which', 'best', ['best', 'latest'], 'Checkpoint: the best by the config\'s best_metric, or the '
                    'latest.')


def check_flags() -> bool:
  """Prints one line per bad flag; True when all are fine. Nothing is created before."""
  checks = cli.Checks()
  work = epath.Path(FLAGS.workdir)
  if checks.require(work.is_dir() and workdir_lib.is_training_workdir(FLAGS.workdir), 'workdir', FLAGS.workdir,
                    'a training workdir (a folder with config.json and checkpoints/)'):
    if checks.output_dir('out', FLAGS.out):
      files = {f'out {name}': str(epath.Path(FLAGS.out) / name)
               for name in (workdir_lib.CONFIG, *workdir_lib.EXPORTED_FILES)}
      for flag, path, why in outputs.clashes(files, protected=inference.model_files(FLAGS.workdir))[:1]:
        checks.require(False, flag, FLAGS.out, f'not the workdir: {why} ({path})')
      if not checks.errors:
        problem = _foreign_out(FLAGS.out, FLAGS.workdir)
        checks.require(problem is None, 'out', FLAGS.out, f'a new or empty folder, or a model exported from this '
                       f'workdir before ({problem})')
  return not checks.report('export')


def _foreign_out(out: str, workdir: str) -> str | None:
  """What in --out would be lost to another run (None when nothing): a training workdir, files that are not an
  exported model's, or a model exported from another workdir. Exporting the same workdir again replaces its
  files, as a newer checkpoint of the same run should."""
  folder = epath.Path(out)
  if not folder.exists():
    return None
  if workdir_lib.is_training_workdir(out):
    return 'it is another training workdir: its config.json would be overwritten'
  names = sorted(p.name for p in folder.iterdir() if not p.name.startswith('.'))
  foreign = [n for n in names if n not in (workdir_lib.CONFIG, *workdir_lib.EXPORTED_FILES)]
  if foreign:
    return f'it holds other files: {", ".join(foreign[:3])}{", ..." if len(foreign) > 3 else ""}'
  if workdir_lib.MODEL_INFO in names:
    try:
      source = json.loads(folder.joinpath(workdir_lib.MODEL_INFO).read_text()).get('workdir')
    except (OSError, ValueError, AttributeError):
      source = None
    if source is None or outputs.path(source) != outputs.path(workdir):
      return (f'it holds the model {_model_name(folder)} exported from {source or "an unknown workdir"}; remove it '
              'first to replace it')
  elif names:
    return f'it holds {", ".join(names)} of another model'
  return None


def _model_name(folder: epath.Path) -> str:
  try:
    return repr(json.loads(folder.joinpath(workdir_lib.MODEL_INFO).read_text()).get('name'))
  except (OSError, ValueError, AttributeError):
    return '(unnamed)'



def main(argv):
  del argv
  if not check_flags():
    return cli.USAGE_ERROR
  try:
    info = inference.export(FLAGS.workdir, FLAGS.out, FLAGS.name, FLAGS.which)
  except (FileNotFoundError, inference.ModelError, outputs.OutputError) as e:
    print(f'export: error: {e}', file=sys.stderr)
    return 1
  print(f"exported {info['name']} (step {info['step']}, {info['parameters']:,} parameters) to {FLAGS.out}")


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
