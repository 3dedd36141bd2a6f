"""benchmarks.pac_vs_bc end to end at a tiny size: every method trains, summary.json holds
means and intervals per method and the paired difference, and the figure is drawn."""

from __future__ import annotations

import json

from benchmarks import pac_vs_bc


def test_pac_vs_bc_writes_the_summary(tiny_dataset_dir, tmp_path):
    out = tmp_path / "pvb"
    code = pac_vs_bc.main(["--dataset", str(tiny_dataset_dir), "--steps", "6", "--batch-size", "16", "--seeds", "0",
                           "--alphas", "0.5", "--paper-alpha", "0.5", "--preset", "tiny", "--eval-episodes", "2", "--parallel", "1",
                           "--out", str(out), "--set", "num_sampled_actions=4"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == {"bc", "pac_a0.5", "pac_paper", "filtered_bc", "regression_bc", "best_snapshot"}
    # Equal compute: BC still trains the critic (and, with the comparison's data_advantage
    # settings, asks it about the data action too).
    harness = [summary["methods"][m] for m in ("bc", "pac_a0.5", "filtered_bc")]
    assert len({m["flops"] for m in harness}) == 1
    # The paper's step asks one critic query fewer per example, and its count says so.
    assert summary["methods"]["pac_paper"]["flops"] < harness[0]["flops"]
    assert {"q_spread", "weights_ess", "kl_improvement", "advantage_mc_rank_corr"} <= set(
        summary["methods"]["pac_a0.5"]["diagnostics"])
    for method in summary["methods"].values():
        r = method["normalized_return"]
        assert set(r["per_seed"]) == {"0"}  # one seed keeps the test short: its interval is the point
        assert len(r["ci95"]) == 2 and r["ci95"][0] <= r["mean"] <= r["ci95"][1]
    pac = {m: summary["methods"][m]["normalized_return"]["mean"] for m in ("pac_a0.5", "pac_paper")}
    assert summary["best_pac"]["method"] == max(pac, key=pac.get)
    difference = summary["difference"]
    assert set(difference) >= {"mean", "ci95"} and difference["ci95"][0] <= difference["mean"] <= difference["ci95"][1]
    assert summary["setup"]["steps"] == 6 and summary["setup"]["filter_fraction"] == 0.25
    for name, method in summary["methods"].items():  # per task, intervals over seeds
        for task in method["per_task"].values():
            assert task["ci95"][0] <= task["mean"] <= task["ci95"][1], name
    assert set(summary["differences"]) == set(summary["methods"]) - {"bc"}
    assert (out / "pac_vs_bc.png").stat().st_size > 0
