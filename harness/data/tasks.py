"""The dm_control suite tasks that datasets are recorded from, and how they are stepped.

A task is named `domain-task` (e.g. `cartpole-swingup`). Observations are the dm_env
observation dict flattened in the environment's own key order into one float32 vector.
Each task has an action repeat: the agent's action is held for that many physics control
steps and their rewards are summed, as is usual for learning dm_control from states
quickly; evaluation of trained policies must use the same repeat, so it is stored in each
dataset's spec.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import warnings
from typing import Mapping

import numpy as np

# The project steps physics and never renders: with no rendering backend asked for,
# dm_control is told not to load one (it would otherwise probe GLFW, EGL and OSMesa).
os.environ.setdefault("MUJOCO_GL", "disable")
_NO_RENDERING = ("off", "disable", "disabled", "false", "0")


def load_suite():
    """dm_control's suite, physics only if the asked-for rendering backend cannot load.

    A MUJOCO_GL naming a backend this machine lacks (e.g. egl without libEGL) makes
    dm_control's import fail; rather than lose a run to a renderer it never uses, the
    import is retried with rendering disabled, with one warning.
    """
    try:
        from dm_control import suite
    except Exception as error:  # noqa: BLE001 - dm_control raises whatever the GL library does
        backend = os.environ.get("MUJOCO_GL", "")
        if backend.lower() in _NO_RENDERING:
            raise
        warnings.warn(f"MUJOCO_GL={backend} failed to load ({type(error).__name__}: {error}); physics needs no "
                      f"rendering, so dm_control goes on with MUJOCO_GL=disable", RuntimeWarning, stacklevel=2)
        os.environ["MUJOCO_GL"] = "disable"
        for name in [m for m in sys.modules if m == "dm_control" or m.startswith("dm_control.")]:
            del sys.modules[name]
        from dm_control import suite
    return suite


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """A dm_control suite task and the way the project steps it."""

    name: str  # `domain-task`, the project's identifier.
    domain: str
    task: str
    action_repeat: int  # Physics control steps per agent step (rewards summed).

    @property
    def episode_length(self) -> int:
        """Agent steps per episode (suite episodes are 1000 control steps)."""
        return 1000 // self.action_repeat


def _spec(name: str, action_repeat: int) -> TaskSpec:
    domain, task = name.split("-")
    return TaskSpec(name=name, domain=domain, task=task, action_repeat=action_repeat)


# Observation / action sizes in the comments; they differ on purpose (padding + masks).
TASKS: Mapping[str, TaskSpec] = {
    s.name: s
    for s in (
        _spec("cartpole-swingup", 4),  # obs 5, act 1
        _spec("cartpole-balance", 4),  # obs 5, act 1
        _spec("pendulum-swingup", 2),  # obs 3, act 1
        _spec("acrobot-swingup", 2),  # obs 6, act 1
        _spec("point_mass-easy", 2),  # obs 4, act 2
        _spec("reacher-easy", 2),  # obs 6, act 2
        _spec("finger-spin", 2),  # obs 9, act 2
        _spec("ball_in_cup-catch", 2),  # obs 8, act 2
        _spec("hopper-stand", 2),  # obs 15, act 4
        _spec("cheetah-run", 2),  # obs 17, act 6
        _spec("walker-walk", 2),  # obs 24, act 6
    )
}


def get_task(name: str) -> TaskSpec:
    """Returns the spec of a task; unknown names get a one-line error listing valid ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None


def flatten_observation(observation: Mapping[str, np.ndarray]) -> np.ndarray:
    """Concatenates a dm_env observation dict into one float32 vector (dict order)."""
    return np.concatenate([np.asarray(v, dtype=np.float32).reshape(-1) for v in observation.values()])


class TaskEnvironment:
    """A dm_control task with flat float32 observations and the task's action repeat.

    `reset()` returns the first observation; `step(action)` returns
    (observation, reward, discount, last), with reward summed over the repeat and
    discount 0 only where the environment terminated (suite tasks never do: their
    episodes end by time limit, so the last step keeps discount 1).
    """

    def __init__(self, spec: TaskSpec, seed: int):
        suite = load_suite()
        self.spec = spec
        self._env = suite.load(spec.domain, spec.task, task_kwargs={"random": seed})
        action_spec = self._env.action_spec()
        self.action_dim = int(np.prod(action_spec.shape))
        self._action_low = np.asarray(action_spec.minimum, np.float64)
        self._action_high = np.asarray(action_spec.maximum, np.float64)
        self.observation_dim = int(
            sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values())
        )

    def reseed(self, seed: int) -> None:
        """Restarts the task's random stream (initial states of the episodes to come), so
        one environment can serve many seeded jobs: building one costs ~50 ms, as much as
        hundreds of steps."""
        # dm_control tasks draw every episode's initial state from `task.random`, which
        # the suite builds from `task_kwargs['random']`; this is the same stream anew.
        self._env.task._random = np.random.RandomState(seed)

    def reset(self) -> np.ndarray:
        return flatten_observation(self._env.reset().observation)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, float, bool]:
        # Policies act in [-1, 1]; map to the environment's bounds (all suite tasks use
        # [-1, 1], but the map keeps this correct for any task added later).
        scaled = self._action_low + (np.clip(action, -1.0, 1.0) + 1.0) * 0.5 * (
            self._action_high - self._action_low
        )
        reward = 0.0
        for _ in range(self.spec.action_repeat - 1):
            inner_reward, discount = self._step_without_observation(scaled)
            reward += inner_reward
            if discount is not None:  # the episode ended inside the repeat
                observation = self._env.task.get_observation(self._env.physics)
                return flatten_observation(observation), reward, float(discount), True
        timestep = self._env.step(scaled)
        reward += float(timestep.reward or 0.0)
        return flatten_observation(timestep.observation), reward, float(timestep.discount), timestep.last()

    def close(self) -> None:
        self._env.close()

    def _step_without_observation(self, action: np.ndarray) -> tuple[float, float | None]:
        """One control step of dm_control's `Environment.step` (dm-control 1.0.50),
        minus the observation nobody reads inside an action repeat: the observation dict
        costs about as much as the physics for these small models (rollouts run ~25-60%
        faster). Returns (reward, discount or None while the episode goes on).
        `tests/test_data_tasks.py` checks it step for step against `Environment.step`."""
        env = self._env
        env._task.before_step(action, env._physics)
        env._physics.step(env._n_sub_steps)
        env._task.after_step(env._physics)
        reward = float(env._task.get_reward(env._physics) or 0.0)
        env._step_count += 1
        discount = 1.0 if env._step_count >= env._step_limit else env._task.get_termination(env._physics)
        if discount is not None:
            env._reset_next_step = True
        return reward, discount


def make_environment(name: str, seed: int) -> TaskEnvironment:
    return TaskEnvironment(get_task(name), seed)


def environment_for(task_spec: Mapping, seed: int):
    """The environment a dataset's task was recorded in, from its spec: the Gymnasium
    environment of data imported from Minari, else the dm_control task it names (an
    imported dm_control task names it in its "environment" entry)."""
    environment = task_spec.get("environment") or {}
    if environment.get("kind") == "gymnasium":
        from harness.data.gymnasium_env import GymnasiumEnvironment

        return GymnasiumEnvironment(environment, seed)
    return make_environment(environment.get("task", task_spec["task"]), seed)
