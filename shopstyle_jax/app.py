"""The web app's command line (the library is `webapp`):

  python -m shopstyle_jax.app --workdir=runs/          # a trained workdir
  python -m shopstyle_jax.app --model=stylizer.bin     # or an exported file

Serves the page on http://127.0.0.1:7860 (`--host`, `--port`) with no outbound
traffic. Bound to anything but loopback it needs a password, `--auth=user:pass`
or `SHOPSTYLE_APP_AUTH=user:pass`, and says so at start. Mistakes in the flags,
the workdir or the model file are one `Error: ...` line and exit status 2,
found before the page starts.
"""

import logging
import os
import signal
import sys

from absl import flags

from shopstyle_jax import cli
from shopstyle_jax import runtime
from shopstyle_jax import webapp


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """The command line's flags, on `flag_values` (tests use fresh ones)."""
  fv = {'flag_values': flag_values}
  limits = webapp.Limits()
  flags.DEFINE_string('workdir', None, 'Training workdir (config.json + checkpoints/).', **fv)
  flags.DEFINE_integer('step', None, 'Checkpoint step; the latest by default.', **fv)
  flags.DEFINE_string(
    'model', None, 'An exported stylizer file (python -m shopstyle_jax.export).', **fv
  )
  flags.DEFINE_enum(
    'precision', 'float32', ['float32', 'bfloat16'], 'Activations dtype (--workdir).', **fv
  )
  flags.DEFINE_string(
    'host', '127.0.0.1', 'Address to serve on; 0.0.0.0 for every network (needs --auth).', **fv
  )
  flags.DEFINE_integer('port', 7860, 'Port to serve on.', lower_bound=1, upper_bound=65535, **fv)
  flags.DEFINE_string(
    'auth',
    None,
    f'user:password the page asks for (or ${webapp.AUTH_ENV}); required off loopback.',
    **fv,
  )
  flags.DEFINE_integer(
    'max_pixels', limits.max_pixels, 'Largest photo, width x height.', lower_bound=1, **fv
  )
  flags.DEFINE_integer(
    'max_photos', limits.max_photos, 'Photos per request (zips included).', lower_bound=1, **fv
  )
  flags.DEFINE_integer(
    'queue_size', limits.queue_size, 'Requests that may wait for the device.', lower_bound=1, **fv
  )


def load(f: flags.FlagValues):
  """(stylizer, the line the page shows about it) for the parsed flags; raises
  ValueError, TypeError or OSError for a wrong --workdir, --step or --model."""
  if bool(f.workdir) == bool(f.model):
    raise ValueError(
      'Give one of --workdir=runs/ (a trained workdir) or --model=stylizer.bin (an exported file).'
    )
  if f.model:
    from shopstyle_jax import exporting  # pylint: disable=g-import-not-at-top

    stylizer = exporting.load_exported(f.model)
    meta = stylizer.metadata
    return stylizer, _model_line(
      os.path.basename(f.model), stylizer, meta.get('style', '?'), meta.get('step', '?')
    )
  from shopstyle_jax import inference  # pylint: disable=g-import-not-at-top

  step = inference.find_checkpoint(f.workdir, f.step)
  stylizer = inference.load_stylizer(f.workdir, step, precision=f.precision)
  style = stylizer.config.data.style if stylizer.config is not None else '?'
  name = os.path.basename(os.path.normpath(f.workdir))
  return stylizer, _model_line(name, stylizer, style, stylizer.step)


def _model_line(name: str, stylizer, style: str, step) -> str:
  """The page's line about the model: its style, or a multi-style model's styles."""
  styles = webapp.page_styles(stylizer)
  if styles:
    style = f'styles {", ".join(styles)} (default {webapp.default_style(stylizer)})'
  else:
    style = f'style {style}'
  return f'Model: {name}, {style}, step {step}.'


def _interrupt(signum, frame):
  raise KeyboardInterrupt(f'signal {signum}')


def run(f: flags.FlagValues) -> int:
  """Serves what the parsed flags `f` ask for until interrupted; returns the exit status."""
  for key, value in webapp.OFFLINE_ENV.items():  # Before Gradio is imported.
    os.environ.setdefault(key, value)
  runtime.quiet_library_logs()
  runtime.enable_compilation_cache()
  try:
    auth = webapp.parse_auth(f.auth or os.environ.get(webapp.AUTH_ENV))
    webapp.check_host(f.host, auth)
    limits = webapp.Limits(
      max_pixels=f.max_pixels, max_photos=f.max_photos, queue_size=f.queue_size
    )
    stylizer, model = load(f)
  except (ValueError, TypeError, OSError) as e:
    print(f'Error: {e}', file=sys.stderr)
    return 2
  work = webapp.WorkFolders()
  # Gradio's copies of uploads and results go under the app's folder, removed at exit.
  os.environ.setdefault('GRADIO_TEMP_DIR', os.path.join(work.root, 'gradio'))
  logging.getLogger('httpx').setLevel(logging.WARNING)  # Gradio's own start-up requests.
  demo = webapp.build_app(stylizer, model=model, limits=limits, work=work)
  url_host = f'[{f.host}]' if ':' in f.host else f.host
  signal.signal(signal.SIGTERM, _interrupt)  # A service manager's stop cleans up as Ctrl-C.
  if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # Started in the background by a shell.
    signal.signal(signal.SIGINT, _interrupt)
  try:
    # The address is printed once the server answers, so a client that waits
    # for this line (a test, a service script) can connect at once.
    webapp.launch(demo, host=f.host, port=f.port, auth=auth, limits=limits, block=False)
    print(model)
    print(
      f'Serving on http://{url_host}:{f.port}/ '
      + (
        f'(password required: user {auth[0]!r}).' if auth else '(this machine only, no password).'
      ),
      flush=True,
    )
    demo.block_thread()
  except KeyboardInterrupt:
    pass
  finally:
    demo.close()
    work.close()
  return 0


if __name__ == '__main__':
  define_flags()
  cli.run_command(run)
