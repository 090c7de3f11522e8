r"""Export a trained model for inference: the weights of a training workdir without the optimiser state.

  python -m difcon_jax.export --workdir=runs/cpu --out=difcon_jax/pretrained/default --name=difcon-cpu-v1

writes OUT/config.json (the training config), OUT/variables.msgpack (params and BatchNorm statistics of the best
checkpoint, else the latest) and OUT/model.json (name, step, parameters, date). `predict` and `evaluate` take such
a folder as --checkpoint; the one in difcon_jax/pretrained/default is their default.
"""

from absl import app
from absl import flags

from difcon_jax import inference

FLAGS = flags.FLAGS


def define_flags():
  """Command-line flags; defined only when run as a program, so that importing this module defines none."""
  flags.DEFINE_string('workdir', None, 'Training workdir.', required=True)
  flags.DEFINE_string('out', None, 'Folder for the exported model.', required=True)
  flags.DEFINE_string('name', None, 'Name of the model (model.json, and what predict reports).', required=True)
  flags.DEFINE_enum('which', 'best', ['best', 'latest'], 'Checkpoint: the best by the config\'s best_metric, or the '
                    'latest.')


def main(argv):
  del argv
  info = inference.export(FLAGS.workdir, FLAGS.out, FLAGS.name, FLAGS.which)
  print(f"exported {info['name']} (step {info['step']}, {info['parameters']:,} parameters) to {FLAGS.out}")


if __name__ == '__main__':
  define_flags()
  app.run(main)
