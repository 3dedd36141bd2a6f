"""General helpers: a checked `replace` for frozen configs, whole-file atomic writes, and
an exclusive file lock.

They live on the lowest floor (models/ imports nothing of the project, design.md section
7) so that harness/, launch/ and analysis/ all share one of each:

  config = checked_replace(config, steps=100)       # unknown field: one-line ValueError
  write_atomic(path, text)                           # readers see the old file or the new
  with file_lock(folder / ".lock", busy=lambda holder: f"{folder} is used by {holder}"):
      ...                                            # one holder at a time
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterator


def checked_replace(config, **changes):
    """`dataclasses.replace` that refuses an unknown field with one line naming it and the
    valid ones (the project's frozen configs all replace through this)."""
    names = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ValueError(f"unknown {type(config).__name__} field {unknown[0]!r}; valid: {', '.join(sorted(names))}")
    return dataclasses.replace(config, **changes)


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Writes a whole text file atomically (see `write_atomic_with`)."""
    write_atomic_with(path, lambda f: f.write(text))


def write_atomic_with(path: str | os.PathLike, write: Callable[[IO], Any], binary: bool = False) -> None:
    """Writes a whole file by temp name + rename: readers see the old or the new, never half.
    `write(f)` fills the open temp file (text, or bytes with binary=True); the temp file is
    removed if it fails. Its name holds the process and the thread, so concurrent writers
    of one path (a launcher's threads too) never share a temp file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, busy: Callable[[str], str]) -> Iterator[None]:
    """Holds an exclusive lock (flock) on the file `path` while the block runs.

    The lock is released when its holder exits, even by SIGKILL, so a dead holder never
    leaves a stale lock. The file names its holder ("pid P on HOST since TIME"); when
    another process holds it, a one-line ValueError says `busy(holder)`.
    """
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise ValueError(busy(holder)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
                  .encode(), 0)
        yield
    finally:
        os.close(fd)
