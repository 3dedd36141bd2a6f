"""The training loop's bookkeeping (harness/periodic.py): when actions are due, and a clock
of training time that leaves out compilation, validation and checkpoint saves."""

import math
import time

from harness.periodic import LoopClock, Throttle, due


def test_an_action_is_due_every_n_steps_and_at_the_last():
    assert [s for s in range(1, 11) if due(s, 4, 10)] == [4, 8, 10]


def test_the_clock_counts_training_time_only():
    waited = [0.0]
    clock = LoopClock(wait_seconds=lambda: waited[0])
    assert clock.totals(5) == (0, 0.0, 0.0)  # never started: no update ran
    waited[0] = 7.0  # waits before the start (behind compilation) are not counted
    clock.start(2)
    rate, wait = clock.window(2)
    assert math.isnan(rate) and wait == 0.0  # the window of the first dispatch has no rate
    time.sleep(0.05)
    with clock.excluded():  # a validation, say
        time.sleep(0.5)
    waited[0] = 7.01
    rate, wait = clock.window(12)
    # 10 updates over ~0.05 s of training (the 0.5 s left out: counted, the rate would be < 18).
    assert 10 / 0.4 < rate <= 10 / 0.05
    assert 0.02 < wait <= 0.2  # 0.01 s of data wait in ~0.05 s of training time
    steps, seconds, data_wait = clock.totals(20)
    assert steps == 18 and 0.05 <= seconds < 0.4 and abs(data_wait - 0.01) < 1e-9


def test_the_throttle_passes_at_most_once_a_period_unless_forced():
    throttle = Throttle(60.0)
    assert throttle() and not throttle() and throttle(force=True)
