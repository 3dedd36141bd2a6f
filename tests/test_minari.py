"""Minari in and out: a dataset recorded locally with minari.DataCollector around the real
Gymnasium MuJoCo InvertedPendulum, imported beside dm_control tasks, trained on, evaluated
in its own environment (D4RL score); our task exported and imported back; bad inputs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from pac import cli

minari = pytest.importorskip("minari")
gym = pytest.importorskip("gymnasium")

from minari.data_collector import EpisodeBuffer  # noqa: E402

from harness.config import TrainConfig  # noqa: E402
from harness.data import minari_io, storage, tasks  # noqa: E402
from harness.builder import plan_run  # noqa: E402
from harness.train import train  # noqa: E402

PENDULUM_GAINS = np.array([1.0, 10.0, 1.0, 1.0])  # a PD controller that balances InvertedPendulum-v5
MAX_STEPS = 40


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def _record_pendulum(dataset_id: str, episodes: int = 8, refs: bool = True, seed: int = 0):
    """Episodes of a PD controller with per-episode action noise (from none to swamping),
    so the data mixes balanced and falling episodes, as offline data does."""
    collector = minari.DataCollector(gym.make("InvertedPendulum-v5", max_episode_steps=MAX_STEPS),
                                     data_format="arrow")
    rng = np.random.default_rng(seed)
    for episode in range(episodes):
        observation, _ = collector.reset(seed=seed + episode)
        noise, done = 3.0 * episode / max(episodes - 1, 1), False
        while not done:
            action = np.clip(PENDULUM_GAINS @ observation + noise * rng.normal(), -3.0, 3.0)
            observation, _, terminated, truncated, _ = collector.step(np.array([action], np.float32))
            done = terminated or truncated
    kwargs = dict(ref_min_score=5.0, ref_max_score=float(MAX_STEPS)) if refs else {}
    with pytest.warns(UserWarning):  # minari asks for a code_permalink and an author
        dataset = collector.create_dataset(dataset_id=dataset_id, algorithm_name="noisy PD controller", **kwargs)
    collector.close()
    return dataset


def _record_reacher(dataset_id: str, episodes: int = 4, seed: int = 0):
    """Uniform-random Reacher-v5 episodes: 10 observations, 2 actions, negative rewards, no
    termination (every episode is truncated), no reference scores."""
    collector = minari.DataCollector(gym.make("Reacher-v5", max_episode_steps=MAX_STEPS), data_format="arrow")
    collector.action_space.seed(seed)
    for episode in range(episodes):
        collector.reset(seed=seed + episode)
        done = False
        while not done:
            _, _, terminated, truncated, _ = collector.step(collector.action_space.sample())
            done = terminated or truncated
    with pytest.warns(UserWarning):
        dataset = collector.create_dataset(dataset_id=dataset_id, algorithm_name="uniform random")
    collector.close()
    return dataset


def test_import_train_with_dm_control_and_evaluate_in_gymnasium(minari_root, tiny_dataset_dir, tmp_path, capsys):
    source = _record_pendulum("test/invertedpendulum/mixed-v0")
    _record_reacher("test/reacher/random-v0")
    data = tmp_path / "mixed"
    shutil.copytree(tiny_dataset_dir, data)
    # Two Minari datasets in one command, beside the dm_control tasks already in the folder.
    assert cli.main(["data", "--import-minari", "test/invertedpendulum/mixed-v0", "test/reacher/random-v0",
                     "--out", str(data)]) == 0
    assert "test-reacher-random-v0" in capsys.readouterr().out  # the statistics report of what came in
    name, reacher = "test-invertedpendulum-mixed-v0", "test-reacher-random-v0"
    assert set(storage.list_tasks(data)) == {"cartpole-swingup", "point_mass-easy", name, reacher}

    task = storage.read_task(data, name)
    episodes = list(source.iterate_episodes())
    assert task.num_episodes == len(episodes) and task.num_transitions == sum(len(e.actions) for e in episodes)
    # Terminations (the pole fell) are discount 0; truncations (the time limit) keep 1.
    ends = np.cumsum(task.arrays["episode_lengths"]) - 1
    fell = np.array([e.terminations[-1] for e in episodes])
    cut = np.array([e.truncations[-1] for e in episodes])
    assert fell.any() and cut.any()
    np.testing.assert_array_equal(task.arrays["discounts"][ends] == 0.0, fell)
    assert (task.arrays["discounts"] == 0.0).sum() == fell.sum()
    # Actions were on [-3, 3]: now on [-1, 1], the bounds kept for the environment.
    np.testing.assert_allclose(task.arrays["actions"] * 3.0, np.concatenate([e.actions for e in episodes]), rtol=1e-6)
    assert task.spec["environment"]["kind"] == "gymnasium" and task.spec["environment"]["action_high"] == [3.0]
    assert (task.spec["random_return"], task.spec["expert_return"]) == (5.0, MAX_STEPS)
    assert task.spec["d4rl_reference"] == [5.0, MAX_STEPS]
    # InvertedPendulum-v5 pays 1 a step the pole stands, 0 on the step it falls.
    assert task.spec["reward_range"] == [0.0, 1.0] and storage.reward_scale(task.spec) == 1.0

    # Reacher: 10 observations and 2 actions beside cartpole's 5 and 1; rewards below 0.
    reach = storage.read_task(data, reacher)
    assert (reach.observation_dim, reach.action_dim) == (10, 2)
    assert reach.spec["reward_range"][1] < 0 and storage.reward_scale(reach.spec) == pytest.approx(
        1.0 / abs(reach.spec["reward_range"][0]))
    assert reach.spec["random_episodes"] == minari_io.RANDOM_EPISODES and reach.spec["d4rl_reference"] is None
    assert (reach.arrays["discounts"] == 1.0).all()  # truncated at the time limit, never terminated

    config = TrainConfig(preset="tiny", dataset=str(data), steps=12, batch_size=16, log_every=6, valid_every=12,
                         checkpoint_every=12, valid_examples_per_task=32, valid_batch_size=16, eval_episodes=2,
                         num_sampled_actions=4)
    plan = plan_run(config)
    assert (plan.model.max_obs_dim, plan.model.max_action_dim, plan.model.num_tasks) == (10, 2, 4)
    assert plan.model.v_min < 0  # a task's rewards go below 0: the critic's support does too
    result = train(config, tmp_path / "run", progress=False)
    pendulum = result["returns"][name]
    assert 1.0 <= pendulum["return"] <= MAX_STEPS  # real episodes of the real environment
    assert pendulum["d4rl_score"] == pytest.approx(100.0 * (pendulum["return"] - 5.0) / (MAX_STEPS - 5.0))
    assert pendulum["d4rl_score"] == pytest.approx(100.0 * pendulum["normalized_return"])
    print(f"tiny model, 12 updates: InvertedPendulum return {pendulum['return']:.1f}, "
          f"D4RL score {pendulum['d4rl_score']:.1f}; Reacher return {result['returns'][reacher]['return']:.1f}")
    assert -5.0 * MAX_STEPS < result["returns"][reacher]["return"] < 0.0
    for task in ("cartpole-swingup", reacher):  # no D4RL references: no D4RL score
        assert "d4rl_score" not in result["returns"][task]
    eval_row = pd.read_csv(tmp_path / "run" / "metrics.csv").query("split == 'eval'")
    assert eval_row[f"d4rl_score/{name}"].iloc[0] == pytest.approx(pendulum["d4rl_score"])
    assert eval_row[f"return/{reacher}"].iloc[0] == pytest.approx(result["returns"][reacher]["return"])


def test_references_are_measured_where_the_dataset_has_none(minari_root, tmp_path):
    _record_pendulum("test/invertedpendulum/norefs-v0", episodes=4, refs=False)
    name = minari_io.import_dataset("test/invertedpendulum/norefs-v0", tmp_path / "data", random_episodes=5)
    spec = storage.read_spec(tmp_path / "data", name)
    task = storage.read_task(tmp_path / "data", name)
    # As for our own data: uniform-random episodes in the environment; the best episode.
    assert spec["random_episodes"] == 5 and 1.0 <= spec["random_return"] < 15.0
    assert spec["expert_return"] == float(task.arrays["episode_returns"].max())
    assert spec["d4rl_reference"] is None


def test_an_environment_without_time_limit_gets_the_longest_episode(minari_root, tmp_path):
    """Else a random reference or an evaluation episode could run forever."""
    _record_pendulum("test/invertedpendulum/nolimit-v0", episodes=3)
    metadata_path = minari_root / "test" / "invertedpendulum" / "nolimit-v0" / "data" / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    env_spec = json.loads(metadata["env_spec"])
    env_spec["max_episode_steps"] = None
    metadata["env_spec"] = json.dumps(env_spec)
    metadata_path.write_text(json.dumps(metadata))
    assert minari.load_dataset("test/invertedpendulum/nolimit-v0").recover_environment().spec.max_episode_steps is None

    name = minari_io.import_dataset("test/invertedpendulum/nolimit-v0", tmp_path / "data", random_episodes=2)
    task = storage.read_task(tmp_path / "data", name)
    limit = int(task.arrays["episode_lengths"].max())
    assert task.spec["environment"]["max_episode_steps"] == limit == MAX_STEPS
    env = tasks.environment_for(task.spec, seed=0)
    observation, steps, last = env.reset(), 0, False
    while not last:  # the PD controller balances: only the limit ends the episode
        action = np.clip(PENDULUM_GAINS @ observation, -3.0, 3.0) / 3.0  # on [-1, 1], as the policy acts
        observation, _, discount, last = env.step(np.array([action]))
        steps += 1
    assert (steps, discount) == (limit, 1.0)
    env.close()
    # Exported, the limit goes with its EnvSpec.
    exported = minari.load_dataset(minari_io.export_task(tmp_path / "data", name))
    assert exported.recover_environment().spec.max_episode_steps == limit


def test_export_then_import_round_trip(minari_root, tiny_dataset_dir, tmp_path):
    dataset_id = minari_io.export_task(tiny_dataset_dir, "point_mass-easy")
    loaded = minari.load_dataset(dataset_id)  # minari itself opens it
    original = storage.read_task(tiny_dataset_dir, "point_mass-easy")
    assert loaded.total_episodes == original.num_episodes and loaded.total_steps == original.num_transitions
    assert loaded.storage.metadata["ref_max_score"] == original.spec["expert_return"]

    name = minari_io.import_dataset(dataset_id, tmp_path / "back")
    back = storage.read_task(tmp_path / "back", name)
    for array in ("observations", "step_type", "actions", "rewards", "discounts", "episode_lengths", "episode_returns"):
        np.testing.assert_array_equal(back.arrays[array], original.arrays[array], err_msg=array)
    # A dm_control task comes back naming its environment, references and action repeat.
    assert back.spec["environment"] == {"kind": "dm_control", "task": "point_mass-easy"}
    assert back.spec["action_repeat"] == original.spec["action_repeat"]
    assert storage.reward_scale(back.spec) == storage.reward_scale(original.spec) == 0.5  # 1 / action repeat
    assert (back.spec["random_return"], back.spec["expert_return"]) == (original.spec["random_return"],
                                                                        original.spec["expert_return"])


def test_gymnasium_task_round_trip(minari_root, tmp_path):
    """An imported Gymnasium task exported again: its environment and bounds go with it."""
    _record_pendulum("test/invertedpendulum/trip-v0", episodes=4)
    name = minari_io.import_dataset("test/invertedpendulum/trip-v0", tmp_path / "data")
    original = storage.read_task(tmp_path / "data", name)
    dataset_id = minari_io.export_task(tmp_path / "data", name)
    loaded = minari.load_dataset(dataset_id)
    env = loaded.recover_environment()  # the same environment, its time limit included
    assert (env.spec.id, env.spec.max_episode_steps) == ("InvertedPendulum-v5", MAX_STEPS)
    env.close()
    assert loaded.action_space.high.tolist() == [3.0]
    np.testing.assert_allclose(np.concatenate([e.actions for e in loaded.iterate_episodes()]),
                               3.0 * original.arrays["actions"], rtol=1e-6)

    back = storage.read_task(tmp_path / "back", minari_io.import_dataset(dataset_id, tmp_path / "back"))
    for array in ("observations", "step_type", "rewards", "discounts", "episode_lengths", "episode_returns"):
        np.testing.assert_array_equal(back.arrays[array], original.arrays[array], err_msg=array)
    # [-1, 1] -> [-3, 3] -> [-1, 1] in float32: equal up to rounding.
    np.testing.assert_allclose(back.arrays["actions"], original.arrays["actions"], atol=1e-6)
    for key in ("environment", "d4rl_reference", "random_return", "expert_return", "reward_range"):
        assert back.spec[key] == original.spec[key], key
    # Nothing of the staging folder is left, and Minari lists exactly what was made.
    assert not list(minari_root.glob(".pac-export-*"))
    assert sorted(minari.list_local_datasets()) == ["pac/test-invertedpendulum-trip-v0/offline-v0",
                                                    "test/invertedpendulum/trip-v0"]


def test_hdf5_export(minari_root, tiny_dataset_dir):
    """hdf5 where h5py is installed (it is not part of the extra); else a one-line error
    that leaves nothing behind, so the same id can be exported as arrow right after."""
    try:
        import h5py  # noqa: F401
    except ImportError:
        with pytest.raises(storage.DatasetError, match="h5py") as err:
            minari_io.export_task(tiny_dataset_dir, "point_mass-easy", data_format="hdf5")
        assert len(str(err.value).splitlines()) == 1
        assert minari.list_local_datasets() == {} and not list(minari_root.glob(".pac-export-*"))
        minari_io.export_task(tiny_dataset_dir, "point_mass-easy")
    else:
        minari_io.export_task(tiny_dataset_dir, "point_mass-easy", data_format="hdf5")
    loaded = minari.load_dataset("pac/point_mass-easy/offline-v0")
    assert loaded.total_steps == storage.read_task(tiny_dataset_dir, "point_mass-easy").num_transitions


NO_EXTRAS = """
import sys

class Missing:  # as if the [minari] and [tensorboard] extras were not installed
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("minari", "gymnasium", "tensorboardX"):
            raise ModuleNotFoundError(f"No module named {name!r}")

sys.meta_path.insert(0, Missing())
import harness.train, harness.evaluation, harness.data.minari_io, harness.data.tasks  # the core imports
from harness.metrics_log import MetricsWriter
from pac import cli

try:
    MetricsWriter(sys.argv[1] + "/metrics.csv", tensorboard=True)
except ImportError as err:
    print("tensorboard:", err)
from harness.config import TrainConfig
try:  # refused before the run folder or the dataset is touched
    harness.train.train(TrainConfig(steps=1, dataset=sys.argv[1] + "/none", tensorboard=True), sys.argv[1] + "/run")
except ImportError as err:
    import os
    print("train:", err, "| run folder made:", os.path.exists(sys.argv[1] + "/run"))
sys.exit(cli.main(["data", "--import-minari", "any/dataset-v0", "--out", sys.argv[1]]))
"""


def test_core_works_without_the_extras(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", NO_EXTRAS, str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    message = "tensorboard=True needs tensorboardX: pip install 'pac-scaling[tensorboard]'"
    assert done.stdout.splitlines() == [f"tensorboard: {message}", f"train: {message} | run folder made: False"]
    assert done.stderr.strip() == ("pac data: error: Minari import and export need minari: "
                                   "pip install 'pac-scaling[minari]'")


def test_pac_data_import_and_export_commands(minari_root, tiny_dataset_dir, tmp_path, capsys):
    _record_pendulum("test/invertedpendulum/cli-v0", episodes=3)
    assert cli.main(["data", "--import-minari", "test/invertedpendulum/cli-v0", str(minari_root / "test" /
                     "invertedpendulum" / "cli-v0"), "--out", str(tmp_path / "data")]) == 0
    assert len(storage.list_tasks(tmp_path / "data")) == 1  # the id and its folder are one dataset
    assert cli.main(["data", "--export-minari", str(tiny_dataset_dir), "cartpole-swingup"]) == 0
    assert "pac/cartpole-swingup/offline-v0" in capsys.readouterr().out
    assert minari.load_dataset("pac/cartpole-swingup/offline-v0").total_episodes > 0


def _error(argv, capsys) -> str:
    assert cli.main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_minari_inputs_are_one_line_errors(minari_root, tiny_dataset_dir, tmp_path, capsys):
    out = tmp_path / "data"
    assert "'no/such/dataset-v0' is not on disk" in _error(["data", "--import-minari", "no/such/dataset-v0",
                                                              "--out", out], capsys)
    # A mistyped id after a good one: nothing is written.
    _record_pendulum("test/invertedpendulum/good-v0", episodes=2)
    assert "'test/invertedpendulum/goood-v0' is not on disk" in _error(
        ["data", "--import-minari", "test/invertedpendulum/good-v0", "test/invertedpendulum/goood-v0", "--out", out],
        capsys)
    assert not out.exists()
    # An import names its folder (never the demo dataset by default) and generates nothing.
    assert "give --out DIR" in _error(["data", "--import-minari", "test/invertedpendulum/good-v0"], capsys)
    assert "does not generate data" in _error(["data", "--preset", "demo", "--import-minari",
                                               "test/invertedpendulum/good-v0", "--out", out], capsys)
    # A dataset without an environment to recover (made from buffers with spaces only).
    space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    buffer = [EpisodeBuffer(observations=np.zeros((4, 2), np.float32), actions=np.zeros((3, 2), np.float32),
                            rewards=np.zeros(3), terminations=np.array([0, 0, 1], bool),
                            truncations=np.zeros(3, bool), infos={})]
    with pytest.warns(UserWarning):
        minari.create_dataset_from_buffers("test/noenv/data-v0", buffer, observation_space=space,
                                           action_space=space, data_format="arrow")
    assert "environment cannot be recovered" in _error(["data", "--import-minari", "test/noenv/data-v0", "--out", out],
                                                       capsys)
    # An environment that no longer exists.
    _record_pendulum("test/invertedpendulum/gone-v0", episodes=2)
    metadata_path = minari_root / "test" / "invertedpendulum" / "gone-v0" / "data" / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["env_spec"] = metadata["env_spec"].replace("InvertedPendulum-v5", "NoSuchPendulum-v5").replace(
        "gymnasium.envs.mujoco.inverted_pendulum_v5:InvertedPendulumEnv", "no_such_module:NoSuchEnv")
    metadata_path.write_text(json.dumps(metadata))
    assert "cannot be recovered" in _error(["data", "--import-minari", "test/invertedpendulum/gone-v0", "--out", out],
                                           capsys)
    # A dataset without the fields needed: a Dict observation space.
    dict_space = gym.spaces.Dict({"x": space})
    buffer = [EpisodeBuffer(observations={"x": np.zeros((4, 2), np.float32)}, actions=np.zeros((3, 2), np.float32),
                            rewards=np.zeros(3), terminations=np.zeros(3, bool),
                            truncations=np.array([0, 0, 1], bool), infos={})]
    with pytest.warns(UserWarning):
        minari.create_dataset_from_buffers("test/dict/data-v0", buffer, observation_space=dict_space,
                                           action_space=space, data_format="arrow")
    assert "only flat Box spaces" in _error(["data", "--import-minari", "test/dict/data-v0", "--out", out], capsys)
    # NaN rewards (issue 24, item 9): refused at the door, naming the field; nothing written.
    pendulum = gym.make("InvertedPendulum-v5", max_episode_steps=MAX_STEPS)
    buffer = [EpisodeBuffer(observations=np.zeros((4, 4)), actions=np.zeros((3, 1), np.float32),
                            rewards=np.array([1.0, np.nan, 1.0]), terminations=np.array([0, 0, 1], bool),
                            truncations=np.zeros(3, bool), infos={})]
    with pytest.warns(UserWarning):
        minari.create_dataset_from_buffers("test/nan/data-v0", buffer, env=pendulum, data_format="arrow")
    # An episode's folder gone (issue 24, item 16): one line naming the dataset.
    _record_pendulum("test/invertedpendulum/holed-v0", episodes=3)
    shutil.rmtree(minari_root / "test" / "invertedpendulum" / "holed-v0" / "data" / "1")
    assert "Minari dataset 'test/invertedpendulum/holed-v0': its episode files are missing or unreadable " \
           "(FileNotFoundError: " in _error(
        ["data", "--import-minari", "test/invertedpendulum/holed-v0", "--out", out], capsys)
    # After a good one (issue 24, item 17): checked before the good one is written.
    assert "Minari dataset 'test/nan/data-v0': task 'test-nan-data-v0': field rewards has 1 non-finite values" in _error(
        ["data", "--import-minari", "test/invertedpendulum/good-v0", "test/nan/data-v0", "--out", out], capsys)
    assert not out.exists()
    assert "not a Minari dataset folder" in _error(["data", "--import-minari", str(tmp_path), "--out", out], capsys)
    # Export: a task the folder lacks; an id that exists already.
    assert "no dataset spec for task 'walker-walk'" in _error(["data", "--export-minari", tiny_dataset_dir,
                                                               "walker-walk"], capsys)
    # The same task twice, or a good task beside one whose export exists: refused before
    # anything is written (issue 24, item 17).
    assert "task cartpole-swingup is named twice" in _error(
        ["data", "--export-minari", tiny_dataset_dir, "cartpole-swingup", "cartpole-swingup"], capsys)
    minari_io.export_task(tiny_dataset_dir, "point_mass-easy")
    assert "already exists" in _error(["data", "--export-minari", tiny_dataset_dir, "cartpole-swingup",
                                       "point_mass-easy"], capsys)
    assert not (minari_io.datasets_root() / minari_io.export_id("cartpole-swingup")).exists()
    assert "give the dataset folder" in _error(["data", "--export-minari", tiny_dataset_dir], capsys)
