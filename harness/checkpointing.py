"""Orbax checkpoints of the training state: keep the last k, save asynchronously.

A run killed at any moment restarts from its newest complete checkpoint (orbax writes
each step to a temporary folder and renames it when complete, so a half-written step is
never picked up). Restores always pass the abstract target, so optax states come back
as their own types, not plain lists.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import jax
import orbax.checkpoint as ocp


class Checkpointer:
    def __init__(self, directory: str | os.PathLike, keep: int = 2):
        self._manager = ocp.CheckpointManager(
            os.path.abspath(directory),
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=True),
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def delete(self, step: int) -> None:
        self._manager.delete(step)

    def save(self, step: int, state: Any) -> None:
        self._manager.save(step, args=ocp.args.StandardSave(state))

    def restore(self, step: int, like: Any) -> Any:
        """Restores `step` into the structure, shapes, dtypes and shardings of `like`."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
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
