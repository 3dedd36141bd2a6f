"""The on-disk dataset format, `pac-offline` (one task = one `.npz` + one `.json` spec).

Why not Minari: see the module docs in the README ("Dataset format"). In short, Minari
stores one Arrow record per episode and reads episodes back one Python object at a
time; the project needs whole tasks as contiguous arrays and a checksum-verified,
versioned spec, and dm_control tasks are not Gymnasium environments. Minari datasets
convert both ways (harness/data/minari_io.py, `pac data --import-minari/--export-minari`).
The format here is plain numpy, readable without this package:

`<task>.npz` (compressed) holds episodes back to back:
  observations   float32 [sum(len_e + 1), obs_dim]  o_0 .. o_T of every episode
  step_type      uint8   [sum(len_e + 1)]           0 first, 1 mid, 2 last (dm_env)
  actions        float32 [sum(len_e), action_dim]   in [-1, 1]
  rewards        float32 [sum(len_e)]
  discounts      float32 [sum(len_e)]                0 only at true termination
  policy_step    int64   [sum(len_e)]                behaviour snapshot's SAC update count
  snapshot       int32   [sum(len_e)]                behaviour snapshot's id, -1 = uniform random
  quality        float32 [sum(len_e)]                that policy's mean return (the quality tag)
  episode_lengths, episode_returns, episode_source, episode_policy_step,
  episode_snapshot, episode_quality                 [num_episodes]
episode_source: 0 = uniform random policy, 1 = a learner snapshot sampling its stochastic
policy (exploration noise), 2 = a learner snapshot acting with its mean action, 3 =
imported (harness/data/minari_io.py: behaviour unknown, snapshot -2, quality = the
episode's own return).

`<task>.json` is the spec: format and generator version, task, dims, action repeat,
counts, each array's shape and dtype, the npz's sha256, the normalization references
(`random_return` over `random_episodes` uniform-random episodes; `expert_return`, the
best snapshot's mean over `snapshot_eval_episodes` episodes), every snapshot's mean
return, the data's composition, seed and generator settings. The spec is written last,
after the npz has been renamed into place, so a killed writer never leaves a spec
pointing at a partial file. Datasets of older versions are refused with a one-line
error: regenerate them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from models.helpers import write_atomic, write_atomic_with

FORMAT = "pac-offline"
GENERATOR_VERSION = 2  # 2: snapshot rollouts, quality tags, D4RL-style references

SOURCE_RANDOM, SOURCE_SNAPSHOT_SAMPLED, SOURCE_SNAPSHOT_MEAN, SOURCE_IMPORTED = 0, 1, 2, 3
SNAPSHOT_RANDOM, SNAPSHOT_UNKNOWN = -1, -2
FIRST, MID, LAST = 0, 1, 2

ARRAY_DTYPES: Mapping[str, str] = {
    "observations": "float32",
    "step_type": "uint8",
    "actions": "float32",
    "rewards": "float32",
    "discounts": "float32",
    "policy_step": "int64",
    "snapshot": "int32",
    "quality": "float32",
    "episode_lengths": "int32",
    "episode_returns": "float32",
    "episode_source": "uint8",
    "episode_policy_step": "int64",
    "episode_snapshot": "int32",
    "episode_quality": "float32",
}


class DatasetError(ValueError):
    """A dataset file that is missing, corrupted, inconsistent or of another version."""


@dataclasses.dataclass(frozen=True)
class TaskData:
    """One task's dataset in memory: contiguous arrays plus its spec."""

    spec: Mapping[str, Any]
    arrays: Mapping[str, np.ndarray]

    @property
    def task(self) -> str:
        return self.spec["task"]

    @property
    def observation_dim(self) -> int:
        return int(self.spec["observation_dim"])

    @property
    def action_dim(self) -> int:
        return int(self.spec["action_dim"])

    @property
    def num_episodes(self) -> int:
        return int(self.arrays["episode_lengths"].shape[0])

    @property
    def num_transitions(self) -> int:
        return int(self.arrays["actions"].shape[0])

    def transition_episode(self) -> np.ndarray:
        """Episode id of every transition, [num_transitions]."""
        return np.repeat(np.arange(self.num_episodes), self.arrays["episode_lengths"])

    def transition_step(self) -> np.ndarray:
        """Step of every transition within its own episode (0 = the first), [num_transitions]."""
        lengths = self.arrays["episode_lengths"]
        return np.arange(self.num_transitions) - np.repeat(np.cumsum(lengths) - lengths, lengths)

    def transition_observation_index(self) -> np.ndarray:
        """Row of `observations` holding each transition's o_t (o_{t+1} is the next row)."""
        # Episode e contributes len_e transitions and len_e + 1 observations, so the
        # observation row of a transition is its own index shifted by its episode id.
        return np.arange(self.num_transitions) + self.transition_episode()


def build_arrays(episodes: list[Mapping[str, np.ndarray]], observation_dim: int,
                 action_dim: int) -> dict[str, np.ndarray]:
    """Packs recorded episodes (dicts of observations [T+1], actions, rewards, discounts,
    policy_step [T], plus per-episode scalars source, snapshot and quality) into the
    format's arrays."""
    lengths = np.array([len(e["actions"]) for e in episodes], np.int32)
    step_type = []
    for length in lengths:
        types = np.full(length + 1, MID, np.uint8)
        types[0], types[-1] = FIRST, LAST
        step_type.append(types)
    rewards = [np.asarray(e["rewards"], np.float32) for e in episodes]
    return {
        "observations": np.concatenate([e["observations"] for e in episodes]).astype(np.float32).reshape(-1, observation_dim),
        "step_type": np.concatenate(step_type),
        "actions": np.concatenate([e["actions"] for e in episodes]).astype(np.float32).reshape(-1, action_dim),
        "rewards": np.concatenate(rewards),
        "discounts": np.concatenate([e["discounts"] for e in episodes]).astype(np.float32),
        "policy_step": np.concatenate([e["policy_step"] for e in episodes]).astype(np.int64),
        "episode_lengths": lengths,
        "episode_returns": np.array([r.sum(dtype=np.float64) for r in rewards], np.float32),
        "episode_source": np.array([e["source"] for e in episodes], np.uint8),
        "episode_policy_step": np.array([e["policy_step"][0] for e in episodes], np.int64),
        "snapshot": np.repeat(np.array([e["snapshot"] for e in episodes], np.int32), lengths),
        "quality": np.repeat(np.array([e["quality"] for e in episodes], np.float32), lengths),
        "episode_snapshot": np.array([e["snapshot"] for e in episodes], np.int32),
        "episode_quality": np.array([e["quality"] for e in episodes], np.float32),
    }


def reward_range(spec: Mapping[str, Any]) -> tuple[float, float]:
    """A task's per-step reward range: the spec's (imported data), else dm_control's
    [0, 1] per control step summed over the action repeat."""
    low, high = spec.get("reward_range") or (0.0, float(spec["action_repeat"]))
    return float(low), float(high)


def reward_scale(spec: Mapping[str, Any]) -> float:
    """The factor that brings a task's per-step rewards into [-1, 1] for the critic."""
    largest = max(abs(v) for v in reward_range(spec))
    return 1.0 / largest if largest > 0 else 1.0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def paths(directory: str | os.PathLike, task: str) -> tuple[Path, Path]:
    """(npz, spec) paths of a task inside a dataset directory."""
    directory = Path(directory)
    return directory / f"{task}.npz", directory / f"{task}.json"


def write_task(directory: str | os.PathLike, task: str, arrays: Mapping[str, np.ndarray],
               spec: Mapping[str, Any]) -> Path:
    """Writes one task atomically: npz to a temp name then renamed, spec last."""
    npz_path, spec_path = paths(directory, task)
    check_values(npz_path, task, arrays, spec)  # refused before anything is written
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    # An old spec must not vouch for the new npz while it is being replaced.
    spec_path.unlink(missing_ok=True)
    write_atomic_with(npz_path, lambda f: np.savez_compressed(f, **arrays), binary=True)
    full_spec = dict(spec)
    full_spec.update(
        format=FORMAT,
        generator_version=GENERATOR_VERSION,
        task=task,
        num_episodes=int(arrays["episode_lengths"].shape[0]),
        num_transitions=int(arrays["actions"].shape[0]),
        arrays={k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()},
        sha256=_sha256(npz_path),
    )
    write_atomic(spec_path, json.dumps(full_spec, indent=2, sort_keys=True))
    return spec_path


def read_spec(directory: str | os.PathLike, task: str) -> dict[str, Any]:
    """Reads and checks a task's spec (not its arrays)."""
    npz_path, spec_path = paths(directory, task)
    if not spec_path.exists():
        raise DatasetError(f"{spec_path}: no dataset spec for task {task!r} (generate it with `pac data`)")
    try:
        spec = json.loads(spec_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"{spec_path}: corrupted spec, not valid JSON ({err.msg if hasattr(err, 'msg') else err})") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise DatasetError(f"{spec_path}: not a {FORMAT} spec (format={spec.get('format') if isinstance(spec, dict) else None!r})")
    if spec.get("generator_version") != GENERATOR_VERSION:
        raise DatasetError(
            f"{spec_path}: written by generator version {spec.get('generator_version')!r}, this is version "
            f"{GENERATOR_VERSION}; regenerate it with `pac data`"
        )
    if spec.get("task") != task:
        raise DatasetError(f"{spec_path}: spec is for task {spec.get('task')!r}, expected {task!r}")
    _check_spec_fields(spec_path, task, spec)
    return spec


# Spec fields training and `pac data --stats` read: (name, kind, lowest allowed value).
REQUIRED_FIELDS: tuple[tuple[str, type, int | None], ...] = (
    ("observation_dim", int, 1), ("action_dim", int, 1), ("action_repeat", int, 1), ("num_episodes", int, 1),
    ("num_transitions", int, 1), ("random_return", float, None), ("expert_return", float, None))


def _check_spec_fields(path: Path, task: str, spec: Mapping[str, Any]) -> None:
    """One-line DatasetError naming the file, the task and the first missing or bad field."""
    for name, kind, lowest in REQUIRED_FIELDS:
        value = spec.get(name)
        if value is None:
            raise DatasetError(f"{path}: task {task!r}: spec field {name!r} is missing")
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is int and not (number and float(value).is_integer()):
            raise DatasetError(f"{path}: task {task!r}: spec field {name}={value!r} must be an integer")
        if kind is float and not (number and np.isfinite(value)):
            raise DatasetError(f"{path}: task {task!r}: spec field {name}={value!r} must be a finite number")
        if lowest is not None and value < lowest:
            empty = " (an empty task)" if name in ("num_episodes", "num_transitions") else ""
            raise DatasetError(f"{path}: task {task!r}: spec field {name}={value!r} must be >= {lowest}{empty}")
    _check_references(path, task, spec)


def _check_references(path: Path, task: str, spec: Mapping[str, Any]) -> None:
    """Normalized returns divide by expert - random: the expert must be above the random policy."""
    random, expert = spec.get("random_return"), spec.get("expert_return")
    for name, value in (("random_return", random), ("expert_return", expert)):
        if value is not None and not (isinstance(value, (int, float)) and np.isfinite(value)):
            raise DatasetError(f"{path}: task {task!r}: spec field {name}={value!r} must be a finite number")
    if random is not None and expert is not None and not expert > random:
        raise DatasetError(f"{path}: task {task!r}: spec field expert_return={expert!r} must be above "
                           f"random_return={random!r} (normalized returns divide by their difference)")


# Arrays whose every value must be finite (NaN or inf would reach the losses as if they
# were the learner's fault, or the references as nonsense).
FINITE_ARRAYS = ("observations", "actions", "rewards", "discounts", "quality", "episode_returns", "episode_quality")


def check_values(path: str | os.PathLike, task: str, arrays: Mapping[str, np.ndarray],
                 spec: Mapping[str, Any]) -> None:
    """Data refused at the door, on writing (`pac data`, `--import-minari`) and loading: a
    task with no transitions, a non-finite value in any float array, references whose
    expert is not above random. One-line DatasetError naming the file, the task and the field."""
    lengths = arrays.get("episode_lengths")
    if lengths is None or len(lengths) == 0 or int(np.sum(lengths)) == 0:
        raise DatasetError(f"{path}: task {task!r}: field episode_lengths holds no transitions (an empty task)")
    for name in FINITE_ARRAYS:
        if name not in arrays:
            continue
        values = np.asarray(arrays[name])
        finite = np.isfinite(values)
        if not finite.all():
            where = np.argwhere(~finite)[0]
            raise DatasetError(f"{path}: task {task!r}: field {name} has {int((~finite).sum())} non-finite values "
                               f"(first {values[tuple(where)]} at index {tuple(int(i) for i in where)})")
    _check_references(path, task, spec)


def read_task(directory: str | os.PathLike, task: str, verify_checksum: bool = True) -> TaskData:
    """Loads one task into contiguous numpy arrays, checking it against its spec."""
    spec = read_spec(directory, task)
    npz_path, _ = paths(directory, task)
    if not npz_path.exists():
        raise DatasetError(f"{npz_path}: array file missing for task {task!r}")
    if verify_checksum and _sha256(npz_path) != spec.get("sha256"):
        raise DatasetError(f"{npz_path}: corrupted or truncated (sha256 differs from its spec)")
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            arrays = {name: np.ascontiguousarray(npz[name]) for name in npz.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise DatasetError(f"{npz_path}: unreadable array file ({type(err).__name__}: {err})") from None
    _check_arrays(npz_path, spec, arrays)
    check_values(npz_path, task, arrays, spec)
    return TaskData(spec=spec, arrays=arrays)


def _check_arrays(path: Path, spec: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    def fail(problem: str):
        raise DatasetError(f"{path}: spec does not match arrays: {problem}")

    missing = sorted(set(ARRAY_DTYPES) - set(arrays))
    if missing:
        fail(f"missing arrays {missing}")
    declared = spec.get("arrays", {})
    for name, dtype in ARRAY_DTYPES.items():
        array = arrays[name]
        if str(array.dtype) != dtype:
            fail(f"{name} has dtype {array.dtype}, expected {dtype}")
        want = declared.get(name, {}).get("shape")
        if want is not None and list(array.shape) != list(want):
            fail(f"{name} has shape {list(array.shape)}, spec says {want}")
    obs_dim, act_dim = spec.get("observation_dim"), spec.get("action_dim")
    if arrays["observations"].ndim != 2 or arrays["observations"].shape[1] != obs_dim:
        fail(f"observations have shape {list(arrays['observations'].shape)}, spec says observation_dim={obs_dim}")
    if arrays["actions"].ndim != 2 or arrays["actions"].shape[1] != act_dim:
        fail(f"actions have shape {list(arrays['actions'].shape)}, spec says action_dim={act_dim}")
    lengths = arrays["episode_lengths"]
    num_transitions = int(lengths.sum())
    if num_transitions != spec.get("num_transitions") or len(lengths) != spec.get("num_episodes"):
        fail(f"{len(lengths)} episodes / {num_transitions} transitions, spec says "
             f"{spec.get('num_episodes')} / {spec.get('num_transitions')}")
    for name in ("actions", "rewards", "discounts", "policy_step", "snapshot", "quality"):
        if arrays[name].shape[0] != num_transitions:
            fail(f"{name} has {arrays[name].shape[0]} rows, episode lengths sum to {num_transitions}")
    if arrays["observations"].shape[0] != num_transitions + len(lengths):
        fail(f"observations have {arrays['observations'].shape[0]} rows, expected {num_transitions + len(lengths)}")


def is_complete(directory: str | os.PathLike, task: str, expect: Mapping[str, Any] | None = None) -> bool:
    """Whether a task's files exist, match, and were made with the `expect`ed settings.

    Used for caching: a complete task is reused instead of regenerated.
    """
    try:
        spec = read_spec(directory, task)
        npz_path, _ = paths(directory, task)
        if not npz_path.exists() or _sha256(npz_path) != spec.get("sha256"):
            return False
    except DatasetError:
        return False
    return all(spec.get("generator", {}).get(k) == v for k, v in (expect or {}).items())


def list_tasks(directory: str | os.PathLike) -> list[str]:
    """Tasks with a spec in a dataset directory, sorted."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"{directory}: dataset directory does not exist (generate it with `pac data`)")
    return sorted(p.stem for p in directory.glob("*.json") if not p.name.startswith(".") and p.name != "dataset.json")
