"""Stopping a run on a signal: SIGTERM/SIGINT -> "save after this step, then exit",
agreed over processes; a second Ctrl-C exits at once. Used by train.py."""

import contextlib
import logging as std_logging  # Only to flush its handlers on a hard exit.
import os
import signal
import socket
import sys
import threading
from typing import Callable, Optional

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils


class StopRequest:
  """Turns SIGTERM/SIGINT into "save a checkpoint after this step, then exit";
  a second Ctrl-C exits at once (status 130), without saving.

  With several processes, every process must stop at the same step (they all
  take part in the checkpoint), so the request is agreed on by an all-gather,
  and only what the all-gather returned counts: a signal that lands while the
  all-gather runs waits for the next step on every process alike.

  Python runs signal handlers in the main thread between bytecodes, so not
  while it is inside XLA (a compile may take minutes), and an exception raised
  there unwinds through JAX and XLA: tracebacks, even a crash. Instead the
  handlers do nothing, and a watcher thread reads the signal numbers that
  Python's C-level handler writes to the wakeup fd as the signal lands.
  `close()` puts the previous handlers back.
  """

  _SIGNALS = (signal.SIGTERM, signal.SIGINT)
  active: Optional['StopRequest'] = None  # The one whose watcher runs, if any.

  def __init__(self, before_hard_exit: Callable[[], None] = lambda: None):
    self.received = None  # The first signal this process got, if any.
    self.signum = None  # The signal every process has agreed to stop on.
    self._before_hard_exit = before_hard_exit
    self._interrupts = 0
    self._previous = None
    if threading.current_thread() is not threading.main_thread():
      return
    self._reader, self._writer = socket.socketpair()
    self._writer.setblocking(False)
    self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
    self._previous = {s: signal.signal(s, self._ignore) for s in self._SIGNALS}
    StopRequest.active = self
    threading.Thread(target=self._watch, name='stop-request', daemon=True).start()

  @staticmethod
  def forget_in_child() -> None:
    """After a fork (a data worker): the child must not write its signals to our
    wakeup fd, where one Ctrl-C at the terminal, which reaches both, would count
    twice."""
    if StopRequest.active is not None:
      with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)

  @staticmethod
  def _ignore(signum, frame):
    del signum, frame  # The watcher thread acts on it.

  def _watch(self) -> None:
    while True:
      try:
        data = self._reader.recv(64)
      except OSError:
        return
      if not data:
        return
      for signum in data:
        if signum in self._SIGNALS:
          self._handle(signum)

  def _handle(self, signum: int) -> None:
    if signum == signal.SIGINT:
      self._interrupts += 1
      if self._interrupts > 1:
        logging.warning('A second Ctrl-C: exiting at once, without saving.')
        self._hard_exit(130)
    if self.received is None:
      self.received = signum
      logging.warning(
        'Received %s: saving a checkpoint after this step, then exiting%s.',
        signal.Signals(signum).name,
        ' (Ctrl-C again to exit at once, without saving)' if signum == signal.SIGINT else '',
      )

  def _hard_exit(self, code: int) -> None:
    """Exits now, from this thread: no exception unwinds through XLA."""
    try:
      self._before_hard_exit()
    finally:
      for handler in std_logging.getLogger().handlers:
        handler.flush()
      sys.stdout.flush()
      sys.stderr.flush()
      os._exit(code)  # pylint: disable=protected-access

  def close(self) -> None:
    """Puts the previous handlers back."""
    if self._previous is None:
      return
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    signal.set_wakeup_fd(self._previous_fd)
    self._previous = None
    StopRequest.active = None
    self._reader.shutdown(socket.SHUT_RDWR)  # Ends the watcher's recv.
    self._reader.close()
    self._writer.close()

  def agreed(self, *problems: bool) -> tuple[Optional[int], tuple[bool, ...]]:
    """(The signal to stop on, if any process received one; for each of this
    process's `problems`, whether any process has it): the same on all
    processes, from one all-gather."""
    local = [self.received or 0, *map(int, problems)]  # Read once: the handler may run now.
    if jax.process_count() == 1:
      gathered = np.asarray([local])
    else:
      gathered = np.asarray(multihost_utils.process_allgather(np.asarray(local, np.int32)))
      gathered = gathered.reshape(-1, len(local))
    if self.signum is None:
      received = [int(s) for s in gathered[:, 0] if s]
      if received:
        self.signum = received[0]
    return self.signum, tuple(bool(x) for x in gathered[:, 1:].any(axis=0))

  @staticmethod
  def exit_code(signum: int) -> int:
    return 130 if signum == signal.SIGINT else 0


os.register_at_fork(after_in_child=StopRequest.forget_in_child)
