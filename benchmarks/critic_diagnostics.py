"""Does the critic rank actions? Trains the learner and prints the diagnostics over time.

    python -m benchmarks.critic_diagnostics --steps 600 --seeds 0 1 2   # synthetic data
    python -m benchmarks.critic_diagnostics --dataset results/data/demo --steps 2000
    python -m benchmarks.critic_diagnostics --set critic_target=distributional --set target_update=hard

On the synthetic task (written by `write_synthetic_dataset`) the true Q is known up to a
constant: states are drawn independently of the past, so Q(s, a) - Q(s, a') =
r(s, a) - r(s, a') for any policy. Every --every updates the script prints the learner's
own diagnostics (q_spread, eta, weights_ess, per-loss gradient norms, q_mc_rank_corr when
batches carry Monte-Carlo returns) and, on synthetic data, the critic's Q on fixed
held-out states against the truth: q_spread_true (std over 20 uniform actions of the true
reward), q_spread_ratio (critic's spread / true spread, over the same actions),
q_rank_corr (mean over states of the Spearman correlation of Q and the true reward over
those actions), q_rank_corr_policy and q_spread_true_policy (the same over 20 samples of
the policy, the actions the improvement weights see) and policy_value (true reward of
the policy's most likely action, normalized: 0 = uniform random actions, 1 = the optimum).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from harness import diagnostics, losses
from harness.config import TrainConfig, parse_override
from harness.builder import build_job
from harness.data import sampler as sampler_lib
from harness.data import storage
from harness.learner import Learner, host_local
from models import discretization
from models.networks import PACInputs

SYNTHETIC_TASK = "synthetic-bandit"
_OBS_DIM, _ACTION_DIM = 4, 2
# Per-episode behaviour policies: (share of episodes, offset from the best action, noise
# std); None = uniform random actions. Most data comes from a biased policy, so
# behavioural cloning learns a poor action and only a critic can find the better one.
_BEHAVIOURS = ((0.5, 0.6, 0.15), (0.2, 0.0, 0.15), (0.3, None, None))


def optimal_action(observation: np.ndarray) -> np.ndarray:
    """a*(s) of the synthetic task, in [-0.8, 0.8]: a smooth function of the first state dims."""
    obs = np.asarray(observation, np.float64)
    return 0.8 * np.tanh(np.stack([obs[..., 0] + 0.5 * obs[..., 1], obs[..., 2] - obs[..., 3]], axis=-1))


def synthetic_reward(observation: np.ndarray, action: np.ndarray) -> np.ndarray:
    """r(s, a) = 1 - mean_i (a_i - a*_i(s))^2 / 4, in [0, 1] for actions in [-1, 1]."""
    return 1.0 - np.mean(np.square(np.asarray(action, np.float64) - optimal_action(observation)), axis=-1) / 4.0


def write_synthetic_dataset(directory: str | Path, episodes: int = 60, length: int = 50, seed: int = 0) -> Path:
    """A one-task pac-offline dataset whose reward depends on the action (see the module doc).

    States are i.i.d. standard normal (the next state ignores the action), so the true
    advantage of an action is its reward's difference from the others'.
    """
    rng = np.random.default_rng(seed)
    shares = np.array([b[0] for b in _BEHAVIOURS])
    recorded = []
    for e in range(episodes):
        behaviour = rng.choice(len(_BEHAVIOURS), p=shares / shares.sum())
        offset, noise = _BEHAVIOURS[behaviour][1:]
        observations = rng.normal(size=(length + 1, _OBS_DIM)).astype(np.float32)
        if offset is None:
            actions = rng.uniform(-1, 1, size=(length, _ACTION_DIM))
        else:
            actions = np.clip(optimal_action(observations[:-1]) + offset + noise * rng.normal(size=(length, _ACTION_DIM)),
                              -1, 1)
        rewards = synthetic_reward(observations[:-1], actions).astype(np.float32)
        recorded.append(dict(observations=observations, actions=actions.astype(np.float32), rewards=rewards,
                             discounts=np.ones(length, np.float32),
                             source=storage.SOURCE_RANDOM if offset is None else 1,
                             snapshot=-1 if offset is None else int(behaviour), quality=float(rewards.sum()),
                             policy_step=np.full(length, behaviour, np.int64)))
    arrays = storage.build_arrays(recorded, _OBS_DIM, _ACTION_DIM)
    random_rewards = synthetic_reward(rng.normal(size=(10_000, _OBS_DIM)), rng.uniform(-1, 1, (10_000, _ACTION_DIM)))
    spec = dict(observation_dim=_OBS_DIM, action_dim=_ACTION_DIM, action_repeat=1, episode_length=length,
                domain="synthetic", suite_task="bandit", seed=seed, random_return=float(random_rewards.mean() * length),
                # the optimum earns reward 1 every step
                expert_return=float(length), best_return=float(arrays["episode_returns"].max()))
    return storage.write_task(directory, SYNTHETIC_TASK, arrays, spec)


class TrueQProbe:
    """The critic's Q on fixed held-out synthetic states against the true reward."""

    def __init__(self, learner: Learner, sampler: sampler_lib.Sampler, num_states: int = 256, num_actions: int = 20,
                 seed: int = 0):
        rng = np.random.default_rng(seed)
        batch = sampler.sample(num_states)
        task = int(batch.task_id[0])
        mean, std = sampler.normalizer.mean[task, :_OBS_DIM], sampler.normalizer.std[task, :_OBS_DIM]
        raw = batch.observation[:, :_OBS_DIM] * std + mean  # the sampler standardized them
        actions = np.zeros((num_states, num_actions, batch.action.shape[-1]), np.float32)
        actions[..., :_ACTION_DIM] = rng.uniform(-1, 1, (num_states, num_actions, _ACTION_DIM))
        self.true_reward = synthetic_reward(raw[:, None], actions[..., :_ACTION_DIM])
        self.raw, self.actions, self.learner = raw, actions, learner
        self.inputs = PACInputs(batch.observation, batch.observation_mask, batch.task_id, batch.action_mask)
        self.random_value = float(self.true_reward.mean())
        networks, num_bins = learner.networks, learner.networks.config.num_action_bins

        def probe(params, key):
            latents = networks.encode(params, self.inputs)
            q_of = lambda a: discretization.categorical_mean(  # noqa: E731
                networks.q_logits(params, latents, a, self.inputs.action_mask), learner.support)
            logits = networks.policy_logits(params, latents)
            mode = discretization.bin_to_action(jnp.argmax(logits, -1), num_bins)
            # The actions the improvement step weighs: samples of the policy.
            sampled = discretization.bin_to_action(
                losses.sample_action_bins(key, logits, num_actions), num_bins) * self.inputs.action_mask[:, None]
            return q_of(self.actions), mode, sampled, q_of(sampled)

        self._probe = jax.jit(probe)
        self._key = jax.random.key(seed)

    def __call__(self, params) -> dict[str, float]:
        q, mode, sampled, q_sampled = (np.asarray(x) for x in self._probe(params, self._key))
        true_spread = self.true_reward.std(axis=-1)
        value = synthetic_reward(self.raw, mode[:, :_ACTION_DIM]).mean()
        true_sampled = synthetic_reward(self.raw[:, None], sampled[..., :_ACTION_DIM])
        return {
            "q_spread_true": float(true_spread.mean()),
            "q_spread_ratio": float(q.std(axis=-1).mean() / true_spread.mean()),
            "q_rank_corr": float(np.mean(diagnostics.spearman(jnp.asarray(q), jnp.asarray(self.true_reward)))),
            # The same over the policy's own samples (those the weights see; their true
            # spread shrinks as the policy sharpens).
            "q_rank_corr_policy": float(np.mean(diagnostics.spearman(jnp.asarray(q_sampled), jnp.asarray(true_sampled)))),
            "q_spread_true_policy": float(true_sampled.std(axis=-1).mean()),
            "policy_value": float((value - self.random_value) / (1.0 - self.random_value)),
        }


def run(config: TrainConfig, every: int = 100, log=print) -> list[dict[str, Any]]:
    """Trains `config` for config.steps updates (no run folder) and returns the diagnostic rows."""
    job = build_job(config)
    plan, learner, train_sampler = job.plan, job.learner, job.train_sampler
    probe = TrueQProbe(learner, job.valid_sampler) if plan.task_names == (SYNTHETIC_TASK,) else None
    state = learner.init(config.seed)
    rows, start = [], time.perf_counter()
    for step in range(1, plan.steps + 1):
        state, metrics = learner.update(state, learner.shard_batch(train_sampler.sample_at(step - 1)))
        if step % every == 0 or step == plan.steps:
            row = {"step": step, **{k: float(v) for k, v in host_local(metrics).items()}}
            if probe is not None:
                row.update(probe(host_local(state.params)))
            row["seconds"] = time.perf_counter() - start
            rows.append(row)
            log(_format_row(row))
    return rows


_SHOWN = ("step", "q_mean", "q_spread", "q_spread_true", "q_spread_ratio", "q_rank_corr", "q_rank_corr_policy",
          "q_spread_true_policy", "q_mc_rank_corr", "temperature",
          "weights_ess", "policy_grad_norm", "critic_grad_norm", "policy_trunk_grad_norm", "critic_trunk_grad_norm", "critic_loss", "bc_loss", "policy_value", "seconds")


def _format_row(row: dict[str, Any]) -> str:
    return "  ".join(f"{k}={row[k]:.4g}" for k in _SHOWN if k in row)


def summarize(runs: list[list[dict[str, Any]]]) -> dict[str, tuple[float, float]]:
    """Per diagnostic, mean and std over runs (seeds) of each run's last two rows' mean."""
    keys = [k for k in runs[0][-1] if k not in ("step", "seconds")]
    last = {k: [float(np.mean([r[k] for r in rows[-2:]])) for rows in runs] for k in keys}
    return {k: (float(np.mean(v)), float(np.std(v))) for k, v in last.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default=None, help="dataset directory (default: a synthetic one in /tmp)")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run each; the summary is over them")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="any TrainConfig field")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    dataset = args.dataset
    if dataset is None:
        dataset = "/tmp/pac-synthetic-bandit"
        if not storage.paths(dataset, SYNTHETIC_TASK)[1].exists():
            write_synthetic_dataset(dataset)
    try:
        overrides = dict(map(parse_override, args.set))
    except ValueError as err:
        raise SystemExit(str(err)) from None
    runs = []
    for seed in args.seeds:
        config = TrainConfig(preset=args.preset, dataset=dataset, steps=args.steps, batch_size=args.batch_size,
                             seed=seed, eval_episodes=0).replace(**overrides)
        print(json.dumps({"seed": seed, **{k: v for k, v in dataclasses.asdict(config).items()
                                           if k in overrides or k == "dataset"}}))
        runs.append(run(config, args.every))
    summary = summarize(runs)
    print(f"last two rows, mean +- std over seeds {args.seeds}:")
    print("  ".join(f"{k}={m:.3g}+-{sd:.2g}" for k, (m, sd) in summary.items() if k in _SHOWN))
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
