"""A Gymnasium environment stepped like the project's dm_control tasks (for imported data).

Tasks imported from Minari keep the Gymnasium environment they were recorded in, as the
environment's `EnvSpec` in JSON (what `MinariDataset.recover_environment()` makes). This
adapter gives it the interface of `tasks.TaskEnvironment`: flat float32 observations,
actions in [-1, 1] mapped onto the Box's bounds, and `step` returning (observation,
reward, discount, last) with discount 0 only where the environment terminated (a
truncation, e.g. a time limit, keeps discount 1). Gymnasium is an optional dependency:
`pip install 'pac-scaling[minari]'`.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

INSTALL_HINT = "pip install 'pac-scaling[minari]'"


def gymnasium():
    """The gymnasium module, or a one-line error saying how to install it."""
    try:
        import gymnasium
    except ImportError:
        raise ImportError(f"Gymnasium tasks need gymnasium: {INSTALL_HINT}") from None
    return gymnasium


def make_gymnasium(env_spec_json: str, **kwargs: Any):
    """gymnasium.make of a serialized EnvSpec (`EnvSpec.to_json()`)."""
    gym = gymnasium()
    from gymnasium.envs.registration import EnvSpec

    return gym.make(EnvSpec.from_json(env_spec_json), **kwargs)


class GymnasiumEnvironment:
    """`environment` is a task spec's "environment" entry: {"kind": "gymnasium",
    "env_spec": <EnvSpec JSON>, "action_low": [...], "action_high": [...]}, and
    "max_episode_steps" where the EnvSpec has no time limit (the import sets one)."""

    def __init__(self, environment: Mapping[str, Any], seed: int):
        limit = environment.get("max_episode_steps")
        self._env = make_gymnasium(environment["env_spec"], **({"max_episode_steps": int(limit)} if limit else {}))
        self._seed = seed
        self._seeded = False
        self._low = np.asarray(environment["action_low"], np.float64)
        self._high = np.asarray(environment["action_high"], np.float64)
        self.action_dim = int(self._low.size)
        self.observation_dim = int(np.prod(self._env.observation_space.shape))

    def reset(self) -> np.ndarray:
        # Seeded once: later resets continue the environment's own stream.
        observation, _ = self._env.reset(seed=None if self._seeded else self._seed)
        self._seeded = True
        return np.asarray(observation, np.float32).reshape(-1)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, float, bool]:
        scaled = to_bounds(np.asarray(action, np.float64), self._low, self._high)
        observation, reward, terminated, truncated, _ = self._env.step(scaled.astype(self._env.action_space.dtype))
        return (np.asarray(observation, np.float32).reshape(-1), float(reward), 0.0 if terminated else 1.0,
                bool(terminated or truncated))

    def close(self) -> None:
        self._env.close()


def is_unit_box(low: np.ndarray, high: np.ndarray) -> bool:
    return bool(np.all(np.asarray(low) == -1.0) and np.all(np.asarray(high) == 1.0))


def to_unit(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Actions in [low, high] -> [-1, 1] (float32; exact where the bounds already are)."""
    if is_unit_box(low, high):
        return np.asarray(action, np.float32)
    unit = 2.0 * (np.asarray(action, np.float64) - low) / (high - low) - 1.0
    return np.clip(unit, -1.0, 1.0).astype(np.float32)


def to_bounds(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Actions in [-1, 1] -> [low, high] (the inverse of `to_unit`)."""
    action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
    if is_unit_box(low, high):
        return action
    return low + (action + 1.0) * 0.5 * (high - low)


def environment_entry(env_spec_json: str, low: np.ndarray, high: np.ndarray) -> dict[str, Any]:
    """A task spec's "environment" entry for a Gymnasium environment."""
    return {"kind": "gymnasium", "env_spec": env_spec_json, "action_low": np.asarray(low, float).tolist(),
            "action_high": np.asarray(high, float).tolist()}
