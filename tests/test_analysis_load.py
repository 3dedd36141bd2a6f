"""Loading the results layout and external CSVs; bad rows are named, never silent."""

import numpy as np
import pandas as pd
import pytest

from analysis import load
from analysis import returns
from analysis import synthetic


@pytest.fixture()
def results(tmp_path):
    path = tmp_path / "results"
    synthetic.write_results(str(path), sizes=(1e5, 1e6, 1e7), budgets=(1e15, 1e16), alphas=(1.0, 0.5),
                            extra_cells={"dead": "failed", "later": "pending"})
    return str(path)


def test_tidy_frame_has_the_analysis_vocabulary(results):
    frame = load.load_results(results)
    for column in ("cell", "preset", "N", "N_nonembedding", "budget", "alpha", "seed", "status", "step",
                   "split", "C", "D", "tokens", "bc_loss", "critic_loss", "normalized_return",
                   "normalized_return/walker", "return/walker", "notes"):
        assert column in frame.columns, column
    assert frame["cell"].nunique() == 12  # index-only cells have no rows
    assert set(frame["split"]) == {"train", "valid", "eval"}


@pytest.mark.filterwarnings("ignore:2 cells not done")
def test_final_points_uses_last_valid_step_of_done_cells(results):
    frame = load.load_results(results)
    with pytest.warns(UserWarning, match=r"2 cells not done.*dead \(failed\)"):
        points = load.final_points(frame)
    assert len(points) == 12
    last = frame[(frame["split"] == "valid")].groupby("cell")["step"].max()
    assert (points.set_index("run")["step"] == last.loc[points["run"]].to_numpy()).all()
    tokens = load.final_points(frame, data_unit="tokens", param_count="nonembedding")
    np.testing.assert_allclose(tokens["D"], 4 * points["D"])
    np.testing.assert_allclose(tokens["N"], 0.9 * points["N"])
    assert load.estimate_k(points) == pytest.approx(6.0)
    with pytest.raises(ValueError, match="metric 'nope' not in the results"):
        load.final_points(frame, metric="nope")
    with pytest.raises(ValueError, match="param_count='all' is not one of"):
        load.final_points(frame, param_count="all")


@pytest.mark.filterwarnings("ignore:2 cells not done")
def test_returns_transform_and_groups(results):
    frame = load.load_results(results)
    points = load.final_points(frame, "normalized_return", "eval")
    as_loss = returns.as_loss(points)
    np.testing.assert_allclose(as_loss["loss"], np.maximum(1 - points["loss"], 1e-3))
    groups = returns.split_bc_pac(as_loss)
    assert set(groups) == {"bc", "pac"} and len(groups["bc"]) == len(groups["pac"]) == 6
    with pytest.warns(UserWarning, match="clipped"):
        returns.as_loss(points.assign(loss=1.2))


def test_return_scaling_picks_the_lowest_loss_size_and_intervals_over_seeds():
    rows = []
    for seed, shift in ((0, 0.0), (1, 0.1), (2, 0.2)):
        for preset, params, loss in (("small", 10, 6.0), ("large", 100, 5.5)):
            for alpha in (1.0, 0.5):
                rows.append({"cell": f"{preset}_{alpha}_{seed}", "preset": preset, "params": params, "budget_flops": 1e11,
                             "alpha": alpha, "seed": seed, "status": "done", "valid_bc_loss": loss,
                             "normalized_return": 0.3 + shift + (0.1 if alpha < 1 else 0.0),
                             "normalized_return_episode_ci95": 0.05 * (seed + 1)})
    index = pd.DataFrame(rows)
    table = returns.return_scaling(index).set_index("method")
    assert list(table.preset) == ["large", "large"] and list(table.seeds) == [3, 3]
    assert table.loc["PAC", "return"] == pytest.approx(0.5) and table.loc["BC", "return"] == pytest.approx(0.4)
    lo, hi = table.loc["BC", "return_ci95"]
    assert 0.3 <= lo < 0.4 < hi <= 0.5
    assert table.loc["BC", "episode_ci95"] == pytest.approx(0.1)  # mean of the runs' episode half-widths
    assert returns.return_scaling(index.drop(columns="normalized_return_episode_ci95")).episode_ci95.isna().all()
    one_seed = returns.return_scaling(index[index.seed == 0])
    assert one_seed.return_ci95.isna().all() and set(one_seed.seeds) == {1}
    assert returns.return_scaling(index.drop(columns="normalized_return")).empty


def test_missing_folder_index_and_columns(tmp_path, results):
    # Each a one-line error naming the folder or file.
    with pytest.raises(OSError, match="results folder not found") as err:
        load.load_results(str(tmp_path / "nowhere"))
    assert str(err.value) == f"results folder not found: {tmp_path / 'nowhere'}"
    (tmp_path / "empty").mkdir()
    with pytest.raises(OSError, match="no index.csv") as err:
        load.load_results(str(tmp_path / "empty"))
    assert f"no index.csv in {tmp_path / 'empty'}" in str(err.value) and "\n" not in str(err.value)
    index = pd.read_csv(f"{results}/index.csv").drop(columns=["budget_flops"])
    index.to_csv(f"{results}/index.csv", index=False)
    with pytest.raises(ValueError, match=r"index.csv lacks columns \['budget_flops'\]") as err:
        load.load_results(results)
    assert str(err.value).startswith(f"{results}") and "\n" not in str(err.value)


def test_csv_aliases_k_and_bad_rows(tmp_path):
    path = tmp_path / "runs.csv"
    pd.DataFrame({"Model Size": [1e8, 2e8, -1, 4e8], "Training FLOP": [6e18, 6e18, 6e18, np.nan],
                  "loss": [3.0, 2.9, 2.8, 2.7]}).to_csv(path, index=False)
    points = load.load_csv(str(path), k=6.0)
    assert points["D"].iloc[0] == pytest.approx(6e18 / (6 * 1e8))
    with pytest.warns(UserWarning, match=r"dropped 2 rows .*runs \[2, 3\]"):
        kept = load.clean_points(points)
    assert len(kept) == 2
    pd.DataFrame({"N": [1e8, 2e8], "D": [1e9, 2e9], "loss": [3.0, 2.9]}).to_csv(path, index=False)
    np.testing.assert_allclose(load.load_csv(str(path), k=8.0)["C"], [8e17, 3.2e18])
    pd.DataFrame({"N": [1e8], "loss": [3.0]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="needs columns N") as err:
        load.load_csv(str(path))
    assert str(err.value).startswith(f"{path} needs columns") and "\n" not in str(err.value)
    with pytest.raises(OSError, match="CSV file not found") as err:
        load.load_csv(str(tmp_path / "missing.csv"))
    assert str(err.value) == f"CSV file not found: {tmp_path / 'missing.csv'}"
    with pytest.raises(ValueError, match="drop_worst=5 would drop all 2 runs"):
        load.drop_worst(kept, 5)


@pytest.mark.filterwarnings("ignore:2 cells not done")
def test_damaged_metrics_rows_are_dropped_with_their_lines_and_bad_files_named(results):
    # Issue 24, item 3: a last row cut short mid-number (a kill mid-write) reads as a
    # plausible shorter number; rows of another width are damage too.
    import os

    cell = sorted(d for d in os.listdir(results) if os.path.isdir(f"{results}/{d}"))[0]
    path = f"{results}/{cell}/metrics.csv"
    text = open(path).read()
    lines = text.splitlines()
    with open(path, "w") as f:
        f.write("\n".join(lines[:2] + ["1,2"] + lines[2:]) + "\n")
    with pytest.warns(UserWarning, match=rf"{cell}/metrics.csv: dropped 1 damaged rows .*lines \[3\]"):
        whole = load.load_results(results)
    with open(path, "w") as f:
        f.write(text[:-3])  # the last row's last value cut short, its newline gone
    with pytest.warns(UserWarning, match=rf"{cell}/metrics.csv: dropped 1 damaged rows .*lines \[{len(lines)}\]"):
        cut = load.load_results(results)
    mine, before = cut[cut.cell == cell], whole[whole.cell == cell]
    assert len(mine) == len(before) - 1 == len(lines) - 2  # the cut row is gone, not read short
    pd.testing.assert_frame_equal(mine.reset_index(drop=True), before.iloc[:-1].reset_index(drop=True))
    for content, message in ((b"", "empty metrics file"), (b"\x89PNG\r\n\x1a\n\x00\xff", "not a text CSV")):
        with open(path, "wb") as f:
            f.write(content)
        with pytest.raises(ValueError, match=rf"{cell}/metrics.csv: {message}"):
            load.load_results(results)


def test_returns_figure_draws_the_compute_optimal_return_with_its_interval(tmp_path):
    from analysis import figures

    rows = []
    for budget, base in ((1e11, 0.1), (1e12, 0.3)):
        for seed in (0, 1, 2):
            for alpha in (1.0, 0.0):
                rows.append({"cell": f"c{budget:g}_{alpha}_{seed}", "preset": "small", "params": 10, "budget_flops": budget,
                             "alpha": alpha, "seed": seed, "status": "done", "valid_bc_loss": 6.0,
                             "normalized_return": base + 0.05 * seed + (0.2 if alpha < 1 else 0.0),
                             "normalized_return_episode_ci95": 0.1})
    pd.DataFrame(rows).to_csv(tmp_path / "index.csv", index=False)
    points = {"run": [r["cell"] for r in rows], "C": [r["budget_flops"] for r in rows],
              "value": [r["normalized_return"] for r in rows], "alpha": [r["alpha"] for r in rows]}
    fits = {"returns": {"metric": "normalized_return", "points": points}}
    fig = figures.returns_figure(fits, str(tmp_path))
    bars = fig.axes[0].containers
    assert len(bars) == 2  # BC and PAC, one point per budget each
    line = bars[1].lines[0]  # PAC: 0.35 at 1e11 and 0.55 at 1e12, the mean over seeds
    np.testing.assert_allclose(line.get_ydata(), [0.35, 0.55])
    assert "95% CI" in fig.axes[0].get_title()
    # No isoFLOP fit in these fits: the right panel says so instead of drawing empty axes.
    assert [t.get_text() for t in fig.axes[1].texts] == [
        "no isoFLOP fit to draw:\nnone usable (failed or degenerate)\n(see the report's status lines)"]
    # Without the results folder: the points and a best-so-far line, no intervals.
    assert not figures.returns_figure(fits).axes[0].containers


def test_a_column_of_both_index_and_metrics_comes_from_the_metrics(tmp_path):
    """index.csv repeats the final eval row's normalized_return: the merged frame keeps one
    column of that name (merged twice it came out as _x/_y and the return fits vanished)."""
    pd.DataFrame([{"cell": "a", "preset": "tiny", "params": 10, "params_nonembedding": 9, "budget_flops": 1e9,
                   "alpha": 0.0, "seed": 0, "steps": 2, "status": "done", "normalized_return": 0.5}]).to_csv(
        tmp_path / "index.csv", index=False)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "metrics.csv").write_text(
        "step,split,flops,examples,tokens,bc_loss,normalized_return\n"
        "2,valid,100,4,8,1.5,\n"
        "2,eval,100,4,8,,0.5\n")
    frame = load.load_results(str(tmp_path))
    assert "normalized_return" in frame.columns and not any(c.endswith(("_x", "_y")) for c in frame.columns)
    assert frame.loc[frame.split == "eval", "normalized_return"].tolist() == [0.5]
    assert "normalized_return" in frame.attrs["index"].columns  # the report's return table reads it there
