"""Soft Actor-Critic (Haarnoja et al. 2018) in Haiku + optax: the online learner whose
experience becomes the offline datasets.

It is a small, standard SAC: tanh-squashed Gaussian actor, twin Q critics with Polyak
target copies, learned entropy temperature with target entropy -|A|. Its only job is to
improve from random to competent while everything it does is recorded, so the datasets
mix behaviour of every quality. `update_many` runs several updates in one `lax.scan` so
that the host loop pays one dispatch per environment chunk, not per update.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


@dataclasses.dataclass(frozen=True)
class SACConfig:
    hidden_sizes: tuple[int, ...] = (128, 128)
    learning_rate: float = 1e-3
    discount: float = 0.99
    tau: float = 0.005  # Polyak rate of the target critics.
    batch_size: int = 128
    initial_temperature: float = 0.1


class SACState(NamedTuple):
    actor_params: hk.Params
    critic_params: hk.Params
    target_critic_params: hk.Params
    log_temperature: jax.Array
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    temperature_opt: optax.OptState
    steps: jax.Array


class Transitions(NamedTuple):
    observation: jax.Array
    action: jax.Array
    reward: jax.Array
    discount: jax.Array
    next_observation: jax.Array


class SAC:
    """Pure SAC functions for one task's observation and action sizes."""

    def __init__(self, observation_dim: int, action_dim: int, config: SACConfig = SACConfig()):
        self.config = config
        self.action_dim = action_dim
        self._observation_dim = observation_dim
        hidden = list(config.hidden_sizes)

        def actor(obs):
            torso = hk.nets.MLP(hidden, activate_final=True, name="actor_torso")(obs)
            mean = hk.Linear(action_dim, name="mean")(torso)
            log_std = hk.Linear(action_dim, name="log_std")(torso)
            log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (jnp.tanh(log_std) + 1)
            return mean, log_std

        def critic(obs, action):
            x = jnp.concatenate([obs, action], axis=-1)
            q1 = hk.nets.MLP(hidden + [1], name="q1")(x)
            q2 = hk.nets.MLP(hidden + [1], name="q2")(x)
            return q1[..., 0], q2[..., 0]

        self._actor = hk.without_apply_rng(hk.transform(actor))
        self._critic = hk.without_apply_rng(hk.transform(critic))
        self._optimizer = optax.adam(config.learning_rate)
        self.update_many = jax.jit(self._update_many)
        self.act = jax.jit(self._act, static_argnames="deterministic")

    def init(self, key: jax.Array) -> SACState:
        actor_key, critic_key = jax.random.split(key)
        obs = jnp.zeros((1, self._observation_dim))
        act = jnp.zeros((1, self.action_dim))
        actor_params = self._actor.init(actor_key, obs)
        critic_params = self._critic.init(critic_key, obs, act)
        log_temperature = jnp.log(jnp.asarray(self.config.initial_temperature, jnp.float32))
        return SACState(
            actor_params=actor_params,
            critic_params=critic_params,
            target_critic_params=critic_params,
            log_temperature=log_temperature,
            actor_opt=self._optimizer.init(actor_params),
            critic_opt=self._optimizer.init(critic_params),
            temperature_opt=self._optimizer.init(log_temperature),
            steps=jnp.zeros((), jnp.int32),
        )

    def _sample(self, actor_params, obs, key):
        mean, log_std = self._actor.apply(actor_params, obs)
        std = jnp.exp(log_std)
        pre_tanh = mean + std * jax.random.normal(key, mean.shape)
        action = jnp.tanh(pre_tanh)
        log_prob = jnp.sum(
            -0.5 * ((pre_tanh - mean) / std) ** 2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1
        )
        # Change of variables through tanh, in the numerically stable softplus form.
        log_prob -= jnp.sum(2 * (jnp.log(2.0) - pre_tanh - jax.nn.softplus(-2 * pre_tanh)), axis=-1)
        return action, log_prob

    def _act(self, actor_params, obs, key, deterministic: bool):
        if deterministic:
            mean, _ = self._actor.apply(actor_params, obs)
            return jnp.tanh(mean)
        return self._sample(actor_params, obs, key)[0]

    def _update(self, state: SACState, batch: Transitions, key: jax.Array):
        cfg = self.config
        critic_key, actor_key = jax.random.split(key)
        temperature = jnp.exp(state.log_temperature)

        next_action, next_log_prob = self._sample(state.actor_params, batch.next_observation, critic_key)
        tq1, tq2 = self._critic.apply(state.target_critic_params, batch.next_observation, next_action)
        soft_value = jnp.minimum(tq1, tq2) - temperature * next_log_prob
        target = jax.lax.stop_gradient(batch.reward + cfg.discount * batch.discount * soft_value)

        def critic_loss(params):
            q1, q2 = self._critic.apply(params, batch.observation, batch.action)
            return jnp.mean((q1 - target) ** 2 + (q2 - target) ** 2)

        c_loss, c_grads = jax.value_and_grad(critic_loss)(state.critic_params)
        c_updates, critic_opt = self._optimizer.update(c_grads, state.critic_opt)
        critic_params = optax.apply_updates(state.critic_params, c_updates)

        def actor_loss(params):
            action, log_prob = self._sample(params, batch.observation, actor_key)
            q1, q2 = self._critic.apply(critic_params, batch.observation, action)
            return jnp.mean(temperature * log_prob - jnp.minimum(q1, q2)), log_prob

        (a_loss, log_prob), a_grads = jax.value_and_grad(actor_loss, has_aux=True)(state.actor_params)
        a_updates, actor_opt = self._optimizer.update(a_grads, state.actor_opt)
        actor_params = optax.apply_updates(state.actor_params, a_updates)

        entropy_gap = jax.lax.stop_gradient(-jnp.mean(log_prob) + self.action_dim)

        def temperature_loss(log_t):
            # Raise the temperature when entropy falls below its target (-|A|).
            return log_t * entropy_gap

        t_grad = jax.grad(temperature_loss)(state.log_temperature)
        t_updates, temperature_opt = self._optimizer.update(t_grad, state.temperature_opt)
        log_temperature = optax.apply_updates(state.log_temperature, t_updates)

        target_critic_params = optax.incremental_update(critic_params, state.target_critic_params, cfg.tau)
        new_state = SACState(
            actor_params, critic_params, target_critic_params, log_temperature,
            actor_opt, critic_opt, temperature_opt, state.steps + 1,
        )
        return new_state, {"critic_loss": c_loss, "actor_loss": a_loss, "temperature": temperature}

    def _update_many(self, state: SACState, batches: Transitions, key: jax.Array):
        """Applies one update per leading-axis slice of `batches`."""
        keys = jax.random.split(key, batches.reward.shape[0])
        state, metrics = jax.lax.scan(lambda s, xs: self._update(s, *xs), state, (batches, keys))
        return state, jax.tree.map(jnp.mean, metrics)


def sample_batches(rng: np.random.Generator, buffer: Transitions, size: int,
                   num_batches: int, batch_size: int) -> Transitions:
    """Draws `num_batches` uniform batches from the first `size` rows of `buffer`."""
    idx = rng.integers(0, size, size=(num_batches, batch_size))
    return Transitions(*(np.asarray(field)[idx] for field in buffer))


class NumpyActor:
    """The actor's forward pass in numpy, for batched inference in rollout workers.

    Rollouts step B environments in lockstep and need one policy call per step for all
    of them. For a two-layer MLP on a few dozen inputs, numpy takes a few microseconds
    where a jitted JAX call pays ~50-100 us of dispatch, and workers stay free of XLA
    threads. Matches `SAC._act` / `SAC._sample` (tanh-squashed Gaussian).
    """

    def __init__(self, actor_params: hk.Params):
        params = jax.tree.map(np.asarray, actor_params)
        torso = sorted((k for k in params if k.startswith("actor_torso")), key=lambda k: int(k.rsplit("_", 1)[1]))
        self._torso = [(params[k]["w"].astype(np.float64), params[k]["b"].astype(np.float64)) for k in torso]
        self._mean = (params["mean"]["w"].astype(np.float64), params["mean"]["b"].astype(np.float64))
        self._log_std = (params["log_std"]["w"].astype(np.float64), params["log_std"]["b"].astype(np.float64))

    def __call__(self, observations: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Actions in [-1, 1] for observations [B, obs_dim]: the mean action when `rng` is
        None, else a sample of the stochastic policy (the learner's exploration noise)."""
        x = np.asarray(observations, np.float64)
        for w, b in self._torso:
            x = np.maximum(x @ w + b, 0.0)
        mean = x @ self._mean[0] + self._mean[1]
        if rng is None:
            return np.tanh(mean).astype(np.float32)
        log_std = np.tanh(x @ self._log_std[0] + self._log_std[1])
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1)
        return np.tanh(mean + np.exp(log_std) * rng.standard_normal(mean.shape)).astype(np.float32)
