"""The training job: kill -9 and resume, run-folder safety, bad input, data parallelism.

All real: dm_control data, the Haiku PAC network, orbax checkpoints, subprocesses killed
with SIGKILL. Models are the 'tiny' preset and runs are a few dozen steps.
"""

from __future__ import annotations

import dataclasses
import json

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.config import TrainConfig
from harness.builder import plan_run
from harness.train import TrainingDiverged, train

VOLATILE = ["wall_time", "steps_per_second", "data_wait_fraction"]


def _train_command(dataset: Path, run_dir: Path, steps: int) -> list[str]:
    return [sys.executable, "-m", "pac.cli", "train", "--run-dir", str(run_dir), "--no-progress",
            "--dataset", str(dataset), "--preset", "tiny", "--steps", str(steps), "--batch-size", "16",
            "--log-every", "5", "--valid-every", "10", "--checkpoint-every", "10", "--valid-examples-per-task", "32", "--valid-batch-size", "16",
            "--eval-episodes", "0", "--num-sampled-actions", "4"]


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _final_params(run_dir: Path, steps: int):
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager(str((run_dir / "checkpoints").absolute())) as manager:
        restored = manager.restore(steps)
    return restored


def test_killed_job_resumes_and_matches_uninterrupted(tiny_dataset_dir, tmp_path):
    steps = 60
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    reference = tmp_path / "reference"
    subprocess.run(_train_command(tiny_dataset_dir, reference, steps), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    # Held after its step-15 row (metrics past the step-10 checkpoint), however fast the machine.
    proc = subprocess.Popen(_train_command(tiny_dataset_dir, killed, steps), env=dict(env, PAC_PAUSE_AFTER_ROW="15"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not ((killed / "checkpoints" / "10").is_dir() and "\n15,train" in _text(killed / "metrics.csv")) \
            and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "result.json").exists(), "the job finished before it could be killed"
    assert _text(killed / "metrics.csv").splitlines()[-1].startswith("15,train,")  # killed where it was held

    resumed = subprocess.run(_train_command(tiny_dataset_dir, killed, steps), check=True, env=env,
                             capture_output=True, text=True)
    assert "resumed" in resumed.stdout

    a = pd.read_csv(reference / "metrics.csv").drop(columns=VOLATILE)
    b = pd.read_csv(killed / "metrics.csv").drop(columns=VOLATILE)
    pd.testing.assert_frame_equal(a, b)  # bit-exact on CPU, every logged value
    assert a["step"].max() == steps and set(a["split"]) == {"train", "valid"}
    ra, rb = _final_params(reference, steps), _final_params(killed, steps)
    import jax

    for x, y in zip(jax.tree.leaves(ra), jax.tree.leaves(rb)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_full_job_logs_everything_and_evaluates(tiny_dataset_dir, tmp_path):
    config = TrainConfig(preset="tiny", dataset=str(tiny_dataset_dir), steps=12, batch_size=16, log_every=4,
                         valid_every=6, checkpoint_every=6, valid_examples_per_task=32, valid_batch_size=16, eval_episodes=3, eval_mode="mean", num_sampled_actions=4)
    result = train(config, tmp_path / "run", progress=False)
    assert result["status"] == "done" and result["steps"] == 12
    assert result["flops"] == 12 * result["flops_per_update"]
    assert set(result["returns"]) == {"cartpole-swingup", "point_mass-easy"}
    # Each task's episodes, their mean on the spec's scale, and an interval around it.
    for task, r in result["returns"].items():
        spec = json.loads((tiny_dataset_dir / f"{task}.json").read_text())
        episodes = np.asarray(r["episode_normalized_returns"])
        assert len(episodes) == 3 and r["normalized_return"] == pytest.approx(episodes.mean(), abs=1e-4)
        assert r["normalized_return"] == pytest.approx(
            (r["return"] - spec["random_return"]) / (spec["expert_return"] - spec["random_return"]), abs=1e-6)
        assert r["normalized_return_ci95"][0] <= r["normalized_return"] <= r["normalized_return_ci95"][1]
    assert result["normalized_return"] == pytest.approx(np.mean([r["normalized_return"] for r in result["returns"].values()]))
    low, high = result["normalized_return_ci95"]
    assert low <= result["normalized_return"] <= high
    assert result["evaluation"] == {"eval_mode": "mean", "episodes_per_task": 3}
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    train_rows = metrics[metrics.split == "train"]
    assert list(train_rows.step) == [4, 8, 12]
    assert np.all(np.diff(train_rows.flops) > 0) and np.all(train_rows.tokens > train_rows.examples)
    assert metrics[metrics.split == "valid"].bc_loss.notna().all()
    eval_row = metrics[metrics.split == "eval"].iloc[0]
    assert np.isfinite(eval_row["normalized_return/cartpole-swingup"])
    # Finished: a second call returns the result without training again.
    mtime = (tmp_path / "run" / "metrics.csv").stat().st_mtime_ns
    assert train(config, tmp_path / "run", progress=False)["steps"] == 12
    assert (tmp_path / "run" / "metrics.csv").stat().st_mtime_ns == mtime
    # The same folder with another config is refused, naming the field.
    with pytest.raises(ValueError, match=r"holds a run with a different config \(alpha: 0.5 there, 1.0 now\)"):
        train(config.replace(alpha=1.0), tmp_path / "run", progress=False)


def test_host_sampled_loop_and_steady_throughput(tiny_dataset_dir, tmp_path):
    """The host-thread path (multi-process jobs use it) trains and logs as the device path
    does, and result.json's throughput is a steady-state rate with the device named."""
    base = TrainConfig(preset="tiny", dataset=str(tiny_dataset_dir), steps=12, batch_size=16, log_every=4,
                       valid_every=6, checkpoint_every=6, valid_examples_per_task=32, valid_batch_size=16,
                       eval_episodes=0, num_sampled_actions=4)
    for on_device in (False, True):
        lines: list[str] = []
        result = train(base.replace(data_on_device=on_device), tmp_path / f"run{on_device}", progress=False,
                       log=lines.append)
        # No progress bar: the first and the last train rows are also logged as lines.
        steps = [line.split(":")[0] for line in lines if line.startswith("step ")]
        assert steps == ["step 4/12", "step 12/12"], lines
        throughput = result["throughput"]
        assert throughput["data_on_device"] is on_device and throughput["device_kind"]
        # Timed from the end of the first dispatch (4 updates on the device, 1 on the host).
        assert throughput["steps_run"] == (8 if on_device else 11) and throughput["updates_per_second"] > 0
        metrics = pd.read_csv(tmp_path / f"run{on_device}" / "metrics.csv")
        assert list(metrics[metrics.split == "train"].step) == [4, 8, 12]
        assert list(metrics[metrics.split == "valid"].step) == [6, 12]


def test_a_diverging_run_stops_with_step_and_metric(tiny_dataset_dir, tmp_path):
    # NaN in the data never reaches training (refused at the door: test_bad_inputs.py); a
    # learning rate of 1e30 blows the weights up after the first update.
    config = TrainConfig(preset="tiny", dataset=str(tiny_dataset_dir), steps=8, batch_size=16, log_every=2,
                         valid_examples_per_task=32, valid_batch_size=16, checkpoint_every=100, eval_episodes=0,
                         num_sampled_actions=2, learning_rate=1e30, warmup_fraction=0.0)
    with pytest.raises(TrainingDiverged, match=r"non-finite \w+=(nan|inf|-inf) at step 2 in .*; no checkpoint yet"):
        train(config, tmp_path / "run", progress=False)


def test_bad_budgets_and_sizes_are_clear(tiny_dataset_dir):
    base = TrainConfig(preset="tiny", dataset=str(tiny_dataset_dir), flop_budget=1e3)
    with pytest.raises(ValueError, match=r"flop_budget=1e\+03 is less than one update \(.* FLOPs for preset tiny at batch 64\)"):
        plan_run(base)
    with pytest.raises(ValueError, match="max_obs_dim=3 is too small for dataset .*largest task needs 5"):
        plan_run(base.replace(flop_budget=1e15, max_obs_dim=3))
    with pytest.raises(ValueError, match="unknown model preset 'huge'"):
        plan_run(base.replace(preset="huge"))
    with pytest.raises(ValueError, match=r"alpha=1.5 must be in \[0, 1\]"):
        plan_run(base.replace(alpha=1.5))
    with pytest.raises(ValueError, match=r"give exactly one of flop_budget=\.\.\. and steps=\.\.\. \(got flop_budget=1000.0, steps=10\)"):
        plan_run(base.replace(steps=10))
    plan = plan_run(base.replace(flop_budget=1e12))
    # Pinned counts (the tiny preset padded to the tiny dataset's 5 observation and 2 action
    # dims, batch 64, 20 sampled actions): a change to the count or to budget -> steps shows.
    assert plan.flops_per_update == 315_973_632 and plan.steps == 3164 and plan.model.max_obs_dim == 5
    # data_advantage asks the critic one more query per example (64 x 39,072 FLOPs).
    advantage = plan_run(base.replace(flop_budget=1e12, policy_improvement="data_advantage"))
    assert advantage.flops_per_update == 315_973_632 + 64 * 39_072 and advantage.steps == 3139


def test_two_devices_give_the_same_update_as_one(tiny_dataset_dir):
    script = textwrap.dedent(f"""
        import jax, numpy as np
        from harness.config import TrainConfig
        from harness.builder import build_job
        from harness.learner import make_mesh
        assert jax.device_count() == 2
        # Gumbel draws: a draw whose uniform lies within rounding of a bin's cumulative
        # probability flips with the reduction order (inverse_cdf sums 101 bins, so its
        # flips are ~100x likelier); this test is about the sharded math, not the sampler.
        cfg = TrainConfig(preset="tiny", dataset={str(tiny_dataset_dir)!r}, steps=3, batch_size=16, num_sampled_actions=4,
                          action_sampling="gumbel")
        results = []
        for devices in (jax.devices()[:1], jax.devices()):
            job = build_job(cfg, mesh=make_mesh(devices))
            learner, sampler = job.learner, job.train_sampler
            state = learner.init(0)
            for i in range(3):
                state, metrics = learner.update(state, learner.shard_batch(sampler.sample_at(i)))
            results.append((jax.device_get(metrics), jax.device_get(state.params)))
        (m1, p1), (m2, p2) = results
        for k in m1:
            np.testing.assert_allclose(m1[k], m2[k], rtol=2e-4, atol=1e-5, err_msg=k)
        # Adam moves an element by up to ~learning_rate a step whatever its gradient's size, so
        # where a gradient is nearly 0 the reduction order's rounding shows at a fraction of
        # the learning rate. Attention key biases change no output (softmax ignores the q.b
        # added to every score): their gradient is pure rounding noise, so they are skipped.
        for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(p1), jax.tree.leaves(p2)):
            if "attention/key" in jax.tree_util.keystr(path):
                continue
            np.testing.assert_allclose(a, b, rtol=2e-3, atol=0.1 * cfg.learning_rate, err_msg=jax.tree_util.keystr(path))
        print("OK", float(m1["loss"]), float(m2["loss"]))
    """)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("OK")


def test_every_sampler_setting_of_the_config_reaches_the_job(tiny_dataset_dir):
    # A Sampler argument that TrainConfig also names must come from the config: a setting
    # once stayed at the sampler's default while the config (and the comparison) said
    # otherwise (mc_return_tail).
    import inspect

    from harness.builder import build_job, plan_run, sampler_options
    from harness.data.sampler import Sampler

    config = TrainConfig(preset="tiny", dataset=str(tiny_dataset_dir), steps=10, batch_size=8)
    options = sampler_options(config, plan_run(config))
    renamed = {"mc_discount": "discount"}
    for name in inspect.signature(Sampler).parameters:
        field = renamed.get(name, name)
        # The train sampler's own choices (the held-out split stays whole and uniform).
        train_only = ("top_episode_fraction", "sample_weighting", "sample_kl_epsilon")
        if field in {f.name for f in dataclasses.fields(TrainConfig)} and name not in ("dataset", "batch_size", "seed",
                                                                                        *train_only):
            assert name in options, name
    tilted = build_job(config.replace(sample_weighting="episode_return"))
    assert tilted.train_sampler.split_arrays().alias_keep is not None
    assert tilted.valid_sampler.split_arrays().alias_keep is None
    cut = build_job(config.replace(mc_return_tail="cut")).train_sampler.split_arrays().mc_returns
    extended = build_job(config.replace(mc_return_tail="extend")).train_sampler.split_arrays().mc_returns
    assert np.all(extended >= cut - 1e-4) and np.any(extended > cut + 1e-3)
