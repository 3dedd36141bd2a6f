"""Minari datasets in and out of the `pac-offline` format.

Import (`pac data --import-minari ID_OR_PATH ... --out DIR`): a Minari dataset already on
disk (its id under MINARI_DATASETS_PATH, default ~/.minari/datasets, or the path of its
folder; nothing is downloaded) becomes one task of DIR, beside any dm_control tasks
there, so several imported datasets and generated tasks form one multi-task dataset.
  - Episodes go back to back as in our own data; a termination is discount 0 and a
    truncation (a time limit) keeps discount 1, so the two stay apart.
  - Observations and actions must be flat Boxes. Actions are mapped from the Box's bounds
    onto [-1, 1] (the policy's range); the bounds are kept for evaluation and export.
  - References: `random_return` is the dataset's `ref_min_score` where it has one,
    otherwise the mean return of uniform-random episodes in the recovered environment
    (as for our own data); `expert_return` is `ref_max_score`, otherwise the best
    episode's return in the data. The D4RL pair (ref_min_score, ref_max_score) is kept
    as `d4rl_reference` where the dataset has both, so evaluation reports the D4RL score.
  - The environment: `dataset.recover_environment()` must work (its EnvSpec is stored
    in the task's spec and rebuilt with gymnasium.make at evaluation), or the dataset
    must be one we exported from a dm_control task (which it then names).

Export (`pac data --export-minari DIR TASK ...`): writes our tasks as Minari datasets
(arrow by default, or hdf5 where h5py is installed) that `minari.load_dataset` opens:
Box spaces with the task's dims, actions in their environment's bounds, our references
as ref_min_score / ref_max_score, and our task spec under the metadata key `pac_task`.
Minari and Gymnasium are optional: `pip install 'pac-scaling[minari]'`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from harness.data import storage
from harness.data.gymnasium_env import INSTALL_HINT, environment_entry, to_bounds, to_unit

# Episodes of the uniform-random policy behind `random_return` when a dataset has no
# ref_min_score (as many as `pac data` rolls out for its own tasks).
RANDOM_EPISODES = 20
EXPORT_FORMATS = ("arrow", "hdf5")
_TASK_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def _minari():
    try:
        import minari
    except ImportError:
        raise ImportError(f"Minari import and export need minari: {INSTALL_HINT}") from None
    return minari


def _first_line(err: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def datasets_root() -> Path:
    """Where Minari keeps datasets (its own rule: MINARI_DATASETS_PATH, else ~/.minari/datasets)."""
    return Path(os.environ.get("MINARI_DATASETS_PATH") or Path.home() / ".minari" / "datasets")


def task_name(dataset_id: str) -> str:
    """Our task name of an imported dataset: its id with '/' as '-' (a file name)."""
    return _TASK_NAME.sub("-", dataset_id.strip("/")).strip("-")


def open_dataset(id_or_path: str):
    """A MinariDataset from disk: a folder (the dataset's, or its data/ folder) or an id."""
    minari = _minari()
    path = Path(id_or_path).expanduser()
    if path.is_dir():
        data_path = path / "data" if (path / "data").is_dir() else path
        try:
            return minari.MinariDataset(data_path)
        except Exception as err:  # noqa: BLE001 - minari raises whatever its storage does
            raise storage.DatasetError(f"{id_or_path}: not a Minari dataset folder ({_first_line(err)})") from None
    try:
        return minari.load_dataset(id_or_path, download=False)
    except FileNotFoundError:
        local = sorted(minari.list_local_datasets())
        raise storage.DatasetError(
            f"Minari dataset {id_or_path!r} is not on disk under {datasets_root()} (MINARI_DATASETS_PATH) and is "
            f"not a folder; nothing is downloaded. Local datasets: {', '.join(local) if local else 'none'}") from None
    except Exception as err:  # noqa: BLE001 - a malformed id, a damaged folder
        raise storage.DatasetError(f"Minari dataset {id_or_path!r} cannot be opened ({_first_line(err)})") from None


def _box(space: Any, what: str, source: str) -> tuple[int, Any]:
    """The flat size of a Box space, or a one-line error naming what the space is."""
    import gymnasium

    if not isinstance(space, gymnasium.spaces.Box) or space.shape is None or len(space.shape) != 1:
        raise storage.DatasetError(f"{source}: its {what} space is {space}; only flat Box spaces can be imported")
    return int(space.shape[0]), space


def _environment(dataset, source: str, metadata: Mapping[str, Any], low: np.ndarray,
                 high: np.ndarray) -> tuple[dict[str, Any], Any]:
    """(the task spec's "environment" entry, with the action bounds [low, high]; a live
    environment for random rollouts, or None for a dm_control task)."""
    pac_task = metadata.get("pac_task")
    if isinstance(pac_task, Mapping) and (pac_task.get("environment") or {}).get("kind", "dm_control") == "dm_control":
        name = (pac_task.get("environment") or {}).get("task", pac_task.get("task"))
        return {"kind": "dm_control", "task": name}, None
    if dataset.spec.env_spec is None:
        raise storage.DatasetError(f"{source}: its environment cannot be recovered (the dataset has no env_spec), "
                                   f"so its policies could not be evaluated; only datasets with an environment import")
    try:
        env = dataset.recover_environment()
    except Exception as err:  # noqa: BLE001 - gymnasium raises whatever the environment's module does
        raise storage.DatasetError(f"{source}: its environment {dataset.spec.env_spec.id!r} cannot be recovered "
                                   f"({_first_line(err)})") from None
    return environment_entry(dataset.spec.env_spec.to_json(), low, high), env


def _random_returns(env, episodes: int, seed: int) -> list[float]:
    """Returns of uniform-random episodes in a Gymnasium environment."""
    env.action_space.seed(seed)
    returns = []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return returns


def _unreadable_episode(source: str, err: Exception) -> storage.DatasetError:
    """A missing or damaged episode file fails inside minari or pyarrow naming only a path
    (`error: .../data/2`): say which dataset, in one line."""
    detail = (str(err).strip().splitlines() or [""])[0][:300]
    return storage.DatasetError(f"{source}: its episode files are missing or unreadable ({type(err).__name__}: "
                                f"{detail})")


def _episodes(dataset, source: str, low: np.ndarray, high: np.ndarray, obs_dim: int,
              action_dim: int) -> list[dict[str, Any]]:
    episodes = []
    try:
        iterator = iter(dataset.iterate_episodes())
    except (OSError, ValueError, KeyError) as err:
        raise _unreadable_episode(source, err) from None
    while True:
        try:
            episode = next(iterator)
        except StopIteration:
            break
        except (OSError, ValueError, KeyError) as err:
            raise _unreadable_episode(source, err) from None
        observations = np.asarray(episode.observations, np.float32)
        length = len(episode.actions)
        if length == 0:
            continue
        if observations.shape != (length + 1, obs_dim):
            raise storage.DatasetError(f"{source}: episode {episode.id} has observations of shape "
                                       f"{list(observations.shape)}; expected [{length + 1}, {obs_dim}]")
        terminations = np.asarray(episode.terminations, bool)
        discounts = np.where(terminations, 0.0, 1.0).astype(np.float32)
        actions = to_unit(np.asarray(episode.actions).reshape(length, action_dim), low, high)
        rewards = np.asarray(episode.rewards, np.float32)
        # The behaviour policy is unknown: an episode's quality tag is its own return.
        episodes.append({"observations": observations, "actions": actions, "rewards": rewards,
                         "discounts": discounts, "policy_step": np.zeros(length, np.int64),
                         "source": storage.SOURCE_IMPORTED, "snapshot": storage.SNAPSHOT_UNKNOWN,
                         "quality": float(rewards.sum(dtype=np.float64))})
    if not episodes:
        raise storage.DatasetError(f"{source}: the dataset has no episodes with transitions")
    return episodes


def import_dataset(id_or_path: str, out: str | os.PathLike, name: str | None = None,
                   random_episodes: int = RANDOM_EPISODES, seed: int = 0) -> str:
    """Imports one Minari dataset as a task of the dataset folder `out`; returns its name."""
    name, arrays, spec = _converted(id_or_path, name, random_episodes, seed)
    storage.write_task(out, name, arrays, spec)
    return name


def _converted(id_or_path: str, name: str | None, random_episodes: int,
               seed: int) -> tuple[str, dict[str, np.ndarray], dict[str, Any]]:
    """(task name, arrays, spec) of a Minari dataset, checked as storage would on writing."""
    dataset = open_dataset(id_or_path)
    metadata = dict(dataset.storage.metadata)
    dataset_id = str(metadata.get("dataset_id") or id_or_path)
    source = f"Minari dataset {dataset_id!r}"
    obs_dim, _ = _box(dataset.observation_space, "observation", source)
    action_dim, action_space = _box(dataset.action_space, "action", source)
    low, high = np.asarray(action_space.low, np.float64), np.asarray(action_space.high, np.float64)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise storage.DatasetError(f"{source}: its action space {action_space} is unbounded; a bounded Box is needed")
    environment, env = _environment(dataset, source, metadata, low, high)
    episodes = _episodes(dataset, source, low, high, obs_dim, action_dim)
    arrays = storage.build_arrays(episodes, obs_dim, action_dim)
    if env is not None and env.spec is not None and env.spec.max_episode_steps is None:
        # An environment without a time limit could run an episode forever (random
        # references, evaluation): it gets the data's longest episode as its limit.
        from gymnasium.wrappers import TimeLimit

        environment["max_episode_steps"] = int(arrays["episode_lengths"].max())
        env = TimeLimit(env, environment["max_episode_steps"])

    ref_min, ref_max = metadata.get("ref_min_score"), metadata.get("ref_max_score")
    pac_task = metadata.get("pac_task") if isinstance(metadata.get("pac_task"), Mapping) else {}
    if ref_min is not None:
        random_return, measured = float(ref_min), 0
    elif env is not None:
        returns = _random_returns(env, random_episodes, seed)
        random_return, measured = float(np.mean(returns)), len(returns)
    else:  # one of ours: its own reference came along
        random_return, measured = float(pac_task["random_return"]), int(pac_task.get("random_episodes", 0))
    expert_return = float(ref_max) if ref_max is not None else float(arrays["episode_returns"].max())
    if env is not None:
        env.close()
    name = name or task_name(dataset_id)
    spec = {
        "observation_dim": obs_dim, "action_dim": action_dim,
        "action_repeat": int(pac_task.get("action_repeat", 1)),
        # The critic sees rewards divided by their largest magnitude (storage.reward_scale):
        # the data's range, or for a task of ours, its own rule.
        "reward_range": (pac_task.get("reward_range") if pac_task else
                         [float(arrays["rewards"].min()), float(arrays["rewards"].max())]),
        "seed": seed, "random_return": random_return, "random_episodes": measured, "expert_return": expert_return,
        "snapshots": [], "composition": {},
        "environment": environment,
        "d4rl_reference": [float(ref_min), float(ref_max)] if ref_min is not None and ref_max is not None else None,
        "source": {"kind": "minari", "dataset_id": dataset_id, "minari_version": metadata.get("minari_version"),
                   "algorithm_name": metadata.get("algorithm_name"), "ref_min_score": ref_min,
                   "ref_max_score": ref_max, "path": str(id_or_path)},
    }
    storage.check_values(source, name, arrays, spec)  # named by its source, not the file it would become
    return name, arrays, spec


@contextlib.contextmanager
def _datasets_path(path: Path) -> Iterator[None]:
    """Minari writes where MINARI_DATASETS_PATH points when it is called: pointed at a
    staging folder for the length of one export (the data command is single-threaded)."""
    before = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MINARI_DATASETS_PATH")
        else:
            os.environ["MINARI_DATASETS_PATH"] = before


def _episode_buffers(data: storage.TaskData, low: np.ndarray, high: np.ndarray) -> list[Any]:
    """Minari's EpisodeBuffers of one task: actions back on their environment's bounds;
    discount 0 is a termination, any other episode end a truncation."""
    from minari.data_collector import EpisodeBuffer

    arrays = data.arrays
    buffers = []
    obs_start = act_start = 0
    for length in arrays["episode_lengths"]:
        length = int(length)
        terminations = arrays["discounts"][act_start:act_start + length] == 0.0
        truncations = np.zeros(length, bool)
        truncations[-1] = not terminations[-1]
        buffers.append(EpisodeBuffer(
            observations=arrays["observations"][obs_start:obs_start + length + 1],
            actions=to_bounds(arrays["actions"][act_start:act_start + length], low, high).astype(np.float32),
            rewards=arrays["rewards"][act_start:act_start + length],
            terminations=terminations, truncations=truncations, infos={}))
        obs_start, act_start = obs_start + length + 1, act_start + length
    return buffers


def export_id(task: str) -> str:
    """The Minari id a task is exported under by default."""
    return f"pac/{task}/offline-v0"


def check_exportable(task: str, dataset_id: str | None = None) -> Path:
    """The folder an export of `task` would make; a one-line DatasetError if it exists
    (Minari datasets are never overwritten)."""
    dataset_id = dataset_id or export_id(task)
    target = datasets_root() / dataset_id
    if target.exists():
        raise storage.DatasetError(f"cannot export {task} as Minari dataset {dataset_id!r}: {target} already exists "
                                   f"(Minari datasets are never overwritten; remove it or pick another id)")
    return target


def export_task(dataset_dir: str | os.PathLike, task: str, dataset_id: str | None = None,
                data_format: str = "arrow") -> str:
    """Writes one of our tasks as a Minari dataset under MINARI_DATASETS_PATH; returns its id.

    Atomic: the dataset is made complete (data, then our metadata) in a hidden staging
    folder of the datasets root, which Minari does not list, and renamed into place, so
    an export that fails or is killed never leaves a dataset that loads without its
    references, nor an id that blocks the next try."""
    minari = _minari()
    import gymnasium
    from minari.dataset.minari_dataset import parse_dataset_id
    from minari.namespace import create_namespace, list_local_namespaces

    if data_format not in EXPORT_FORMATS:
        raise ValueError(f"data_format={data_format!r}; allowed: {', '.join(EXPORT_FORMATS)}")
    data = storage.read_task(dataset_dir, task)
    dataset_id = dataset_id or export_id(task)
    root = datasets_root()
    target = check_exportable(task, dataset_id)
    environment = dict(data.spec.get("environment") or {"kind": "dm_control", "task": task})
    low = np.asarray(environment.get("action_low", -np.ones(data.action_dim)), np.float32)
    high = np.asarray(environment.get("action_high", np.ones(data.action_dim)), np.float32)
    kwargs: dict[str, Any] = {}
    if environment.get("kind") == "gymnasium":
        from gymnasium.envs.registration import EnvSpec

        env_spec = EnvSpec.from_json(environment["env_spec"])
        if environment.get("max_episode_steps"):  # the limit the import gave it goes with it
            env_spec = dataclasses.replace(env_spec, max_episode_steps=int(environment["max_episode_steps"]))
        kwargs["env"] = env_spec
    observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (data.observation_dim,), np.float32)
    action_space = gymnasium.spaces.Box(low, high, (data.action_dim,), np.float32)
    spec = {k: v for k, v in data.spec.items() if k not in ("arrays", "sha256")}
    spec["environment"] = environment
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".pac-export-", dir=root))
    try:
        with _datasets_path(staging), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # minari's reminders to name an author and a code link
            exported = minari.create_dataset_from_buffers(
                dataset_id, _episode_buffers(data, low, high), observation_space=observation_space,
                action_space=action_space, algorithm_name="pac-scaling export",
                description=f"pac-offline task {task} exported by pac-scaling", data_format=data_format, **kwargs)
            # Our references as D4RL's (minari keeps them only with an environment to check
            # them in, so they are set here), and our spec for the way back.
            exported.storage.update_metadata({"ref_min_score": float(data.spec["random_return"]),
                                              "ref_max_score": float(data.spec["expert_return"]), "pac_task": spec})
        namespace = parse_dataset_id(dataset_id)[0]
        if namespace is not None and namespace not in list_local_namespaces():
            create_namespace(namespace)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging / dataset_id, target)
    except (ValueError, ImportError, OSError) as err:  # a malformed id; hdf5 without h5py; a full disk
        raise storage.DatasetError(f"cannot export {task} as Minari dataset {dataset_id!r}: {_first_line(err)}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dataset_id


def import_datasets(ids_or_paths: Iterable[str], out: str | os.PathLike, seed: int = 0) -> list[str]:
    """Imports each dataset as a task of `out` (one multi-task dataset); returns their names.
    Every dataset is opened first, so a mistyped id fails before any task is written."""
    sources = list(ids_or_paths)
    for source in sources:
        open_dataset(source)
    # Every dataset converted and checked (NaN, a Discrete action space, ...) before any is
    # written: a refused import leaves the folder as it was.
    converted = [_converted(source, None, RANDOM_EPISODES, seed) for source in sources]
    written = {}  # an id and its folder are one dataset (one name): written once
    for name, arrays, spec in converted:
        if name not in written:
            written[name] = storage.write_task(out, name, arrays, spec)
    return [name for name, _, _ in converted]
