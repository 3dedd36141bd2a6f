"""Orbax checkpoints of the training state: keep the last k, save asynchronously.

A run killed at any moment restarts from its newest complete checkpoint (orbax writes
each step to a temporary folder and renames it when complete, so a half-written step is
never picked up). Restores always pass the abstract target, so optax states come back
as their own types, not plain lists.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Callable, Sequence

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint._src import asyncio_utils as _orbax_asyncio


class CheckpointWriteError(OSError):
    """A checkpoint that could not be written (a full disk, a folder made read-only): one
    line naming the folder and the step; the run resumes from its last complete step."""


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0][:200]


class _OrbaxErrorsRaisedHere(logging.Filter):
    """Drops orbax's own ERROR records (each with a traceback, logged from its background
    threads): every failure they describe reaches the Checkpointer as an exception, and the
    run reports it in one line (CheckpointWriteError)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno >= logging.ERROR and f"{os.sep}orbax{os.sep}" in record.pathname)


_ORBAX_FILTER = _OrbaxErrorsRaisedHere()


# How long a failed write's sibling writes are waited for before their loop is closed.
_DRAIN_SECONDS = 60.0


def _run_sync_via_new_loop(coro: Any) -> Any:
    """orbax's own (asyncio_utils._run_sync_via_new_loop, which runs every save's
    coroutines in a fresh event loop, then closes it), except that a coroutine that fails
    leaves no task running on the closed loop. A save writes each array with its own
    tensorstore future inside one asyncio.gather; when one write fails (a full disk, a
    folder made read-only) the gather raises at once and orbax closed the loop while the
    other writes still ran. Each of those, on finishing, then called the closed loop's
    call_soon_threadsafe from a tensorstore thread and printed a "RuntimeError: Event loop
    is closed" traceback through sys.unraisablehook (up to ~180 of them, 1,100 lines, for
    one full disk). Here the loop first waits for its remaining tasks (they fail the same
    way, and the one error that matters reaches the Checkpointer as an exception), then
    closes: nothing is left to report into it."""
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    except Exception:  # not on Ctrl-C: that stops at once, as before
        _drain(loop)
        raise
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _drain(loop: asyncio.AbstractEventLoop) -> None:
    """Runs `loop` until its tasks are done (at most _DRAIN_SECONDS, then cancels them)."""
    pending = asyncio.all_tasks(loop)
    if not pending:
        return
    _, late = loop.run_until_complete(asyncio.wait(pending, timeout=_DRAIN_SECONDS))
    for task in late:
        task.cancel()
    if late:
        loop.run_until_complete(asyncio.wait(late, timeout=1.0))
    for task in pending:
        if task.done() and not task.cancelled():
            task.exception()  # read: each is the failed save's error again, already raised once


if callable(getattr(_orbax_asyncio, "_run_sync_via_new_loop", None)):  # orbax-checkpoint 0.12.8, pinned in setup.cfg
    _orbax_asyncio._run_sync_via_new_loop = _run_sync_via_new_loop


class Checkpointer:
    def __init__(self, directory: str | os.PathLike, keep: int = 2):
        for name in ("absl", ""):  # orbax logs through absl, which hands records to the root logger's handlers
            if _ORBAX_FILTER not in logging.getLogger(name).filters:
                logging.getLogger(name).addFilter(_ORBAX_FILTER)
        self._directory = os.path.abspath(directory)
        self._pending: int | None = None  # the step of the last save, written asynchronously
        self._manager = ocp.CheckpointManager(
            self._directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=True),
        )

    def _error(self, step: int | None, err: BaseException) -> CheckpointWriteError:
        # orbax reports a failed background write on the next save: name the step it names.
        for candidate in (self._pending, step):
            if candidate is not None and f"/{candidate}.orbax-checkpoint-tmp" in str(err):
                step = candidate
                break
        # The failed write's other asyncio tasks would each log the same error again when
        # collected (about a hundred tracebacks for one full disk): this line says it once.
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        done = self._manager.latest_step()
        return CheckpointWriteError(
            f"{self._directory}: checkpoint step {step} could not be written ({type(err).__name__}: "
            f"{_first_line(err)}); free space or make the folder writable, then rerun the same command to resume "
            f"from {'step ' + str(done) if done is not None else 'the start'}")

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def delete(self, step: int) -> None:
        self._manager.delete(step)

    def save(self, step: int, state: Any) -> None:
        self.check()
        try:
            self._manager.save(step, args=ocp.args.StandardSave(state))
        except Exception as err:  # noqa: BLE001 - orbax raises many kinds for one failed write
            raise self._error(step, err) from err
        self._pending = step

    def check(self) -> None:
        """Raises the CheckpointWriteError of a save that failed in the background, if any:
        called at every logged step, so a failed write stops the run soon after it."""
        try:
            self._manager.check_for_errors()
        except Exception as err:  # noqa: BLE001
            raise self._error(self._pending, err) from err

    def restore(self, step: int, like: Any) -> Any:
        """Restores `step` into the structure, shapes, dtypes and shardings of `like`."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def wait(self) -> None:
        try:
            self._manager.wait_until_finished()
        except Exception as err:  # noqa: BLE001
            raise self._error(self._pending, err) from err

    def close(self) -> None:
        self.wait()
        self._manager.close()


def restore_newest(checkpointers: Sequence[Checkpointer], likes: Sequence[Any], names: Sequence[Any],
                   log: Callable[[str], None] = lambda _: None) -> tuple[int, list[Any]]:
    """(step, states): every run restored from the newest step that all of `checkpointers`
    hold and that reads for each of them; (0, likes) when there is none. Steps after it (a
    damaged one, or one only some runs of a pack reached before a kill) are deleted, each
    said in a warning: the resumed run replays them exactly and saves them anew, and orbax
    refuses to save a step that exists."""
    shared = set.intersection(*(set(c.all_steps()) for c in checkpointers))
    step, states = 0, list(likes)
    for candidate in sorted(shared, reverse=True):
        restored = []
        for checkpointer, like, name in zip(checkpointers, likes, names):
            try:
                restored.append(checkpointer.restore(candidate, like))
            # A damaged step fails in many ways inside orbax and tensorstore (missing or
            # garbled files, bad metadata); any of them means: try the older one.
            except Exception as err:  # noqa: BLE001
                first = (str(err).strip().splitlines() or [""])[0][:200]
                log(f"warning: {name}: checkpoint step {candidate} does not read ({type(err).__name__}: {first}); "
                    f"trying an older one")
                break
        else:
            step, states = candidate, restored
            break
    for checkpointer, name in zip(checkpointers, names):
        for later in sorted(s for s in checkpointer.all_steps() if s > step):
            log(f"warning: {name}: skipped checkpoint step {later} (resuming from step {step}); it is deleted and "
                f"made again")
            checkpointer.delete(later)
    return step, states
