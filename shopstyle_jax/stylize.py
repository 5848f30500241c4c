"""The batch command line for whole catalogues (the library is `batch` and `inference`):

  python -m shopstyle_jax.stylize --workdir=runs/ --input=photos/ --output=sketches/

`--input` is an image file, a folder (searched recursively) or a text file
listing paths, one a line (relative ones from the list's folder). Each output
keeps its input's path relative to the input folder (for a list: to the
deepest folder holding all its entries) and its stem, with the extension of
`--format`. Existing outputs are skipped (`--overwrite` redoes them), inputs
are never written, and unreadable files are reported and counted as failed.
Mistakes in the flags, the workdir, the input or the output folder are one
`Error: ...` line and exit status 2, found before the model loads.
"""

import os
import sys
from typing import Any

from absl import flags
from absl import logging

from shopstyle_jax import batch
from shopstyle_jax import cli
from shopstyle_jax import images as image_lib
from shopstyle_jax import inference
from shopstyle_jax import progress as progress_lib
from shopstyle_jax import runtime
from shopstyle_jax import style_mix
from shopstyle_jax.options import BACKGROUNDS
from shopstyle_jax.options import TILE_THRESHOLD
from shopstyle_jax.options import StylizeOptions

# Names that lived here before the library moved to `inference` (README's Layout
# named them), still importable from this module.
_MOVED = ('stylize_fn', 'load_stylizer')


def __getattr__(name: str) -> Any:
  if name in _MOVED:
    return getattr(inference, name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """The command line's flags, on `flag_values` (tests use fresh ones)."""
  fv = {'flag_values': flag_values}
  flags.DEFINE_string('workdir', None, 'Training workdir (config.json + checkpoints/).', **fv)
  flags.DEFINE_integer('step', None, 'Checkpoint step; the latest by default.', **fv)
  flags.DEFINE_string(
    'input', None, 'An image file, a folder (recursive) or a text file of paths.', **fv
  )
  flags.DEFINE_string('output', None, 'Folder for the stylized images (created).', **fv)
  flags.DEFINE_enum('format', 'png', sorted(image_lib.WRITE_FORMATS), 'Output format.', **fv)
  flags.DEFINE_integer('quality', 95, 'JPEG/WebP quality.', lower_bound=1, upper_bound=100, **fv)
  flags.DEFINE_integer(
    'png_compression',
    1,
    'PNG zlib level: 1 is fast, 9 smallest.',
    lower_bound=0,
    upper_bound=9,
    **fv,
  )
  flags.DEFINE_bool('overwrite', False, 'Redo outputs that already exist.', **fv)
  # The stylize options are checked by StylizeOptions, the one definition.
  flags.DEFINE_integer(
    'max_side',
    None,
    'Stylize photos whose longer side exceeds this at '
    'that size, then resize the result back to the original size.',
    **fv,
  )
  flags.DEFINE_float('brightness', 0.0, 'Added to the stylized image in [-1, 1].', **fv)
  flags.DEFINE_float('contrast', 1.0, 'Factor around mid-grey, >= 0.', **fv)
  flags.DEFINE_enum(
    'background',
    'style',
    list(BACKGROUNDS),
    "style: stylize the whole frame; keep: the photo's own background; white; "
    'transparent: RGBA out (png/webp/tiff), the product opaque.',
    **fv,
  )
  flags.DEFINE_string(
    'mask_dir',
    None,
    "The shop's own product masks (8-bit, 255 = product), paired with the photos "
    'by relative path and stem; default the alpha, else a backdrop segmentation.',
    **fv,
  )
  flags.DEFINE_bool(
    'preserve_color', False, "Keep the photo's colours, take the style's lightness.", **fv
  )
  flags.DEFINE_string(
    'style',
    None,
    "A multi-style model's style (e.g. watercolor) or mix (oil:0.5,watercolor:0.5, "
    'weights summing to 1); default its default style.',
    **fv,
  )
  flags.DEFINE_float(
    'strength', 1.0, 'How much of the style, in [0, 1]: 1 the stylized output, 0 the photo.', **fv
  )
  flags.DEFINE_integer(
    'tile',
    StylizeOptions.tile,
    'Tile side in pixels for photos above --tile_threshold (tiles overlap and are '
    "blended; every tile normalised with the whole photo's statistics).",
    **fv,
  )
  flags.DEFINE_integer(
    'tile_threshold',
    TILE_THRESHOLD,
    'Photos (after --max_side) of more pixels than this are stylized in tiles, in '
    'bounded memory; a fixed number, so every machine gives the same pixels. 0: never.',
    **fv,
  )
  flags.DEFINE_bool(
    'no_label',
    False,
    'Leave out the AI label (XMP: IPTC digital source type trainedAlgorithmicMedia, '
    "the model's style, step and weights' hash) that every output carries by default.",
    **fv,
  )
  flags.DEFINE_enum('precision', 'float32', ['float32', 'bfloat16'], 'Activations dtype.', **fv)
  flags.DEFINE_integer(
    'batch_size',
    None,
    'Photos per network call over all local devices '
    '(rounded up to a multiple of their number); default 1 per device '
    'on CPU, 8 per device on GPU/TPU.',
    lower_bound=1,
    **fv,
  )
  flags.DEFINE_integer(
    'workers',
    None,
    'Decoding and encoding threads each; default the CPU count, at most 16.',
    lower_bound=1,
    **fv,
  )
  flags.DEFINE_bool('strict', False, 'Exit with status 1 when any file failed.', **fv)
  flags.mark_flags_as_required(['workdir', 'input', 'output'], flag_values=flag_values)


def run(f: flags.FlagValues) -> int:
  """Stylizes what the parsed flags `f` ask for; returns the exit status."""
  runtime.quiet_library_logs()
  runtime.enable_compilation_cache()
  output = os.path.abspath(f.output)
  try:
    options = StylizeOptions(
      brightness=f.brightness,
      contrast=f.contrast,
      max_side=f.max_side,
      background=f.background,
      preserve_color=f.preserve_color,
      strength=f.strength,
      tile=f.tile,
      tile_threshold=f.tile_threshold or None,
    )
    if options.background == 'transparent':
      image_lib.check_alpha_format(f.format)
    if f.mask_dir and not options.needs_mask:
      raise ValueError('--mask_dir needs --background=keep, white or transparent.')
    if f.mask_dir:
      batch.find_masks(f.mask_dir)
    step = inference.find_checkpoint(f.workdir, f.step)
    root, paths = batch.find_inputs(f.input, exclude=output)
    if os.path.isdir(f.input) and os.path.realpath(root) == os.path.realpath(output):
      raise ValueError(
        '--output is the input folder: outputs would mix with the photos and be '
        'read as inputs by the next run. Choose another folder (a subfolder '
        'is fine).'
      )
    if os.path.exists(output) and not os.path.isdir(output):
      raise ValueError(f'--output={output} exists and is not a folder.')
    jobs = batch.plan_jobs(root, paths, output, f.format)
    if not jobs:
      print(f'No images found in {f.input} (extensions: {", ".join(image_lib.IMAGE_EXTENSIONS)}).')
      return 1
    removed = batch.remove_stale_temp_files(jobs)
    if removed:
      logging.info('Removed %d temporary files an interrupted run left in %s.', removed, output)
    todo = jobs if f.overwrite else [j for j in jobs if not os.path.exists(j.dst)]
    if todo:
      batch.prepare_output(output)
      stylizer = inference.load_stylizer(f.workdir, step, precision=f.precision)
      stylizer.style_weights(style_mix.parse(f.style), 1)  # An unknown style: exit 2.
  except (ValueError, TypeError, OSError) as e:
    print(f'Error: {e}', file=sys.stderr)
    return 2
  summary, rate = batch.Summary(), None
  if todo:
    devices = batch.default_devices()
    batch_size = f.batch_size or batch.default_batch_size(devices)
    logging.info(
      'Checkpoint step %d; %d photos to stylize (%d already done) on %d %s '
      'device(s), batches of %d.',
      stylizer.step,
      len(todo),
      len(jobs) - len(todo),
      len(devices),
      devices[0].platform,
      batch_size,
    )
    progress = progress_lib.Progress(len(todo))
    summary = batch.stylize_files(
      stylizer,
      todo,
      options=options,
      batch_size=batch_size,
      devices=devices,
      quality=f.quality,
      png_compression=f.png_compression,
      workers=f.workers or min(16, os.cpu_count() or 1),
      progress=progress,
      report=progress.message,
      mask_dir=f.mask_dir,
      style=style_mix.parse(f.style),
      label=not f.no_label,
    )
    rate = progress.close()
  summary.skipped = len(jobs) - len(todo)
  print(f'Stylized {f.input} -> {output}: {summary}' + (f' {rate:.2f} images/s.' if rate else ''))
  for name, reason in summary.failed:
    print(f'  failed: {name}: {reason}')
  return 1 if summary.failed and f.strict else 0


if __name__ == '__main__':
  define_flags()
  cli.run_command(run)
