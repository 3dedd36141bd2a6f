"""benchmarks.weight_share: where a trained run's improvement weights put their mass."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import weight_share
from harness.config import TrainConfig
from harness.train import train


def test_weight_share_reads_a_real_run(tiny_dataset_dir, tmp_path):
    config = TrainConfig(preset="tiny", dataset=str(tiny_dataset_dir), steps=2, batch_size=32, alpha=0.0,
                         num_sampled_actions=2, policy_improvement="data_advantage",
                         advantage_estimate="monte_carlo", eval_episodes=0, checkpoint_every=2)
    train(config, tmp_path / "pac", progress=False)
    shares = weight_share.weight_share(tmp_path / "pac", batches=8)
    assert sorted(shares) == ["cartpole-swingup", "point_mass-easy"]
    counts = []
    for task in shares.values():
        assert 0.0 <= task["weight_share"] <= 1.0 and 0.0 < task["transition_share"] < 1.0
        # Tiny episodes: the first fifth is a fifth of the transitions, up to rounding.
        assert 0.1 < task["first_fifth_transition_share"] < 0.35
        assert 0.0 <= task["first_fifth_share"] <= 1.0 and 0.0 <= task["first_fifth_tilt_share"] <= 1.0
        assert -1.0 <= task["return_tilt_rank_corr"] <= 1.0
        counts.append(task["task_weight"])
    # Mean weight 1 over the batch: tasks drawn alike, so the tasks' mean weights average ~1.
    assert np.mean(counts) == pytest.approx(1.0, abs=0.15)

    # A run of the paper's step is refused before anything is loaded (its config says so).
    sampled = tmp_path / "sampled"
    sampled.mkdir()
    saved = json.loads((tmp_path / "pac" / "config.json").read_text())
    saved["train"]["policy_improvement"] = "sampled"
    (sampled / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="policy_improvement='sampled'; this measures 'data_advantage' runs"):
        weight_share.weight_share(tmp_path / "sampled")
