"""PSNR, SSIM and colour shift of a checkpoint on a dataset's test split or a folder of pairs.

  python -m shopstyle_jax.evaluate --workdir=runs/ [--step=N] [--grid=out.png] \
      [--num_examples=N] [--config.data.KEY=VALUE ...]

The config is the workdir's config.json with the `--config.*` overrides
applied (e.g. `--config.data.folder=pairs/` or `--config.data.name=...`), and
the data comes through the training input pipeline, test split, resized to
`config.image_size`: the numbers are those training logs as eval/*, over the
whole split by default. Prints a table (the model, the identity baseline: the
photo itself, and a blank white page) and the median CIEDE2000 colour
difference between photo and output on product pixels, plain and with
`preserve_color`, with and without CIEDE2000's lightness term
(`evaluation.COLOR_METRICS`), and writes it as JSON; `--grid`
writes photo | target | output rows as one PNG.

A multi-style model is scored in each of its styles (or those `--style` names,
comma-separated) against that style's targets: one JSON per style
(step_<N>_<dataset>_<style>.json), one table each and a per-style summary
table; `--grid` then writes one PNG per style (<name>_<style>.png).
"""

import json
import os
import re
import sys
import time
from typing import Any, Optional, Sequence

import jax
import ml_collections
import numpy as np
from absl import logging

from shopstyle_jax import evaluation
from shopstyle_jax import inference
from shopstyle_jax import parallel
from shopstyle_jax import style_mix
from shopstyle_jax import workdir as workdir_lib
from shopstyle_jax.data import pipeline

METRICS = evaluation.METRICS
_ALL = 2**31 - 1


def evaluate_checkpoint(
  config: ml_collections.ConfigDict,
  workdir: str,
  step: Optional[int] = None,
  *,
  num_examples: Optional[int] = None,
  grid_rows: int = 0,
  precision: Optional[str] = None,
  style: Optional[str] = None,
) -> tuple[dict[str, Any], Optional[np.ndarray]]:
  """Scores a checkpoint on `config`'s test data.

  Args:
    config: the run's config (data and eval settings may differ from training).
    workdir: the training workdir holding the checkpoint.
    step: the checkpoint; the latest by default.
    num_examples: the first this many test examples; all by default.
    grid_rows: rows of the photo | target | output grid; 0 for none.
    precision: activations dtype; by default the run's `config.precision`.
    style: a multi-style model's style to score (against that style's targets);
      default `config.data.style`.
  Returns:
    (results: mean of each of METRICS plus facts about the run, grid or None).
  """
  precision = precision or config.get('precision') or 'float32'
  stylizer = inference.load_stylizer(workdir, step, precision=precision)
  style = style or config.data.style
  weights = stylizer.style_weights(style, 1)  # A clear error for an unknown style.
  if config.image_size % stylizer.factor:
    raise ValueError(
      f'config.image_size={config.image_size} must be a multiple of '
      f"{stylizer.factor}, the generator's factor."
    )
  config = ml_collections.ConfigDict(config.to_dict())
  devices = jax.local_devices()
  config.eval.num_examples = num_examples or _ALL
  # Whole batches per device; the pipeline marks the padding rows invalid.
  config.eval.batch_size = -(-config.eval.batch_size // len(devices)) * len(devices)

  start = time.time()
  pipeline.prepare(config, styles=(style,))
  measured = evaluation.evaluate(
    stylizer.generator,
    stylizer.variables,
    pipeline.create_eval_batches(config, 0, 1, style=style),
    parallel.create_mesh(devices),
    grid_rows=grid_rows,
    color=True,
    style=None if weights is None else weights[0],
  )
  if not measured.num_examples:
    raise ValueError(f'The test split of {_dataset(config)} is empty.')
  results = dict(measured.scores)
  results.update(
    num_examples=measured.num_examples,
    step=stylizer.step,
    workdir=os.path.abspath(workdir),
    dataset=_dataset(config),
    style=style,
    split='test',
    image_size=config.image_size,
    precision=precision,
    seconds=round(time.time() - start, 2),
  )
  return results, measured.grid


def _dataset(config: ml_collections.ConfigDict) -> str:
  return config.data.get('folder') or config.data.name


def format_table(results: dict[str, Any]) -> str:
  """The results as a small text table."""
  lines = [
    f'Step {results["step"]} of {results["workdir"]} on {results["dataset"]} '
    f'({results["style"]}, {results["split"]} split): {results["num_examples"]} examples '
    f'at {results["image_size"]}x{results["image_size"]}',
    f'  {"":<18}{"PSNR (dB)":>10}{"SSIM":>9}',
  ]
  for label, prefix in (('model', ''), ('identity (photo)', 'identity_'), ('blank page', 'blank_')):
    lines.append(f'  {label:<18}{results[prefix + "psnr"]:>10.2f}{results[prefix + "ssim"]:>9.4f}')
  if 'ciede2000' in results:
    lines.append(
      f'  Colour shift on product pixels (median CIEDE2000, photo vs output): '
      f'{results["ciede2000"]:.2f}; with --preserve_color '
      f'{results["ciede2000_preserve_color"]:.2f}'
    )
    lines.append(
      f'  without the lightness term (chroma and hue): {results["ciede2000_chroma"]:.2f}; '
      f'with --preserve_color {results["ciede2000_chroma_preserve_color"]:.2f}'
    )
  return '\n'.join(lines)


def format_style_table(per_style: Sequence[dict[str, Any]]) -> str:
  """A multi-style model's per-style results as one table, a row per style."""
  first = per_style[0]
  lines = [
    f'Step {first["step"]} of {first["workdir"]} on {first["dataset"]} ({first["split"]} '
    f'split), per style: {first["num_examples"]} examples at '
    f'{first["image_size"]}x{first["image_size"]}',
    f'  {"style":<12}{"PSNR (dB)":>10}{"SSIM":>9}{"photo PSNR":>12}{"photo SSIM":>12}',
  ]
  for r in per_style:
    lines.append(
      f'  {r["style"]:<12}{r["psnr"]:>10.2f}{r["ssim"]:>9.4f}'
      f'{r["identity_psnr"]:>12.2f}{r["identity_ssim"]:>12.4f}'
    )
  return '\n'.join(lines)


def default_output(results: dict[str, Any]) -> str:
  """<workdir>/evaluation/step_<N>_<dataset>_<style>.json"""
  name = re.sub(
    r'[^A-Za-z0-9]+', '_', f'{os.path.basename(results["dataset"].rstrip("/"))}_{results["style"]}'
  ).strip('_')
  return os.path.join(results['workdir'], 'evaluation', f'step_{results["step"]}_{name}.json')


def define_flags(argv: Sequence[str], flag_values: Optional[Any] = None) -> None:
  """The command line's flags, on `flag_values` (default: absl's FLAGS; tests use fresh
  ones). `--config` is the workdir's config.json, read from the `--workdir` in `argv`
  (the command line to be parsed), so that any of its fields can be overridden."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  flag_values = flags.FLAGS if flag_values is None else flag_values
  fv = {'flag_values': flag_values}
  pre = flags.FlagValues()
  flags.DEFINE_string('workdir', None, '', flag_values=pre)
  try:
    pre(list(argv), known_only=True)
  except flags.Error:
    pass
  template = ml_collections.ConfigDict()
  if pre.workdir and workdir_lib.is_workdir(pre.workdir):
    template = workdir_lib.load_config(pre.workdir)
  flags.DEFINE_string('workdir', None, 'Training workdir (config.json + checkpoints/).', **fv)
  flags.DEFINE_integer('step', None, 'Checkpoint step; the latest by default.', **fv)
  config_flags.DEFINE_config_dict(
    'config',
    template,
    "The workdir's config.json; override fields with "
    '--config.KEY=VALUE (e.g. --config.data.folder=pairs/).',
    sys_argv=list(argv),
    **fv,
  )
  flags.DEFINE_integer(
    'num_examples', None, 'Score only the first N test examples.', lower_bound=1, **fv
  )
  flags.DEFINE_string(
    'output',
    None,
    'JSON file to write; default <workdir>/evaluation/step_<N>_<dataset>_<style>.json.',
    **fv,
  )
  flags.DEFINE_string('grid', None, 'Also write photo | target | output rows to this PNG.', **fv)
  flags.DEFINE_list(
    'style',
    None,
    "A multi-style model's styles to score (comma-separated); default all of them.",
    **fv,
  )
  flags.DEFINE_integer('grid_rows', 8, 'Rows of --grid.', lower_bound=1, **fv)
  flags.DEFINE_enum(
    'precision',
    None,
    ['float32', 'bfloat16'],
    "Activations dtype; default the run's config.precision.",
    **fv,
  )
  flags.mark_flags_as_required(['workdir'], flag_values=flag_values)


def run(f: Any) -> int:
  """Evaluates what the parsed flags `f` (see define_flags) ask for; returns the exit
  status: 2 with one `Error: ...` line for what the user can mend (no workdir, no
  checkpoint, bad data), as the other commands."""
  try:
    return _run(f)
  except (ValueError, TypeError, OSError) as e:
    print(f'Error: {e}', file=sys.stderr)
    return 2


def _run(f: Any) -> int:
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  from shopstyle_jax import runtime  # pylint: disable=g-import-not-at-top

  runtime.quiet_library_logs()
  runtime.enable_compilation_cache()
  workdir_lib.read_config(f.workdir)  # A clear error for a folder that is no workdir.
  overrides = config_flags.get_override_values(f['config'])
  model_keys = sorted(k for k in overrides if k.startswith('model.'))
  if model_keys:
    print(
      f'Error: {", ".join(model_keys)}: the model comes from the checkpoint and cannot '
      'be overridden.',
      file=sys.stderr,
    )
    return 2
  if overrides:
    logging.info('Config overrides: %s', overrides)
  styles = style_mix.config_styles(f.config)
  chosen = list(f.style or (styles if len(styles) > 1 else [None]))
  unknown = [s for s in chosen if s is not None and s not in styles]
  if unknown:
    print(
      f'Error: --style={",".join(unknown)}: not a style of this model; it has {", ".join(styles)}.',
      file=sys.stderr,
    )
    return 2
  per_style = []
  for style in chosen:
    grid_path = f.grid
    if f.grid and len(chosen) > 1:
      root, ext = os.path.splitext(f.grid)
      grid_path = f'{root}_{style}{ext or ".png"}'
    results, grid = evaluate_checkpoint(
      f.config,
      f.workdir,
      f.step,
      num_examples=f.num_examples,
      grid_rows=f.grid_rows if f.grid else 0,
      precision=f.precision,
      style=style,
    )
    results['overrides'] = {k: v for k, v in overrides.items()}
    print(format_table(results))
    output = f.output or default_output(results)
    if f.output and len(chosen) > 1:
      root, ext = os.path.splitext(f.output)
      output = f'{root}_{style}{ext or ".json"}'
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, 'w') as fp:
      json.dump(results, fp, indent=2, sort_keys=True, default=str)
    print(f'Wrote {output}')
    if grid_path:
      from PIL import Image  # pylint: disable=g-import-not-at-top

      os.makedirs(os.path.dirname(os.path.abspath(grid_path)), exist_ok=True)
      Image.fromarray(grid).save(grid_path)
      print(
        f'Wrote {grid_path} ({min(f.grid_rows, results["num_examples"])} rows: photo | '
        'target | output)'
      )
    per_style.append(results)
  if len(per_style) > 1:
    print(format_style_table(per_style))
  return 0


if __name__ == '__main__':
  from shopstyle_jax import cli  # pylint: disable=g-import-not-at-top

  define_flags(sys.argv)
  cli.run_command(run)
