"""The project's stepping of dm_control tasks equals dm_control's own, step for step."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from harness.data import tasks

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["cartpole-swingup", "ball_in_cup-catch"])
def test_action_repeat_matches_dm_control_step_for_step(name):
    """TaskEnvironment skips the observations inside an action repeat; the rewards,
    discounts, ends and observations it returns equal those of plain `env.step` calls."""
    from dm_control import suite

    spec = tasks.get_task(name)
    ours = tasks.TaskEnvironment(spec, seed=7)
    reference = suite.load(spec.domain, spec.task, task_kwargs={"random": 7})
    np.testing.assert_array_equal(ours.reset(), tasks.flatten_observation(reference.reset().observation))
    rng = np.random.default_rng(0)
    for step in range(spec.episode_length + 3):  # runs past the end: both start a new episode
        action = rng.uniform(-1, 1, ours.action_dim)
        if step == spec.episode_length:
            np.testing.assert_array_equal(ours.reset(), tasks.flatten_observation(reference.reset().observation))
            continue
        obs, reward, discount, last = ours.step(action)
        expected_reward = 0.0
        for _ in range(spec.action_repeat):
            timestep = reference.step(action)
            expected_reward += float(timestep.reward or 0.0)
            if timestep.last():
                break
        np.testing.assert_array_equal(obs, tasks.flatten_observation(timestep.observation))
        assert reward == pytest.approx(expected_reward, abs=1e-12)
        assert discount == float(timestep.discount) and last == timestep.last()
        assert last == (step == spec.episode_length - 1)


def test_reseed_restarts_the_initial_state_stream():
    env = tasks.make_environment("reacher-easy", seed=0)
    env.reseed(3)
    first = [env.reset() for _ in range(3)]
    env.reseed(3)
    np.testing.assert_array_equal(np.stack(first), np.stack([env.reset() for _ in range(3)]))
    assert not np.array_equal(first[0], first[1])


def test_an_episode_runs_when_the_rendering_backend_cannot_load():
    """MUJOCO_GL=egl on a machine whose EGL fails to load (simulated: its module cannot be
    imported) still steps physics: dm_control is loaded with rendering disabled."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import sys, warnings
        sys.modules["dm_control._render.pyopengl.egl_renderer"] = None  # importing it now fails
        from harness.data import tasks
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            env = tasks.TaskEnvironment(tasks.get_task("cartpole-swingup"), seed=0)
        assert any("MUJOCO_GL=egl failed to load" in str(w.message) for w in caught), [str(w.message) for w in caught]
        obs, steps, total = env.reset(), 0, 0.0
        last = False
        while not last:
            obs, reward, discount, last = env.step([0.0])
            steps, total = steps + 1, total + reward
        print("OK", steps, obs.shape)
    """)
    env = {k: v for k, v in os.environ.items() if k != "MUJOCO_GL"} | {"MUJOCO_GL": "egl"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("OK")
