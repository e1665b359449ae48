"""What keeps a run's output folder safe from the outside: one run per folder at a time
(an advisory lock on the folder, which the system drops when the process dies, so a killed
run leaves no stale lock), and SIGTERM -- how clusters stop jobs -- turned into a request
that the training loop answers at its next log step."""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: no locking (the folder checks still hold)
    fcntl = None


class FolderInUse(RuntimeError):
    pass


@contextmanager
def output_lock(folder):
    """Holds an exclusive lock on FOLDER itself (its directory handle: nothing is written
    into it) for the block; FolderInUse when another process holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderInUse(
                f"{folder} is in use by another scdepth-train; wait for it to end, or choose "
                "another --out"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


class StopRequest:
    """Set by SIGTERM while installed (main thread only: signals reach no other)."""

    def __init__(self):
        self.requested = False

    def _handle(self, signum, frame):
        self.requested = True


@contextmanager
def sigterm_requests():
    """A StopRequest that SIGTERM sets during the block; the previous handler afterwards."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGTERM, stop._handle)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)
