"""A progress line for long batch jobs: count, images/s and ETA."""

import sys
import threading
import time
from typing import TextIO

import numpy as np


class Progress:
  """A progress line on `stream`: count, images/s and ETA; redrawn in place on a
  terminal, else printed every `interval` seconds. Thread-safe."""

  def __init__(self, total: int, stream: TextIO = sys.stderr, interval: float = 10.0):
    self.total, self.count, self.stream = total, 0, stream
    self.tty = stream.isatty()
    self.interval = 0.1 if self.tty else interval
    self.start = self.last = time.monotonic()
    self.lock = threading.Lock()

  def _line(self) -> str:
    elapsed = max(time.monotonic() - self.start, 1e-9)
    rate = self.count / elapsed
    eta = (self.total - self.count) / rate if rate > 0 else float('nan')
    eta_text = time.strftime('%H:%M:%S', time.gmtime(eta)) if np.isfinite(eta) else '?'
    percent = 100.0 * self.count / max(self.total, 1)
    width = 24
    filled = int(width * self.count / max(self.total, 1))
    return (
      f'[{"#" * filled}{"." * (width - filled)}] {self.count}/{self.total} images '
      f'({percent:.0f}%)  {rate:.2f} images/s  ETA {eta_text}'
    )

  def _draw(self, final: bool = False) -> None:
    end = '\n' if final or not self.tty else ''
    self.stream.write(('\r\033[K' if self.tty else '') + self._line() + end)
    self.stream.flush()
    self.last = time.monotonic()

  def update(self, n: int = 1) -> None:
    with self.lock:
      self.count += n
      if time.monotonic() - self.last >= self.interval:
        self._draw()

  def message(self, text: str) -> None:
    """Prints a line above the progress line."""
    with self.lock:
      self.stream.write(('\r\033[K' if self.tty else '') + text + '\n')
      if self.tty:
        self._draw()
      self.stream.flush()

  def close(self) -> float:
    """Draws the final line; returns images per second."""
    with self.lock:
      self._draw(final=True)
      return self.count / max(time.monotonic() - self.start, 1e-9)
