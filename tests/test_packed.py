"""Runs packed into one program (jax.vmap over runs of one model): each run's folder,
metrics, checkpoints and result as if it had been trained alone, and exact resume.

Real parts at tiny sizes: the 'tiny' PAC network, dm_control data, orbax checkpoints.
"""

from __future__ import annotations

import shutil

import jax
import numpy as np
import pandas as pd
import pytest

from harness.checkpointing import Checkpointer
from harness.config import TrainConfig
from harness.builder import build_job
from harness.train import check_packable, train, train_pack

VOLATILE = ["wall_time", "steps_per_second", "data_wait_fraction"]


def _config(dataset, **changes) -> TrainConfig:
    return TrainConfig(preset="tiny", dataset=str(dataset), steps=20, batch_size=16, log_every=5, valid_every=10,
                       checkpoint_every=10, valid_examples_per_task=32, valid_batch_size=16, eval_episodes=0,
                       num_sampled_actions=4, updates_per_dispatch=5).replace(**changes)


def _params(run_dir, config, step):
    like = build_job(config).learner.init(config.seed)
    checkpointer = Checkpointer(run_dir / "checkpoints")
    try:
        return jax.device_get(checkpointer.restore(step, like).params)
    finally:
        checkpointer.close()


def _metrics(run_dir):
    return pd.read_csv(run_dir / "metrics.csv").drop(columns=VOLATILE)


RUNS = ((1.0, 0), (0.5, 0), (0.5, 1))  # (alpha, seed): BC and PAC, and a second seed


def test_a_pack_trains_each_run_as_if_alone_and_resumes_exactly(tiny_dataset_dir, tmp_path):
    configs = [_config(tiny_dataset_dir, alpha=a, seed=s) for a, s in RUNS]
    packed_dirs = [tmp_path / "pack" / f"a{a}_s{s}" for a, s in RUNS]
    results = train_pack(configs, packed_dirs, progress=False)
    assert [r["steps"] for r in results] == [20, 20, 20]
    assert all(r["throughput"]["packed_runs"] == 3 for r in results)
    for config, packed_dir, (alpha, seed) in zip(configs, packed_dirs, RUNS):
        alone_dir = tmp_path / "alone" / f"a{alpha}_s{seed}"
        alone = train(config, alone_dir, progress=False)
        assert alone["throughput"]["packed_runs"] == 1
        a, b = _metrics(alone_dir), _metrics(packed_dir)
        assert list(a.step) == list(b.step) and list(a.split) == list(b.split)
        # The same math, not the same bits: vmap reorders float sums, and a sampled action
        # bin (policy improvement, TD target) can flip on a last-bit difference, which moves
        # the sampled-action losses by a few % at that step (and the diagnostics computed
        # on sampled actions by more). The losses stay close; the BC loss stays tight.
        exact = ["step", "flops", "examples", "learning_rate"]
        np.testing.assert_allclose(b[exact].to_numpy(float), a[exact].to_numpy(float), rtol=1e-6)
        # The smoothed policy target spreads the policy over more bins, so flips are likelier
        # (measured: the critic loss 6% apart at one of 4 rows): 10% on these.
        sampled = ["loss", "policy_loss", "critic_loss", "q_mean"]
        np.testing.assert_allclose(b[sampled].to_numpy(float), a[sampled].to_numpy(float), rtol=0.1, atol=1e-4)
        assert set(a.columns) == set(b.columns)
        np.testing.assert_allclose(b.bc_loss, a.bc_loss, rtol=2e-3)
        x, y = (np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(_params(d, config, 20))])
                for d in (alone_dir, packed_dir))
        assert np.linalg.norm(y - x) <= 1e-2 * np.linalg.norm(x)
    # The runs differ from each other (their own alpha and seed reached the program).
    first, second, third = (_metrics(d) for d in packed_dirs)
    assert not np.allclose(first.loss.dropna(), second.loss.dropna())
    assert not np.allclose(second.loss.dropna(), third.loss.dropna())

    # A pack killed after its step-10 checkpoints: the last checkpoint and the result are
    # gone, the metrics hold rows past step 10. Training again resumes every run there and
    # ends where the uninterrupted pack ended.
    before = [_metrics(d) for d in packed_dirs]
    finals = [_params(d, c, 20) for d, c in zip(packed_dirs, configs)]
    for run_dir in packed_dirs:
        (run_dir / "result.json").unlink()
        shutil.rmtree(run_dir / "checkpoints" / "20")
    logs = []
    train_pack(configs, packed_dirs, progress=False, log=logs.append)
    assert any("from step 10" in line for line in logs)
    for run_dir, config, old, final in zip(packed_dirs, configs, before, finals):
        pd.testing.assert_frame_equal(_metrics(run_dir), old)
        for x, y in zip(jax.tree.leaves(final), jax.tree.leaves(_params(run_dir, config, 20))):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_packs_are_checked_and_finished_runs_are_not_retrained(tiny_dataset_dir, tmp_path):
    base = _config(tiny_dataset_dir, steps=10)
    with pytest.raises(ValueError, match=r"differ only in alpha, seed; batch_size differs \(16 vs 32\)"):
        check_packable([base, base.replace(batch_size=32)])
    with pytest.raises(ValueError, match="needs data_on_device=True"):
        check_packable([base.replace(data_on_device=False), base.replace(data_on_device=False, seed=1)])
    with pytest.raises(ValueError, match="distinct folders"):
        train_pack([base, base.replace(seed=1)], [tmp_path / "x", tmp_path / "x"])
    done = train(base, tmp_path / "done", progress=False)
    mtime = (tmp_path / "done" / "metrics.csv").stat().st_mtime_ns
    results = train_pack([base, base.replace(seed=1)], [tmp_path / "done", tmp_path / "new"], progress=False)
    assert results[0] == done and (tmp_path / "done" / "metrics.csv").stat().st_mtime_ns == mtime
    assert results[1]["steps"] == 10 and (tmp_path / "new" / "result.json").exists()
