"""benchmarks.state_overlap: whether states tell good episodes from the rest."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import state_overlap


def test_auc_counts_pairs_and_ties():
    assert state_overlap.auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert state_overlap.auc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 0, 1, 1])) == 0.0
    assert state_overlap.auc(np.array([0.5, 0.5, 0.5, 0.5]), np.array([0, 1, 0, 1])) == 0.5


def _episodes(centres, rng, steps=20):
    """One episode of `steps` 3-d states around each centre."""
    observations = np.concatenate([c + rng.normal(size=(steps, 3)) for c in centres])
    return observations, np.repeat(np.arange(len(centres)), steps)


def test_separate_states_give_auc_near_1_and_shared_states_near_half():
    rng = np.random.default_rng(0)
    # Enough episodes that leaving a transition's own out hardly moves its neighbours' share.
    good_episodes = np.arange(200) < 50
    # Good episodes live far from the others: the states tell them apart.
    apart, episode = _episodes([np.full(3, 10.0) if g else np.zeros(3) for g in good_episodes], rng)
    result = state_overlap.neighbour_overlap(apart, episode, good_episodes[episode], samples=500, neighbours=20)
    assert result["auc"] > 0.99 and result["good_share_near_good"] > 0.95 and result["good_share_near_rest"] < 0.05
    # The same episodes drawn from one distribution: a neighbour's quality says nothing.
    shared, episode = _episodes([np.zeros(3)] * 200, rng)
    result = state_overlap.neighbour_overlap(shared, episode, good_episodes[episode], samples=500, neighbours=20)
    assert result["auc"] == pytest.approx(0.5, abs=0.05)
    assert result["good_share_near_good"] == pytest.approx(0.25, abs=0.03)


def test_a_real_dataset_gives_every_task_a_result(tiny_dataset_dir):
    result = state_overlap.state_overlap(str(tiny_dataset_dir), samples=200, neighbours=10)
    assert set(result) == {"cartpole-swingup", "point_mass-easy"}
    for r in result.values():
        # A sample whose 300 nearest states all lie in its own episode has no neighbours
        # to count (a point mass resting at one spot): `samples` says how many counted.
        assert 0.0 <= r["auc"] <= 1.0 and 100 <= r["samples"] <= 200
        assert 0.0 <= r["good_share_near_rest"] <= 1.0 and 0.0 <= r["good_share_near_good"] <= 1.0
