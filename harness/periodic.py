"""A training loop's bookkeeping (Flax lm1b's and clu's periodic actions, cut to what
harness/train.py needs): when a periodic action is due, the loop's steady-state clock,
and a throttle for log lines.

    clock = LoopClock(wait_seconds=lambda: prefetcher.wait_seconds)
    while step < last:
        step = dispatch()
        if not clock.started:
            clock.start(step)               # after the first (compiling) dispatch
        if due(step, log_every, last):
            rate, wait = clock.window(step)  # updates/s since the previous window
        if due(step, valid_every, last):
            with clock.excluded():          # not training time
                validate()
    steps_run, seconds, data_wait = clock.totals(step)
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator


def due(step: int, every: int, last: int) -> bool:
    """Whether an action that runs every `every` steps, and at the last step, runs at `step`."""
    return step % every == 0 or step == last


class LoopClock:
    """The loop's training time: from `start` (the end of the first dispatch, so that
    compilation is left out) on, less the sections run under `excluded()` (validation,
    checkpoint saves). `wait_seconds` reads the input pipeline's cumulative wait."""

    def __init__(self, wait_seconds: Callable[[], float] = lambda: 0.0):
        self._wait_seconds = wait_seconds
        self.started = False
        self._start = (0.0, 0, 0.0)  # (time, step, data wait) at the start
        self._excluded = 0.0  # seconds excluded since the start
        self._window = (0.0, 0, 0.0)  # (time, step, excluded) at the previous window's end

    def start(self, step: int) -> None:
        now = time.perf_counter()
        self._start = (now, step, self._wait_seconds())
        self._excluded = 0.0  # only what is excluded after the start counts against it
        self._window = (now, step, self._excluded)
        self.started = True

    @contextlib.contextmanager
    def excluded(self) -> Iterator[None]:
        """A section whose time is not training time."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self._excluded += time.perf_counter() - began

    def window(self, step: int) -> tuple[float, float]:
        """(updates/s since the previous window ended, in training time: NaN when no update
        ran in it, as in the window of the first dispatch; the fraction of training time
        since the start spent waiting for data), and the next window begins."""
        now = time.perf_counter()
        began, began_step, began_excluded = self._window
        seconds = now - began - (self._excluded - began_excluded)
        rate = (step - began_step) / seconds if step > began_step and seconds > 0 else float("nan")
        wait = (self._wait_seconds() - self._start[2]) / max(now - self._start[0] - self._excluded, 1e-9)
        self._window = (now, step, self._excluded)
        return rate, wait

    def totals(self, step: int) -> tuple[int, float, float]:
        """(updates since the start, their training seconds, seconds of those spent waiting
        for data); zeros when the clock never started (no update ran)."""
        if not self.started:
            return 0, 0.0, 0.0
        return (step - self._start[1], time.perf_counter() - self._start[0] - self._excluded,
                self._wait_seconds() - self._start[2])


class Throttle:
    """True at most once every `seconds` (and whenever forced)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._last = -float("inf")

    def __call__(self, force: bool = False) -> bool:
        now = time.perf_counter()
        if force or now - self._last >= self.seconds:
            self._last = now
            return True
        return False
