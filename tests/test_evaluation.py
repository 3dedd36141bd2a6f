"""How actions are read from the policy's bins, episode intervals, and the reference
methods' policies in the real environments."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import reference_methods
from harness import evaluation


def test_readouts_of_a_bimodal_bin_distribution():
    # 5 bins on [-1, 1]: mass 0.6 at -1 and 0.4 at +1.
    logits = jnp.log(jnp.array([[[0.6, 1e-9, 1e-9, 1e-9, 0.4]]]))
    key = jax.random.key(0)
    assert float(evaluation.read_actions(logits, "mode", key)[0, 0]) == pytest.approx(-1.0)
    assert float(evaluation.read_actions(logits, "mean", key)[0, 0]) == pytest.approx(-0.2, abs=1e-5)
    draws = [float(evaluation.read_actions(logits, "sample", k)[0, 0]) for k in jax.random.split(key, 400)]
    assert set(np.round(draws, 3)) == {-1.0, 1.0} and 0.5 < np.mean(np.array(draws) < 0) < 0.7
    # local_mean reads one mode (the larger), not the average of the two.
    wide = jnp.log(jnp.full((1, 1, 101), 1e-9).at[0, 0, 0].set(0.6).at[0, 0, 100].set(0.4))
    assert float(evaluation.read_actions(wide, "local_mean", key)[0, 0]) == pytest.approx(-1.0, abs=1e-5)
    assert float(evaluation.read_actions(wide, "mean", key)[0, 0]) == pytest.approx(-0.2, abs=1e-5)
    with pytest.raises(ValueError, match="eval_mode='median'; allowed: mode, mean, local_mean, sample"):
        evaluation.read_actions(logits, "median", key)


def test_interval_and_summary_over_episodes():
    assert evaluation.interval95([0.5]) == [0.5, 0.5]
    low, high = evaluation.interval95([0.0, 1.0, 0.0, 1.0])
    assert low < 0.5 < high and high - low == pytest.approx(2 * 3.182446 * np.std([0, 1, 0, 1], ddof=1) / 2, rel=1e-4)
    returns = {"a": {"episode_normalized_returns": [0.0, 1.0]}, "b": {"episode_normalized_returns": [1.0, 1.0]}}
    summary = evaluation.summarize(returns)
    assert summary["normalized_return"] == pytest.approx(0.75)
    assert summary["normalized_return_ci95"][0] < 0.75 < summary["normalized_return_ci95"][1]


def test_reference_methods_act_in_the_real_environments(tiny_dataset_dir):
    snapshot = reference_methods.evaluate_best_snapshot(tiny_dataset_dir, None, 2, eval_seed=0)
    regression = reference_methods.evaluate_regression_bc(
        reference_methods.RegressionBCConfig(dataset=str(tiny_dataset_dir), steps=20, batch_size=16, hidden=(16,)), 2)
    assert set(snapshot) == set(regression)
    for results in (snapshot, regression):
        for task in results.values():
            assert len(task["episode_normalized_returns"]) == 2
            assert task["normalized_return"] == pytest.approx(np.mean(task["episode_normalized_returns"]), abs=1e-4)
            assert task["normalized_return_ci95"][0] <= task["normalized_return"] <= task["normalized_return_ci95"][1]
    # The expert snapshot is the normalization's 1: where it learned the task (the tiny
    # dataset's learners are short), its episodes land near 1, not near 0.
    assert max(t["normalized_return"] for t in snapshot.values()) > 0.5
