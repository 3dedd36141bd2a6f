"""The dataset format: exact round trips, atomic writes and one-line errors."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from harness.data import generate, online, rollout, storage, tasks
from pac import cli


def _copy(src, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


def test_round_trip_is_exact(tiny_dataset_dir, tmp_path):
    original = storage.read_task(tiny_dataset_dir, "cartpole-swingup")
    storage.write_task(tmp_path, "cartpole-swingup", original.arrays,
                       {k: v for k, v in original.spec.items() if k not in ("sha256", "arrays")})
    again = storage.read_task(tmp_path, "cartpole-swingup")
    assert set(again.arrays) == set(original.arrays) == set(storage.ARRAY_DTYPES)
    for name, array in original.arrays.items():
        np.testing.assert_array_equal(again.arrays[name], array)
        assert again.arrays[name].dtype == array.dtype and again.arrays[name].flags.c_contiguous
    assert again.spec["observation_dim"] == 5 and again.spec["action_dim"] == 1


def test_recorded_episodes_are_consistent(tiny_dataset_dir, tiny_generator_config):
    for name in ("cartpole-swingup", "point_mass-easy"):
        data = storage.read_task(tiny_dataset_dir, name)
        a, spec = data.arrays, data.spec
        lengths = a["episode_lengths"]
        assert np.all(lengths == tasks.get_task(name).episode_length)
        np.testing.assert_allclose(a["episode_returns"], np.add.reduceat(a["rewards"], np.cumsum(lengths) - lengths), rtol=1e-5)
        # Step types mark each episode's first and last observation.
        starts = np.cumsum(lengths + 1) - (lengths + 1)
        assert np.all(a["step_type"][starts] == storage.FIRST)
        assert np.all(a["step_type"][starts + lengths] == storage.LAST)
        assert np.all(np.abs(a["actions"]) <= 1.0)
        # Every kind of behaviour is present: random, snapshots with and without noise.
        sources = set(a["episode_source"].tolist())
        assert sources == {storage.SOURCE_RANDOM, storage.SOURCE_SNAPSHOT_SAMPLED, storage.SOURCE_SNAPSHOT_MEAN}
        is_random = a["episode_source"] == storage.SOURCE_RANDOM
        assert np.all(a["episode_snapshot"][is_random] == -1) and np.all(a["episode_snapshot"][~is_random] >= 0)
        assert a["policy_step"][is_random.repeat(lengths)].max() == 0 and a["policy_step"].max() > 0
        # Each transition carries its episode's snapshot id and quality tag.
        np.testing.assert_array_equal(a["snapshot"], a["episode_snapshot"].repeat(lengths))
        np.testing.assert_array_equal(a["quality"], a["episode_quality"].repeat(lengths))
        snapshot_means = {s["id"]: s["mean_return"] for s in spec["snapshots"]}
        for snap, quality in zip(a["episode_snapshot"], a["episode_quality"]):
            expected = spec["random_return"] if snap == -1 else snapshot_means[int(snap)]
            assert quality == pytest.approx(expected, rel=1e-5)
        # References: >= 20 random episodes; expert = the best snapshot's mean return.
        assert spec["random_episodes"] == 20
        assert spec["expert_return"] == pytest.approx(max(snapshot_means.values()))
        assert spec["snapshot_eval_episodes"] == 10
        # The mix: every share present, transitions add up.
        composition = spec["composition"]
        assert set(composition) == {"random", "early", "middle", "final"}
        assert sum(c["transitions"] for c in composition.values()) == data.num_transitions
        assert spec["generator"]["learner"]["agent_steps"] == tiny_generator_config.learner.agent_steps
        assert spec["generator"]["transitions_per_task"] == tiny_generator_config.transitions_per_task


def test_rollouts_reproduce_exactly_from_their_seed(tiny_dataset_dir, tiny_generator_config):
    snapshots = online.load(tiny_dataset_dir, "point_mass-easy", tiny_generator_config.learner)
    assert snapshots is not None and len(snapshots) >= 2
    job = rollout.RolloutJob("point_mass-easy", snapshot=1, noise=True, episodes=3, seed=123)
    first, again = rollout.run_job(job, snapshots.actor_params[1]), rollout.run_job(job, snapshots.actor_params[1])
    other = rollout.run_job(dataclasses.replace(job, seed=124), snapshots.actor_params[1])
    assert len(first["episodes"]) == 3
    for e1, e2, e3 in zip(first["episodes"], again["episodes"], other["episodes"]):
        for key in ("observations", "actions", "rewards", "discounts"):
            np.testing.assert_array_equal(e1[key], e2[key])
        assert not np.array_equal(e1["observations"], e3["observations"])
    # The episodes of one job differ from each other (each environment has its own seed).
    assert not np.array_equal(first["episodes"][0]["observations"], first["episodes"][1]["observations"])


def test_normalization_references_are_computed_as_specified(tiny_dataset_dir, tiny_generator_config):
    """0 = mean of the random reference episodes, 1 = the best snapshot's mean return."""
    snapshots = online.load(tiny_dataset_dir, "cartpole-swingup", tiny_generator_config.learner)
    job = rollout.RolloutJob("cartpole-swingup", 0, False, 1, 0)
    episode = rollout.run_job(dataclasses.replace(job, snapshot=rollout.RANDOM_POLICY), None)["episodes"][0]
    fake = lambda returns, **kw: {"returns": returns, "episodes": [], **kw}
    results = [("random_reference", dataclasses.replace(job, snapshot=-1), fake([10.0] * 12)),
               ("random_reference", dataclasses.replace(job, snapshot=-1), fake([40.0] * 8)),
               ("random", dataclasses.replace(job, snapshot=-1), {"returns": [1.0], "episodes": [episode]})]
    evals = {0: [100.0, 300.0], 1: [500.0, 700.0], 2: [650.0, 640.0]}
    for snapshot in range(len(snapshots)):
        results.append(("snapshot_eval", dataclasses.replace(job, snapshot=snapshot), fake(evals.get(snapshot, [0.0]))))
    _, fields = generate.assemble_task("cartpole-swingup", snapshots, results, tiny_generator_config)
    assert fields["random_return"] == pytest.approx((12 * 10 + 8 * 40) / 20)
    assert fields["random_episodes"] == 20
    assert fields["expert_return"] == pytest.approx(645.0) and fields["expert_snapshot"] == 2


def test_generator_settings_are_validated():
    with pytest.raises(ValueError, match="random_reference_episodes=5 must be >= 20"):
        generate.GeneratorConfig(random_reference_episodes=5).validate()
    with pytest.raises(ValueError, match=r"mix shares \[0.5, 0.6\] must be >= 0 and sum to 1"):
        generate.GeneratorConfig(mix=(("random", 0.5), ("final", 0.6))).validate()
    with pytest.raises(ValueError, match="mix groups"):
        generate.GeneratorConfig(mix=(("expert", 1.0),)).validate()


def test_snapshot_groups_cover_every_share():
    assert generate.snapshot_groups(1) == {"early": [0], "middle": [0], "final": [0]}
    groups = generate.snapshot_groups(10)
    assert groups["final"][-1] == 9 and sorted(sum(groups.values(), [])) == list(range(10))


def test_second_generation_reuses_cache(tiny_dataset_dir, tiny_generator_config):
    before = {p.name: p.stat().st_mtime_ns for p in tiny_dataset_dir.iterdir()}
    assert generate.generate(["cartpole-swingup"], tiny_dataset_dir, tiny_generator_config, log=lambda _: None) == []
    assert {p.name: p.stat().st_mtime_ns for p in tiny_dataset_dir.iterdir()} == before


def test_unknown_task_is_one_line_error():
    with pytest.raises(ValueError, match=r"unknown task 'cartpole-flip'; known tasks: .*walker-walk"):
        generate.resolve_tasks(["cartpole-flip"], None)
    with pytest.raises(ValueError, match="unknown dataset preset 'huge'"):
        generate.resolve_tasks(None, "huge")


def test_truncated_file_is_reported(tiny_dataset_dir, tmp_path):
    d = _copy(tiny_dataset_dir, tmp_path)
    npz = d / "cartpole-swingup.npz"
    npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    with pytest.raises(storage.DatasetError, match=r"cartpole-swingup\.npz: corrupted or truncated") as err:
        storage.read_task(d, "cartpole-swingup")
    assert str(err.value).startswith(str(npz)) and "\n" not in str(err.value)
    # Without the checksum, the zip reader's failure is still one clear line.
    with pytest.raises(storage.DatasetError, match=r"cartpole-swingup\.npz: unreadable array file") as err:
        storage.read_task(d, "cartpole-swingup", verify_checksum=False)
    assert str(err.value).startswith(str(npz)) and "\n" not in str(err.value)


def test_corrupted_spec_is_reported(tiny_dataset_dir, tmp_path):
    d = _copy(tiny_dataset_dir, tmp_path)
    (d / "point_mass-easy.json").write_text('{"format": "pac-offl')
    with pytest.raises(storage.DatasetError, match=r"point_mass-easy\.json: corrupted spec") as err:
        storage.read_task(d, "point_mass-easy")
    assert str(err.value).startswith(str(d / "point_mass-easy.json")) and "\n" not in str(err.value)


def _edit_spec(path, **changes):
    spec = json.loads(path.read_text())
    spec.update(changes)
    path.write_text(json.dumps(spec))


def test_spec_that_does_not_match_arrays(tiny_dataset_dir, tmp_path):
    d = _copy(tiny_dataset_dir, tmp_path)
    _edit_spec(d / "cartpole-swingup.json", observation_dim=7)
    with pytest.raises(storage.DatasetError, match=r"cartpole-swingup\.npz: spec does not match arrays: .*observation_dim=7"):
        storage.read_task(d, "cartpole-swingup")
    _edit_spec(d / "point_mass-easy.json", num_transitions=3)
    with pytest.raises(storage.DatasetError,
                       match=r"point_mass-easy\.npz: spec does not match arrays: .* spec says .* / 3") as err:
        storage.read_task(d, "point_mass-easy")
    assert "\n" not in str(err.value)


def test_other_generator_version_is_refused(tiny_dataset_dir, tmp_path, capsys):
    d = _copy(tiny_dataset_dir, tmp_path)
    _edit_spec(d / "cartpole-swingup.json", generator_version=1)  # a dataset of the old format
    with pytest.raises(storage.DatasetError,
                       match=r"cartpole-swingup\.json: written by generator version 1, this is version 2; regenerate"):
        storage.read_task(d, "cartpole-swingup")
    assert not storage.is_complete(d, "cartpole-swingup")
    assert cli.main(["data", "--stats", str(d)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "regenerate it with `pac data`" in err


def test_killed_writer_leaves_nothing_that_loads(tiny_dataset_dir, tmp_path, monkeypatch):
    original = storage.read_task(tiny_dataset_dir, "cartpole-swingup")

    def dies_midway(file, **arrays):
        file.write(b"PK\x03\x04partial")
        raise KeyboardInterrupt  # as if the process were killed while writing

    monkeypatch.setattr(np, "savez_compressed", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        storage.write_task(tmp_path, "cartpole-swingup", original.arrays, {"observation_dim": 5, "action_dim": 1})
    assert not (tmp_path / "cartpole-swingup.npz").exists()
    assert not (tmp_path / "cartpole-swingup.json").exists()
    assert not storage.is_complete(tmp_path, "cartpole-swingup")
    assert storage.list_tasks(tmp_path) == []
    with pytest.raises(storage.DatasetError, match="no dataset spec"):
        storage.read_task(tmp_path, "cartpole-swingup")


def test_cli_reports_bad_dataset_in_one_line(tiny_dataset_dir, tmp_path, capsys):
    d = _copy(tiny_dataset_dir, tmp_path)
    (d / "cartpole-swingup.npz").write_bytes(b"garbage")
    assert cli.main(["data", "--stats", str(d)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "cartpole-swingup.npz: corrupted or truncated" in err
    assert cli.main(["data", "--tasks", "nope-task", "--out", str(tmp_path / "x")]) == 2
    assert "unknown task 'nope-task'" in capsys.readouterr().err


def test_stats_report_lists_quantiles(tiny_dataset_dir, capsys):
    assert cli.main(["data", "--stats", str(tiny_dataset_dir)]) == 0
    out = capsys.readouterr().out
    assert "cartpole-swingup" in out and "point_mass-easy" in out and "median" in out
    assert "random (0)" in out and "expert (1)" in out and "snapshot mean returns" in out


def test_generation_is_deterministic_whatever_the_worker_count(tiny_dataset_dir, tiny_generator_config, tmp_path):
    """Two workers finish rollout jobs in any order; the dataset is the same as one
    worker's, array for array (the held-out split is by episode index)."""
    generate.generate(["point_mass-easy"], tmp_path, tiny_generator_config, workers=2, log=lambda _: None)
    one, two = storage.read_task(tiny_dataset_dir, "point_mass-easy"), storage.read_task(tmp_path, "point_mass-easy")
    for name, array in one.arrays.items():
        np.testing.assert_array_equal(two.arrays[name], array, err_msg=name)
    assert two.spec["expert_return"] == one.spec["expert_return"]
