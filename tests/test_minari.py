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
from harness.data import minari_io, storage  # noqa: E402
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


def test_import_train_with_dm_control_and_evaluate_in_gymnasium(minari_root, tiny_dataset_dir, tmp_path):
    source = _record_pendulum("test/invertedpendulum/mixed-v0")
    data = tmp_path / "mixed"
    shutil.copytree(tiny_dataset_dir, data)
    name = minari_io.import_dataset("test/invertedpendulum/mixed-v0", data)
    assert name == "test-invertedpendulum-mixed-v0"
    assert set(storage.list_tasks(data)) == {"cartpole-swingup", "point_mass-easy", name}

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

    config = TrainConfig(preset="tiny", dataset=str(data), steps=12, batch_size=16, log_every=6, valid_every=12,
                         checkpoint_every=12, valid_examples_per_task=32, valid_batch_size=16, eval_episodes=2,
                         num_sampled_actions=4)
    result = train(config, tmp_path / "run", progress=False)
    pendulum = result["returns"][name]
    assert 1.0 <= pendulum["return"] <= MAX_STEPS  # real episodes of the real environment
    assert pendulum["d4rl_score"] == pytest.approx(100.0 * (pendulum["return"] - 5.0) / (MAX_STEPS - 5.0))
    assert pendulum["d4rl_score"] == pytest.approx(100.0 * pendulum["normalized_return"])
    assert "d4rl_score" not in result["returns"]["cartpole-swingup"]  # dm_control tasks have no D4RL refs
    eval_row = pd.read_csv(tmp_path / "run" / "metrics.csv").query("split == 'eval'")
    assert eval_row[f"d4rl_score/{name}"].iloc[0] == pytest.approx(pendulum["d4rl_score"])


def test_references_are_measured_where_the_dataset_has_none(minari_root, tmp_path):
    _record_pendulum("test/invertedpendulum/norefs-v0", episodes=4, refs=False)
    name = minari_io.import_dataset("test/invertedpendulum/norefs-v0", tmp_path / "data", random_episodes=5)
    spec = storage.read_spec(tmp_path / "data", name)
    task = storage.read_task(tmp_path / "data", name)
    # As for our own data: uniform-random episodes in the environment; the best episode.
    assert spec["random_episodes"] == 5 and 1.0 <= spec["random_return"] < 15.0
    assert spec["expert_return"] == float(task.arrays["episode_returns"].max())
    assert spec["d4rl_reference"] is None


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
    assert "not a Minari dataset folder" in _error(["data", "--import-minari", str(tmp_path), "--out", out], capsys)
    # Export: a task the folder lacks; an id that exists already.
    assert "no dataset spec for task 'walker-walk'" in _error(["data", "--export-minari", tiny_dataset_dir,
                                                               "walker-walk"], capsys)
    minari_io.export_task(tiny_dataset_dir, "point_mass-easy")
    assert "already exists" in _error(["data", "--export-minari", tiny_dataset_dir, "point_mass-easy"], capsys)
    assert "give the dataset folder" in _error(["data", "--export-minari", tiny_dataset_dir], capsys)
