"""What benchmarks/cost_analysis.py and benchmarks/roofline.py share: the accelerator's flags, the config file they
analyse, and the two numbers they read from XLA's cost analysis."""

import importlib.util

from absl import flags

CONFIG = flags.DEFINE_string('config_file', 'configs/difcon_barlow.py', 'Config file.')
PEAK_TFLOPS = flags.DEFINE_float('peak_tflops', 989.0, 'Accelerator dense TFLOP/s at the network precision.')
BANDWIDTH_TBS = flags.DEFINE_float('bandwidth_tbs', 3.35, 'Accelerator memory bandwidth, TB/s.')
JSON = flags.DEFINE_bool('json', False, 'Print one JSON line at the end.')


def read_config():
  """get_config() of --config_file."""
  spec = importlib.util.spec_from_file_location('cfg', CONFIG.value)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def flops_and_bytes(cost) -> tuple[float, float]:
  """(floating-point operations, bytes accessed) of a cost_analysis() result (a dict, or a list of one)."""
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  return float(cost.get('flops', 0.0)), float(cost.get('bytes accessed', 0.0))
