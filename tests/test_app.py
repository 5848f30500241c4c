"""The web app as its users meet it (`slow`): `python -m shopstyle_jax.app` started
as a real process on 127.0.0.1, driven by a real headless Chromium, and called
from Python (gradio_client) and with curl as README shows. Results must be the
stylizer's pixels under README's pixel rule; bad uploads get a message and the
next request still works; nothing leaves the machine (every socket the server
opens is audited, every request the page makes is logged); the server's
temporary files are gone when it stops."""

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from conftest import assert_pixel_rule
from conftest import wait_for
from conftest import xla_flags
from shopstyle_jax import exporting
from shopstyle_jax import load_stylizer
from shopstyle_jax import webapp
from shopstyle_jax.images import read_image

pytestmark = pytest.mark.slow

CHROMEDRIVER = '/usr/bin/chromedriver'
CHROMIUM = '/usr/bin/chromium'

# Runs the app with an audit hook that reports every connection or name lookup
# that is not this machine's (Python's audit events see every socket).
_AUDITED_APP = """
import runpy, sys
LOCAL = {None, '', '127.0.0.1', '::1', 'localhost', '0.0.0.0', b'127.0.0.1', b'localhost'}
def audit(event, args):
  if event == 'socket.connect' and isinstance(args[1], tuple) and args[1][0] not in LOCAL:
    print(f'OUTBOUND connect {args[1]!r}', file=sys.stderr, flush=True)
  elif event == 'socket.getaddrinfo' and args[0] not in LOCAL:
    print(f'OUTBOUND lookup {args[0]!r}', file=sys.stderr, flush=True)
sys.addaudithook(audit)
sys.argv = ['shopstyle_jax.app', *sys.argv[1:]]
runpy.run_module('shopstyle_jax.app', run_name='__main__', alter_sys=True)
"""


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _photo(path, size=(56, 40), seed=0, fmt='JPEG') -> str:
  """A small photo-like image (smooth shading and noise), written as `fmt`."""
  w, h = size
  rs = np.random.RandomState(seed)
  yy, xx = np.mgrid[0:h, 0:w]
  base = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 127 // (w + h)], -1)
  image = np.clip(base + rs.randint(-30, 30, (h, w, 3)), 0, 255).astype(np.uint8)
  Image.fromarray(image).save(path, format=fmt)
  return str(path)


@contextlib.contextmanager
def serving(tmp_path, *flags):
  """Runs the app (audited) until the block ends, then stops it with Ctrl-C and
  checks that it exited cleanly, opened no outbound socket and removed its
  temporary files. Yields (url, log path, its temporary folder)."""
  port = _free_port()
  tmp = tmp_path / 'server_tmp'
  tmp.mkdir()
  log_path = tmp_path / 'app.log'
  env = {
    **os.environ,
    'XLA_FLAGS': xla_flags(1),
    'PYTHONUNBUFFERED': '1',
    'TMPDIR': str(tmp),  # The app's folders (and Gradio's, inside them) go here.
  }
  env.pop('GRADIO_TEMP_DIR', None)
  with open(log_path, 'w') as log:
    proc = subprocess.Popen(
      [sys.executable, '-c', _AUDITED_APP, *flags, '--host=127.0.0.1', f'--port={port}'],
      cwd=ROOT,
      env=env,
      stdout=log,
      stderr=subprocess.STDOUT,
    )
  try:
    wait_for(log_path, rf'Serving on http://127\.0\.0\.1:{port}/', proc, timeout=600)
    yield f'http://127.0.0.1:{port}/', log_path, tmp
  finally:
    if proc.poll() is None:
      proc.send_signal(signal.SIGINT)
      try:
        proc.wait(timeout=60)
      except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
  text = open(log_path).read()
  assert proc.returncode == 0, text[-3000:]
  assert 'OUTBOUND' not in text, text[-3000:]
  assert 'Traceback' not in text, text[-3000:]
  assert not glob.glob(str(tmp / 'shopstyle_app_*')), os.listdir(tmp)


def _request_folders(tmp) -> list[str]:
  return glob.glob(str(tmp / 'shopstyle_app_*' / 'request_*'))


# --- From Python and curl, on an exported file ----------------------------------------


@pytest.fixture(scope='module')
def exported_model(tmp_path_factory, trained_workdir):
  path = str(tmp_path_factory.mktemp('app_export') / 'stylizer.bin')
  stylizer = load_stylizer(trained_workdir)
  exported, weights = exporting.export_stylizer(stylizer, ('cpu',))
  exporting.save_exported(
    path, exported, weights, exporting.stylizer_metadata(stylizer, trained_workdir, 'float32')
  )
  return path


def test_the_api_from_python_and_curl_as_readme_shows(tmp_path, exported_model):
  from gradio_client import Client  # pylint: disable=g-import-not-at-top
  from gradio_client import handle_file  # pylint: disable=g-import-not-at-top

  stylizer = exporting.load_exported(exported_model)
  shoe = _photo(tmp_path / 'shoe.jpg')
  bag = _photo(tmp_path / 'bag.png', (33, 47), seed=1, fmt='PNG')
  broken = tmp_path / 'broken.jpg'
  broken.write_bytes(open(shoe, 'rb').read()[:300])
  with serving(tmp_path, f'--model={exported_model}') as (url, log, tmp):
    assert 'Model: stylizer.bin, style sketch, step 4.' in open(log).read()
    client = Client(url, verbose=False)
    # README's call: the files, then options by name.
    files, report = client.predict(
      files=[handle_file(shoe), handle_file(bag), handle_file(str(broken))],
      brightness=0.1,
      api_name='/stylize',
    )
    assert [os.path.basename(f) for f in files] == ['shoe.png', 'bag.png']
    assert (
      report.startswith('**Stylized 2 photos**') and '`broken.jpg`: not a readable image' in report
    )
    for got, src in zip(files, [shoe, bag]):
      assert_pixel_rule(read_image(got), stylizer(read_image(src), brightness=0.1))
    # A style the model does not have: a message naming the one it has.
    files, report = client.predict(files=[handle_file(shoe)], style='oil', api_name='/stylize')
    assert files == [] and "Unknown style 'oil'; this model has the styles sketch" in report
    # Nothing usable: a message, no files, and the request's folder is gone.
    before = _request_folders(tmp)
    files, report = client.predict(files=[handle_file(str(broken))], api_name='/stylize')
    assert files == [] and report.startswith('**Nothing was stylized.**')
    assert _request_folders(tmp) == before

    if shutil.which('curl') is None:
      return

    # README's curl calls: upload, call, read the result's URL from the event stream.
    def curl(*args) -> str:
      return subprocess.run(
        ['curl', '-sS', '--fail', *args], capture_output=True, text=True, check=True, timeout=60
      ).stdout

    uploaded = json.loads(curl('-F', f'files=@{shoe}', f'{url}gradio_api/upload'))
    # Positional: the files, every option's default in StylizeOptions' order, the
    # format, the style ('' = the model's).
    defaults = [c.default for c in webapp.option_controls()]
    files_arg = [{'path': uploaded[0], 'meta': {'_type': 'gradio.FileData'}}]
    data = {'data': [files_arg, *defaults, 'png', '']}
    event = json.loads(
      curl(
        '-X',
        'POST',
        f'{url}gradio_api/call/stylize',
        '-H',
        'Content-Type: application/json',
        '-d',
        json.dumps(data),
      )
    )
    stream = curl(f'{url}gradio_api/call/stylize/{event["event_id"]}')
    assert 'event: complete' in stream, stream
    line = [x for x in stream.splitlines() if x.startswith('data: ')][-1]
    result, report = json.loads(line[len('data: ') :])
    assert result[0]['orig_name'] == 'shoe.png' and report.startswith('**Stylized 1 photo**')
    out = tmp_path / 'curl_shoe.png'
    curl('-o', str(out), result[0]['url'])
    assert_pixel_rule(read_image(str(out)), stylizer(read_image(shoe)))


def test_with_a_password_only_the_right_one_gets_in(tmp_path, exported_model):
  from gradio_client import Client  # pylint: disable=g-import-not-at-top
  from gradio_client import handle_file  # pylint: disable=g-import-not-at-top

  shoe = _photo(tmp_path / 'shoe.jpg')
  with serving(tmp_path, f'--model={exported_model}', '--auth=shop:s3cret') as (url, log, _):
    assert "(password required: user 'shop')" in open(log).read()
    for auth in (None, ('shop', 'wrong')):
      with pytest.raises(Exception):  # noqa: B017  # 401 at the config or the login.
        Client(url, auth=auth, verbose=False).predict(
          files=[handle_file(shoe)], api_name='/stylize'
        )
    client = Client(url, auth=('shop', 's3cret'), verbose=False)
    files, report = client.predict(files=[handle_file(shoe)], api_name='/stylize')
    assert [os.path.basename(f) for f in files] == ['shoe.png'], report
    stylizer = exporting.load_exported(exported_model)
    assert_pixel_rule(read_image(files[0]), stylizer(read_image(shoe)))


# --- In a real browser, on a trained workdir ----------------------------------------------


def _browser_missing() -> str:
  missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
  if missing:
    return (
      f'{" and ".join(missing)} not installed: apt-get install chromium chromium-driver '
      '(.ci/run does, as root)'
    )
  try:
    import selenium  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return 'selenium is not installed: pip install -r requirements.txt'
  return ''


def _chromium(download_dir: str):
  from selenium import webdriver  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.chrome.service import Service  # pylint: disable=g-import-not-at-top

  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for arg in (
    '--headless=new',
    '--no-sandbox',
    '--disable-dev-shm-usage',
    '--window-size=1280,1000',
  ):
    options.add_argument(arg)  # --no-sandbox: Chromium refuses to run as root without it.
  options.set_capability('goog:loggingPrefs', {'performance': 'ALL'})
  driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
  driver.execute_cdp_cmd(
    'Browser.setDownloadBehavior', {'behavior': 'allow', 'downloadPath': download_dir}
  )
  return driver


def _wait(condition, timeout=120, what='the page'):
  deadline = time.time() + timeout
  while time.time() < deadline:
    try:
      value = condition()
    except Exception:  # pylint: disable=broad-except  # Elements re-rendered mid-read.
      value = None
    if value:
      return value
    time.sleep(0.2)
  raise AssertionError(f'timed out waiting for {what}')


def _download(driver, selector: str, folder, name: str) -> str:
  """Clicks the download link `selector` and waits for `name` in `folder`."""
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top

  path = os.path.join(folder, name)
  if os.path.exists(path):
    os.remove(path)
  _wait(lambda: driver.find_element(By.CSS_SELECTOR, selector), what=selector).click()
  _wait(lambda: os.path.exists(path) and not os.path.exists(path + '.crdownload'), 60, name)
  time.sleep(0.2)
  return path


def _stylize_in_page(driver, path, expect: str) -> str:
  """Clears the upload box, uploads `path` (or a list of paths, at once), presses
  Stylize and returns the report once it contains `expect` (which the previous
  report must not)."""
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top

  for clear in driver.find_elements(By.CSS_SELECTOR, '#uploads button[aria-label="Clear"]'):
    clear.click()
  box = _wait(lambda: driver.find_element(By.CSS_SELECTOR, '#uploads input[type=file]'))
  paths = [path] if isinstance(path, str) else list(path)
  box.send_keys('\n'.join(paths))
  for path in paths:
    stem = os.path.splitext(os.path.basename(path))[0]  # The page shows the extension apart.
    _wait(lambda: stem in driver.find_element(By.ID, 'uploads').text, what=f'{path} uploaded')
  _wait(lambda: driver.find_element(By.ID, 'stylize')).click()
  return _wait(
    lambda: expect in (text := driver.find_element(By.ID, 'report').text) and text,
    180,
    f'{expect!r} in the report',
  )


def test_the_page_in_a_real_browser(tmp_path, trained_workdir):
  reason = _browser_missing()
  if reason:
    pytest.skip(reason)
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top

  stylizer = load_stylizer(trained_workdir)
  shoe = _photo(tmp_path / 'shoe.jpg')
  bag = _photo(tmp_path / 'bag.png', (45, 31), seed=2, fmt='PNG')
  broken = tmp_path / 'broken.jpg'
  broken.write_bytes(open(shoe, 'rb').read()[:300])
  downloads = tmp_path / 'downloads'
  downloads.mkdir()
  with serving(tmp_path, f'--workdir={trained_workdir}') as (url, _, tmp):
    driver = _chromium(str(downloads))
    try:
      driver.get(url)
      _wait(lambda: driver.find_element(By.CSS_SELECTOR, '#uploads input[type=file]'))

      # A photo: its result, downloaded one by one and in the zip, is the stylizer's.
      report = _stylize_in_page(driver, shoe, 'Stylized 1 photo')
      got = _download(driver, '#results a[download="shoe.png"]', downloads, 'shoe.png')
      want = stylizer(read_image(shoe))
      assert_pixel_rule(read_image(got), want)
      zipped = _download(driver, '#zip a[download="stylized.zip"]', downloads, 'stylized.zip')
      with zipfile.ZipFile(zipped) as zf:
        assert zf.namelist() == ['shoe.png']
        assert_pixel_rule(read_image(zf.read('shoe.png')), want)

      # A corrupt file: the message in the page, no results, its folder removed.
      before = _request_folders(tmp)
      report = _stylize_in_page(driver, str(broken), 'Nothing was stylized')
      assert 'broken.jpg' in report and 'not a readable image' in report, report
      assert _request_folders(tmp) == before

      # The next good upload works.
      _stylize_in_page(driver, bag, 'Stylized 1 photo')
      got = _download(driver, '#results a[download="bag.png"]', downloads, 'bag.png')
      assert_pixel_rule(read_image(got), stylizer(read_image(bag)))

      # As a new user would: three photos at once, one zip back with all three.
      cup = _photo(tmp_path / 'cup.webp', (40, 52), seed=3, fmt='WEBP')
      _stylize_in_page(driver, [shoe, bag, cup], 'Stylized 3 photos')
      zipped = _download(driver, '#zip a[download="stylized.zip"]', downloads, 'stylized.zip')
      with zipfile.ZipFile(zipped) as zf:
        assert sorted(zf.namelist()) == ['bag.png', 'cup.png', 'shoe.png']
        for src in (shoe, bag, cup):
          name = os.path.splitext(os.path.basename(src))[0] + '.png'
          assert_pixel_rule(read_image(zf.read(name)), stylizer(read_image(src)))

      # Every request the page made went to the app (fonts and scripts included).
      urls = set()
      for entry in driver.get_log('performance'):
        message = json.loads(entry['message'])['message']
        if message['method'] == 'Network.requestWillBeSent':
          urls.add(message['params']['request']['url'])
      assert any(u.endswith('.js') for u in urls), urls
      outside = sorted(u for u in urls if not u.startswith((url, 'data:', 'blob:')))
      assert not outside, outside
    finally:
      driver.quit()
