"""Multi-task datasets in memory and the sampler of padded, masked batches.

Tasks differ in observation and action size; a batch pads every example to the largest
sizes (or to a model's larger maxima) and carries boolean masks (True = a real
dimension), so one network trains on all tasks at once. Everything is built once from
contiguous arrays; `sample()` is pure numpy fancy-indexing and never touches the disk.
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from typing import Literal, Mapping, NamedTuple, Sequence

import numpy as np

from harness.data import storage


class Batch(NamedTuple):
    """A batch of transitions from several tasks, padded to common sizes."""

    task_id: np.ndarray  # int32 [B], index into the dataset's task list.
    observation: np.ndarray  # float32 [B, max_obs]
    observation_mask: np.ndarray  # bool [B, max_obs]
    action: np.ndarray  # float32 [B, max_act], padded dims are 0.
    action_mask: np.ndarray  # bool [B, max_act]
    reward: np.ndarray  # float32 [B]
    discount: np.ndarray  # float32 [B], 0 only at true termination.
    next_observation: np.ndarray  # float32 [B, max_obs]
    # Discounted return-to-go of the data's episode from this transition (scaled rewards;
    # truncated at the episode's end): a Monte-Carlo reference for the critic's diagnostics.
    mc_return: np.ndarray  # float32 [B]


class SplitArrays(NamedTuple):
    """One split of a dataset as flat arrays (see `Sampler.split_arrays`): what a sampler
    on the device needs (harness.data.device_sampler)."""

    observations: np.ndarray  # float32 [rows, max_obs], normalized and padded
    actions: np.ndarray  # float32 [transitions, max_act]
    rewards: np.ndarray  # float32 [transitions], scaled
    discounts: np.ndarray  # float32 [transitions]
    mc_returns: np.ndarray  # float32 [transitions]
    transition: np.ndarray  # int32 [split positions] -> transition
    obs_row: np.ndarray  # int32 [split positions] -> observation row (next = row + 1)
    split_starts: np.ndarray  # int32 [tasks]: first split position of each task
    split_sizes: np.ndarray  # int32 [tasks]
    task_weights: np.ndarray  # float32 [tasks]: the probability of drawing each task
    # Walker alias tables of a weighted draw inside each task (None: uniform; see
    # `alias_tables`): position k of a task's slice is kept with alias_keep[k], else
    # replaced by alias_other[k] (a position of the same slice).
    alias_keep: np.ndarray | None  # float32 [split positions]
    alias_other: np.ndarray | None  # int32 [split positions]
    observation_mask: np.ndarray  # bool [tasks, max_obs]
    action_mask: np.ndarray  # bool [tasks, max_act]


def gather(arrays: SplitArrays, position, task) -> Batch:
    """The batch of the split's `position`s, `task` being each position's task: the one
    gather of the host Sampler and the device sampler (numpy and jax arrays alike)."""
    transition, obs_row = arrays.transition[position], arrays.obs_row[position]
    return Batch(
        task_id=task,
        observation=arrays.observations[obs_row],
        observation_mask=arrays.observation_mask[task],
        action=arrays.actions[transition],
        action_mask=arrays.action_mask[task],
        reward=arrays.rewards[transition],
        discount=arrays.discounts[transition],
        next_observation=arrays.observations[obs_row + 1],
        mc_return=arrays.mc_returns[transition],
    )


@dataclasses.dataclass(frozen=True)
class MultiTaskDataset:
    """Several tasks' data, in a fixed task order (the task ids)."""

    tasks: tuple[storage.TaskData, ...]

    @property
    def task_names(self) -> list[str]:
        return [t.task for t in self.tasks]

    @property
    def max_observation_dim(self) -> int:
        return max(t.observation_dim for t in self.tasks)

    @property
    def max_action_dim(self) -> int:
        return max(t.action_dim for t in self.tasks)

    @property
    def num_transitions(self) -> int:
        return sum(t.num_transitions for t in self.tasks)

    def split_episodes(self, valid_fraction: float = 0.1) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per task, (train, valid) episode ids; a held-out split by whole episodes.

        The split is a property of the dataset: it is seeded by the dataset's own seed and
        the task's name, never by a training run's seed, so every run of a study is
        validated on the same episodes. Each task with two or more episodes holds out at
        least one.
        """
        if not 0.0 <= valid_fraction < 1.0:
            raise ValueError(f"valid_fraction={valid_fraction} must be in [0, 1)")
        splits = {}
        for t in self.tasks:
            seed = [int(t.spec.get("seed", 0)), zlib.crc32(t.task.encode())]
            order = np.random.default_rng(seed).permutation(t.num_episodes)
            num_valid = int(round(valid_fraction * t.num_episodes))
            if valid_fraction > 0 and t.num_episodes >= 2:
                num_valid = min(max(num_valid, 1), t.num_episodes - 1)
            splits[t.task] = (np.sort(order[num_valid:]), np.sort(order[:num_valid]))
        return splits


# The last rewards of a time-limited episode that `returns_to_go(..., tail='extend')`
# carries on past its end.
TAIL_WINDOW = 20
MC_RETURN_TAILS = ("cut", "extend")


def returns_to_go(rewards: np.ndarray, episode_lengths: np.ndarray, discount: float,
                  tail: str = "cut", final_discounts: np.ndarray | None = None) -> np.ndarray:
    """Discounted return-to-go of every transition within its own episode, float32.

    tail='cut' sums the rewards left in the episode. A time limit is not the task's end,
    though: dm_control's episodes stop at 1,000 physics steps with the agent still earning
    (the last 20 rewards of the demo data correlate 0.88-0.99 with the middle's), so a cut
    return falls from ~98 to ~1 over a good episode's last 1/(1 - discount) steps while the
    critic's value, which bootstraps there, does not. tail='extend' continues each episode
    whose final discount is not 0 (truncated, not terminated) by the mean of its last
    TAIL_WINDOW rewards for ever: G_t += discount^(T-t) * mean_tail / (1 - discount).
    """
    if tail not in MC_RETURN_TAILS:
        raise ValueError(f"tail={tail!r}; allowed: {', '.join(map(repr, MC_RETURN_TAILS))}")
    from scipy.signal import lfilter

    out = np.empty(len(rewards), np.float64)
    start = 0
    for length in episode_lengths:
        episode = rewards[start:start + length].astype(np.float64)
        # y[n] = x[n] + discount * y[n-1] on the reversed episode is the return-to-go.
        out[start:start + length] = lfilter([1.0], [1.0, -discount], episode[::-1])[::-1]
        truncated = final_discounts is None or final_discounts[start + length - 1] > 0
        if tail == "extend" and length and truncated and discount < 1.0:
            tail_value = episode[-TAIL_WINDOW:].mean() / (1.0 - discount)
            out[start:start + length] += discount ** np.arange(length, 0, -1) * tail_value
        start += length
    return out.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class ObservationNormalizer:
    """Per task, per dimension (obs - mean) / std with the training split's statistics.

    dm_control observations mix angles, positions and velocities of very different
    scales; the network sees each dimension standardized. Padding stays exactly 0.
    """

    mean: np.ndarray  # float32 [num_tasks, max_obs]
    std: np.ndarray  # float32 [num_tasks, max_obs], 1 on padding

    CLIP = 10.0

    def __call__(self, observations: np.ndarray, task_id: np.ndarray | int) -> np.ndarray:
        normalized = (observations - self.mean[task_id]) / self.std[task_id]
        return np.clip(normalized, -self.CLIP, self.CLIP).astype(np.float32)

    @classmethod
    def identity(cls, num_tasks: int, max_obs: int) -> "ObservationNormalizer":
        return cls(np.zeros((num_tasks, max_obs), np.float32), np.ones((num_tasks, max_obs), np.float32))


SAMPLE_WEIGHTINGS = ("uniform", "episode_return", "return_to_go")


def kl_tilted_probabilities(values: np.ndarray, kl_epsilon: float) -> np.ndarray:
    """p_i proportional to exp(z_i / T), z the standardized values, T solved (bisection on
    log T) so that KL(p || uniform) = kl_epsilon; the steepest tilt tried (T = 1e-4) when
    even that lies closer than kl_epsilon; uniform when the values are all equal."""
    values = np.asarray(values, np.float64)
    n = len(values)
    if n == 0 or np.ptp(values) == 0:
        return np.full(n, 1.0 / max(n, 1))
    z = (values - values.mean()) / values.std()

    def tilted(log_temperature):
        p = np.exp((z - z.max()) / np.exp(log_temperature))
        return p / p.sum()

    def kl(p):
        return float(np.sum(p * np.log(np.maximum(p * n, 1e-300))))

    low, high = np.log(1e-4), np.log(1e4)  # the KL falls as T grows
    if kl(tilted(low)) <= kl_epsilon:
        return tilted(low)
    for _ in range(60):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if kl(tilted(mid)) > kl_epsilon else (low, mid)
    return tilted(high)


def alias_tables(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias tables of a distribution over n items: draw k uniformly, keep it with
    probability keep[k], else take other[k]. Exact in float32, where an inverse-CDF over
    10^5 items would lose the small probabilities to rounding."""
    n = len(probabilities)
    scaled = np.asarray(probabilities, np.float64) * n / np.sum(probabilities)
    keep, other = np.ones(n), np.arange(n)
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        keep[s], other[s] = scaled[s], g
        scaled[g] -= 1.0 - scaled[s]
        (small if scaled[g] < 1.0 else large).append(g)
    return keep.astype(np.float32), other.astype(np.int32)


def top_episodes(returns: np.ndarray, fraction: float) -> np.ndarray:
    """Sorted indices of the best `fraction` of episodes by return (at least one; ties kept
    in index order): filtered BC's rule, and what the diagnostics call top episodes."""
    keep = max(1, int(round(fraction * len(returns))))
    return np.sort(np.argsort(-np.asarray(returns), kind="stable")[:keep])


def load_dataset(directory: str | os.PathLike, tasks: Sequence[str] | None = None,
                 verify_checksum: bool = True) -> MultiTaskDataset:
    """Loads the given tasks (default: all in `directory`) into memory."""
    names = list(tasks) if tasks else storage.list_tasks(directory)
    if not names:
        raise storage.DatasetError(f"{directory}: no task datasets found (generate them with `pac data`)")
    return MultiTaskDataset(tuple(storage.read_task(directory, n, verify_checksum) for n in names))


class Sampler:
    """Uniform-over-tasks (or over transitions) batches from one split of a dataset.

    Args:
      dataset: the tasks.
      batch_size: examples per batch.
      split: 'train' or 'valid' (held-out episodes), or 'all'.
      seed: the sampling stream's seed.
      max_observation_dim / max_action_dim: pad to these (a model's maxima); default the
        dataset's own maxima. Smaller than a task's size is an error.
      task_weighting: 'uniform' picks a task uniformly then a transition in it (small
        tasks are not drowned out); 'transitions' samples all transitions uniformly.
      valid_fraction: the held-out split (see `split_episodes`).
      reward_scale: per task name, a factor applied to rewards (e.g. 1 / action_repeat so
        every task's per-step reward lies in [0, 1]); default 1.
      mc_discount: the discount of the batches' Monte-Carlo returns (`Batch.mc_return`).
      mc_return_tail: how those returns end at a time limit ('cut' or 'extend'; see
        `returns_to_go`).
      top_episode_fraction: keep only the split's episodes whose return is in this top
        fraction of the task's split (1 = all; 0.25 = "filtered BC" on the best quarter).
      sample_weighting: how a transition is drawn inside its task: 'uniform', or tilted
        toward high 'episode_return' (trajectory weighting, Hong et al. 2023) or high
        'return_to_go' (the batches' mc_return): p proportional to exp(z / T), z the value
        standardized over the task's split, T set by sample_kl_epsilon.
      sample_kl_epsilon: KL(p || uniform) of each task's tilted draw (log 4 = 1.39 is as
        concentrated as keeping a quarter of the episodes).
    """

    def __init__(self, dataset: MultiTaskDataset, batch_size: int, split: Literal["train", "valid", "all"] = "train",
                 seed: int = 0, max_observation_dim: int | None = None, max_action_dim: int | None = None,
                 task_weighting: Literal["uniform", "transitions"] = "uniform", valid_fraction: float = 0.1,
                 reward_scale: Mapping[str, float] | None = None, normalize_observations: bool = True,
                 mc_discount: float = 0.99, top_episode_fraction: float = 1.0, mc_return_tail: str = "cut",
                 sample_weighting: str = "uniform", sample_kl_epsilon: float = 1.0):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        if split not in ("train", "valid", "all"):
            raise ValueError(f"split={split!r}; allowed: 'train', 'valid', 'all'")
        if task_weighting not in ("uniform", "transitions"):
            raise ValueError(f"task_weighting={task_weighting!r}; allowed: 'uniform', 'transitions'")
        if not 0.0 < top_episode_fraction <= 1.0:
            raise ValueError(f"top_episode_fraction={top_episode_fraction} must be in (0, 1]")
        if sample_weighting not in SAMPLE_WEIGHTINGS:
            raise ValueError(f"sample_weighting={sample_weighting!r}; allowed: {', '.join(SAMPLE_WEIGHTINGS)}")
        if not sample_kl_epsilon > 0:
            raise ValueError(f"sample_kl_epsilon={sample_kl_epsilon} must be > 0")
        self.batch_size = batch_size
        self.task_weighting = task_weighting
        self.max_observation_dim = max_observation_dim or dataset.max_observation_dim
        self.max_action_dim = max_action_dim or dataset.max_action_dim
        for t in dataset.tasks:
            if t.observation_dim > self.max_observation_dim or t.action_dim > self.max_action_dim:
                raise ValueError(
                    f"task {t.task} has observation/action dims {t.observation_dim}/{t.action_dim}, larger than "
                    f"the maxima {self.max_observation_dim}/{self.max_action_dim}")
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        splits = dataset.split_episodes(valid_fraction)
        self.task_names = dataset.task_names
        self.action_dims = np.array([t.action_dim for t in dataset.tasks])

        # Without normalization this stays None and evaluation feeds raw observations.
        self.normalizer: ObservationNormalizer | None = None
        if normalize_observations:
            self.normalizer = ObservationNormalizer.identity(len(dataset.tasks), self.max_observation_dim)
        observations, actions, rewards, discounts, mc_returns, chosen, alias = [], [], [], [], [], [], []
        obs_offset = trans_offset = 0
        self._observation_mask = np.zeros((len(dataset.tasks), self.max_observation_dim), bool)
        self._action_mask = np.zeros((len(dataset.tasks), self.max_action_dim), bool)
        for i, t in enumerate(dataset.tasks):
            a = t.arrays
            self._observation_mask[i, : t.observation_dim] = True
            self._action_mask[i, : t.action_dim] = True
            if normalize_observations:
                obs_episode = np.repeat(np.arange(t.num_episodes), a["episode_lengths"] + 1)
                train_obs = a["observations"][np.isin(obs_episode, splits[t.task][0])]
                self.normalizer.mean[i, : t.observation_dim] = train_obs.mean(axis=0)
                self.normalizer.std[i, : t.observation_dim] = np.maximum(train_obs.std(axis=0), 1e-3)
            padded = _pad(a["observations"], self.max_observation_dim)
            if normalize_observations:
                padded = self.normalizer(padded, i) * self._observation_mask[i]
            observations.append(padded)
            actions.append(_pad(a["actions"], self.max_action_dim))
            rewards.append(a["rewards"] * np.float32((reward_scale or {}).get(t.task, 1.0)))
            discounts.append(a["discounts"])
            mc_returns.append(returns_to_go(rewards[-1], a["episode_lengths"], mc_discount, mc_return_tail, a["discounts"]))
            train_eps, valid_eps = splits[t.task]
            episodes = {"train": train_eps, "valid": valid_eps, "all": np.arange(t.num_episodes)}[split]
            if top_episode_fraction < 1.0 and len(episodes):
                # Filtered BC's data: the best episodes of the split, by return.
                episodes = episodes[top_episodes(a["episode_returns"][episodes], top_episode_fraction)]
            in_split = np.isin(t.transition_episode(), episodes)
            if sample_weighting != "uniform":
                values = (a["episode_returns"][t.transition_episode()[in_split]] if sample_weighting == "episode_return"
                          else mc_returns[-1][in_split])
                keep, other = alias_tables(kl_tilted_probabilities(values, sample_kl_epsilon))
                alias.append((keep, other + sum(len(c[0]) for c in chosen)))
            chosen.append((np.flatnonzero(in_split) + trans_offset, t.transition_observation_index()[in_split] + obs_offset))
            obs_offset += a["observations"].shape[0]
            trans_offset += t.num_transitions
        self._observations = np.concatenate(observations)
        self._actions = np.concatenate(actions)
        self._rewards = np.concatenate(rewards)
        self._discounts = np.concatenate(discounts)
        self._mc_returns = np.concatenate(mc_returns)
        self._transition = np.concatenate([c[0] for c in chosen])
        self._obs_row = np.concatenate([c[1] for c in chosen])
        self._task_of = np.concatenate([np.full(len(c[0]), i, np.int32) for i, c in enumerate(chosen)])
        self.split_sizes = np.array([len(c[0]) for c in chosen])
        self._split_starts = np.concatenate([[0], np.cumsum(self.split_sizes)[:-1]])
        if self.split_sizes.sum() == 0:
            raise ValueError(f"split {split!r} holds no transitions")
        # Tasks whose split is empty (one-episode tasks in 'valid') are never drawn.
        self._tasks_present = np.flatnonzero(self.split_sizes > 0)
        self._split = SplitArrays(
            observations=self._observations, actions=self._actions, rewards=self._rewards.astype(np.float32, copy=False),
            discounts=self._discounts.astype(np.float32, copy=False), mc_returns=self._mc_returns.astype(np.float32, copy=False),
            transition=self._transition.astype(np.int32, copy=False), obs_row=self._obs_row.astype(np.int32, copy=False),
            split_starts=self._split_starts.astype(np.int32, copy=False), split_sizes=self.split_sizes.astype(np.int32, copy=False),
            task_weights=self.task_weights().astype(np.float32, copy=False), observation_mask=self._observation_mask,
            action_mask=self._action_mask,
            alias_keep=np.concatenate([k for k, _ in alias]) if alias else None,
            alias_other=np.concatenate([o for _, o in alias]).astype(np.int32) if alias else None)

    @property
    def num_transitions(self) -> int:
        return int(self.split_sizes.sum())

    def sample(self, batch_size: int | None = None) -> Batch:
        """The next batch of this sampler's own random stream."""
        return self._gather(self._positions(self._rng, batch_size or self.batch_size))

    def sample_at(self, index: int) -> Batch:
        """Batch number `index`: a pure function of (seed, index), so training can resume
        (or prefetch on another thread) and see exactly the batches it would have."""
        return self._gather(self._positions(np.random.default_rng([self._seed, index]), self.batch_size))

    def _positions(self, rng: np.random.Generator, size: int) -> np.ndarray:
        if self.task_weighting == "uniform":
            task = self._tasks_present[rng.integers(0, len(self._tasks_present), size)]
            position = self._split_starts[task] + (rng.random(size) * self.split_sizes[task]).astype(np.int64)
        else:
            position = rng.integers(0, self.num_transitions, size)
        if self._split.alias_keep is None:
            return position
        # The alias step keeps the task (its tables point inside the task's slice).
        keep = rng.random(size) < self._split.alias_keep[position]
        return np.where(keep, position, self._split.alias_other[position])

    def _gather(self, position: np.ndarray) -> Batch:
        return gather(self.split_arrays(), position, self._task_of[position])

    def split_arrays(self) -> SplitArrays:
        """This sampler's split as flat arrays, to place on the device once and sample
        there (harness.data.device_sampler.sample draws as `sample_at` does)."""
        return self._split

    def heldout_batches(self, examples_per_task: int, batch_size: int, sample: int = 0) -> list[tuple[int, Batch]]:
        """A fixed evaluation set: per task, its whole split or `examples_per_task`
        transitions of it drawn without replacement (seeded by the dataset, not the run),
        as (task index, batch) pairs of one task each, so losses can be reported per task
        and weighted across tasks as training weights them. Batches are full: the sample
        is rounded down to a multiple of `batch_size` (at least one batch). `sample`
        picks another fixed sample of the same split (0 is the one training reports)."""
        if examples_per_task < 1 or batch_size < 1:
            raise ValueError(f"examples_per_task={examples_per_task} and batch_size={batch_size} must be >= 1")
        batches = []
        for task in self._tasks_present:
            size, first = int(self.split_sizes[task]), int(self._split_starts[task])
            rng = np.random.default_rng([zlib.crc32(self.task_names[task].encode()), size, sample])
            count = min(size, examples_per_task)
            count = max(batch_size, count - count % batch_size)
            positions = first + (rng.permutation(size)[:count] if count <= size else rng.integers(0, size, count))
            # Random order inside the task: the batch means are exchangeable, which the
            # standard error of the held-out loss relies on.
            batches.extend((int(task), self._gather(p)) for p in positions.reshape(-1, batch_size))
        return batches

    def task_weights(self) -> np.ndarray:
        """How training weights the tasks (sums to 1 over tasks present): for averaging
        per-task held-out losses into one number that means what the training loss means."""
        if self.task_weighting == "uniform":
            weights = (self.split_sizes > 0).astype(np.float64)
        else:
            weights = self.split_sizes.astype(np.float64)
        return weights / weights.sum()


def _pad(array: np.ndarray, width: int) -> np.ndarray:
    return np.pad(array, ((0, 0), (0, width - array.shape[1])))


def random_batch(model, batch_size: int, seed: int = 0) -> Batch:
    """A batch of random transitions with a PACConfig's padded shapes, for benchmarks and
    tests of the step: each row a task with a random number of real observation and action
    dimensions (prefix masks, padded at the end as the Sampler pads)."""
    rng = np.random.default_rng(seed)
    obs_dims = rng.integers(max(model.max_obs_dim // 2, 1), model.max_obs_dim + 1, batch_size)
    act_dims = rng.integers(1, model.max_action_dim + 1, batch_size)
    obs_mask = np.arange(model.max_obs_dim)[None] < obs_dims[:, None]
    action_mask = np.arange(model.max_action_dim)[None] < act_dims[:, None]

    def observation() -> np.ndarray:
        return (rng.normal(size=(batch_size, model.max_obs_dim)) * obs_mask).astype(np.float32)

    return Batch(
        task_id=rng.integers(0, model.num_tasks, batch_size).astype(np.int32),
        observation=observation(), observation_mask=obs_mask,
        action=(rng.uniform(-1, 1, (batch_size, model.max_action_dim)) * action_mask).astype(np.float32),
        action_mask=action_mask, reward=rng.uniform(0, 1, batch_size).astype(np.float32),
        discount=np.ones(batch_size, np.float32), next_observation=observation(),
        mc_return=rng.uniform(0, 10, batch_size).astype(np.float32))
