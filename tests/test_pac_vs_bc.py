"""benchmarks.pac_vs_bc end to end at a tiny size: every method trains, summary.json holds
means and intervals per method and the paired difference, and the figure is drawn."""

from __future__ import annotations

import json

from benchmarks import pac_vs_bc


def test_pac_vs_bc_writes_the_summary(tiny_dataset_dir, tmp_path):
    out = tmp_path / "pvb"
    code = pac_vs_bc.main(["--dataset", str(tiny_dataset_dir), "--steps", "6", "--batch-size", "16", "--seeds", "0", "1",
                           "--alphas", "0.5", "--eval-episodes", "1", "--parallel", "1", "--out", str(out),
                           "--set", "num_sampled_actions=4"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == {"bc", "pac_a0.5", "filtered_bc"}
    flops = {m["flops"] for m in summary["methods"].values()}
    assert len(flops) == 1  # equal compute: BC still trains the critic
    for method in summary["methods"].values():
        r = method["normalized_return"]
        assert set(r["per_seed"]) == {"0", "1"}
        assert len(r["ci95"]) == 2 and r["ci95"][0] <= r["mean"] <= r["ci95"][1]
    assert summary["best_pac"]["method"] == "pac_a0.5"
    difference = summary["difference"]
    assert set(difference) >= {"mean", "ci95"} and difference["ci95"][0] <= difference["mean"] <= difference["ci95"][1]
    assert summary["setup"]["steps"] == 6 and summary["methods"]["filtered_bc"]["top_episode_fraction"] == 0.25
    assert (out / "pac_vs_bc.png").stat().st_size > 0
