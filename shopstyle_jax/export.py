"""The export command line (the library is `exporting`):

  python -m shopstyle_jax.export --workdir=runs/ --output=stylizer.bin [--step=N]

Writes a trained generator as one file that `shopstyle_jax.load_exported`
loads with jax and numpy only, then (`--verify`, on by default) reloads it and
checks it gives `load_stylizer`'s pixels. A wrong `--workdir` or `--step`, or
an unwritable `--output`, is one `Error: ...` line and exit status 2, found
before the model loads.
"""

import os
import sys
from typing import Any

from absl import flags

from shopstyle_jax import cli
from shopstyle_jax import exporting
from shopstyle_jax import inference
from shopstyle_jax import runtime

# Names that lived here before the library moved to `exporting` (README's
# Layout named load_exported here), still importable from this module.
_MOVED = ('load_exported',)


def __getattr__(name: str) -> Any:
  if name in _MOVED:
    return getattr(exporting, name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """The command line's flags, on `flag_values` (tests use fresh ones)."""
  fv = {'flag_values': flag_values}
  flags.DEFINE_string('workdir', None, 'Training workdir (config.json + checkpoints/).', **fv)
  flags.DEFINE_integer('step', None, 'Checkpoint step; the latest by default.', **fv)
  flags.DEFINE_string('output', None, 'The file to write, e.g. stylizer.bin.', **fv)
  flags.DEFINE_enum('precision', 'float32', ['float32', 'bfloat16'], 'Activations dtype.', **fv)
  flags.DEFINE_list(
    'platforms',
    list(exporting.DEFAULT_PLATFORMS),
    'Platforms to lower for (cpu, cuda, rocm, tpu).',
    **fv,
  )
  flags.DEFINE_bool(
    'verify',
    True,
    'Reload the file and check that it reproduces '
    'load_stylizer on a random photo (on this machine).',
    **fv,
  )
  flags.mark_flags_as_required(['workdir', 'output'], flag_values=flag_values)


def run(f: flags.FlagValues) -> int:
  """Exports what the parsed flags `f` ask for; returns the exit status."""
  runtime.quiet_library_logs()
  output = os.path.abspath(f.output)
  try:
    step = inference.find_checkpoint(f.workdir, f.step)
    exporting.check_output(output)
    stylizer = inference.load_stylizer(f.workdir, step, precision=f.precision)
  except (ValueError, TypeError, OSError) as e:
    print(f'Error: {e}', file=sys.stderr)
    return 2
  exported, weights = exporting.export_stylizer(stylizer, f.platforms)
  # Tiled stylizing of exported multi-style files is not built yet (`ExportedStylizer`).
  tiling = exporting.export_tiling(stylizer, f.platforms) if len(stylizer.styles) <= 1 else None
  exporting.save_exported(
    output,
    exported,
    weights,
    exporting.stylizer_metadata(stylizer, f.workdir, f.precision),
    tiling,
  )
  size = os.path.getsize(output)
  print(
    f'Wrote {output} ({size / 2**20:.1f} MiB): step {stylizer.step}, images '
    f'{exported.in_avals[-1].shape} float32 in [-1, 1], platforms '
    f'{", ".join(exported.platforms)}.'
  )
  if f.verify:
    diff = exporting.verify(output, stylizer)
    print(
      "Verified: reloaded, it gives load_stylizer's pixels (max difference 0)."
      if diff == 0
      else f'WARNING: the reloaded file differs from load_stylizer by up '
      f'to {diff} levels on a random photo.'
    )
  return 0


if __name__ == '__main__':
  define_flags()
  cli.run_command(run)
