r"""Export a trained model for inference: the weights of a training workdir without the optimiser state.

  python -m difcon_jax.export --workdir=runs/cpu_v2 --out=difcon_jax/pretrained/default --name=difcon-cpu-v2

writes OUT/config.json (the training config), OUT/variables.msgpack (params and BatchNorm statistics of the best
checkpoint, else the latest) and OUT/model.json (name, step, parameters, date). `predict` and `evaluate` take such
a folder as --checkpoint; the one in difcon_jax/pretrained/default is their default.

Bad input: --workdir must be a training workdir (config.json and checkpoints), else one line and nothing is
created; --out must not be the workdir (its config.json would be overwritten). A damaged config.json or checkpoint
is named in one line (a damaged latest checkpoint is passed over for the one before it, with a warning). The three
files are written atomically, model.json last.
"""

import sys

from absl import app
from absl import flags
from etils import epath

from difcon_jax import cli
from difcon_jax import inference
from difcon_jax import workdir as workdir_lib
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
  return not checks.report('export')


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
