"""The grid launcher end to end, for real: `pac train` subprocesses on the tiny grid
(the 'tiny' preset x 2 budgets x {BC, PAC}, 17 and 62 updates), a failing cell, relaunch,
a SIGKILLed and a Ctrl-C'd launcher, and the XManager local executor.

All runs of one cell have the same config, so their compiled programs come from JAX's
persistent cache after the first grid (see conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from launch.grid_folder import claim_grid_dir
from launch.local import run_grid
from launch.spec import load_spec
from pac.commands.grid import dry_run_table

REPO = Path(__file__).resolve().parent.parent
VOLATILE = ["wall_time", "steps_per_second", "data_wait_fraction"]
CELLS = ["tiny_C1.5e9_a1_s0", "tiny_C1.5e9_a0.5_s0", "tiny_C5.5e9_a1_s0", "tiny_C5.5e9_a0.5_s0"]


@pytest.fixture(scope="module")
def spec_file(tiny_dataset_dir, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "tiny_grid.py"
    path.write_text(f"from launch.grids.tiny import get_config as tiny\n\n\ndef get_config():\n"
                    f"    return tiny().replace(dataset={str(tiny_dataset_dir)!r})\n")
    return path


@pytest.fixture(scope="module")
def reference(spec_file, tmp_path_factory) -> Path:
    """The whole tiny grid, uninterrupted, two cells at a time."""
    root = tmp_path_factory.mktemp("reference")
    lines: list[str] = []
    run_grid(load_spec(spec_file), root, parallel=2, log=lines.append, progress=False)
    return root / "tiny"


def _metrics(cell_dir: Path) -> pd.DataFrame:
    return pd.read_csv(cell_dir / "metrics.csv").drop(columns=VOLATILE)


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _wait_for(predicate, proc: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.time() + seconds
    while not predicate():
        assert proc.poll() is None, f"launcher exited early: {proc.returncode}"
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


def _grid_command(spec_file: Path, results: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pac.cli", "grid", str(spec_file), "--results", str(results), "--no-progress", *extra]


def test_grid_runs_every_cell_and_indexes_them(reference):
    index = pd.read_csv(reference / "index.csv")
    for column in ("cell", "preset", "params", "params_nonembedding", "budget_flops", "alpha", "seed", "steps", "status",
                   "examples", "epochs", "flops_per_update", "error", "reason", "wall_seconds", "normalized_return",
                   "valid_bc_loss"):
        assert column in index.columns
    assert list(index["cell"]) == CELLS and set(index["status"]) == {"done"}
    # Steps are budget // FLOPs per update (17 and 62 for the tiny preset at batch 16).
    flops_per_update = index["flops_per_update"].iloc[0]
    assert list(index["steps"]) == [int(b // flops_per_update) for b in (1.5e9, 1.5e9, 5.5e9, 5.5e9)]
    assert index["steps"].iloc[0] > 10 and list(index["alpha"]) == [1.0, 0.5, 1.0, 0.5]
    assert (index["flops"] == index["steps"] * index["flops_per_update"]).all() and (index["flops"] <= index["budget_flops"]).all()
    assert index["valid_bc_loss"].notna().all() and (index["wall_seconds"] > 0).all()
    for cell in CELLS:
        result = json.loads((reference / cell / "result.json").read_text())
        config = json.loads((reference / cell / "config.json").read_text())["train"]
        assert result["status"] == "done" and config["flop_budget"] in (1.5e9, 5.5e9)
        assert _metrics(reference / cell)["step"].max() == result["steps"]
    grid = json.loads((reference / "grid.json").read_text())
    assert grid["spec"]["name"] == "tiny" and grid["identity"]["budgets"] == [1.5e9, 5.5e9]


def test_relaunch_skips_finished_cells(reference, spec_file):
    files = [reference / c / n for c in CELLS for n in ("result.json", "metrics.csv", "stdout.log", "config.json")]
    before = {f: f.stat().st_mtime_ns for f in files}
    lines: list[str] = []
    rows = run_grid(load_spec(spec_file), reference.parent, parallel=2, log=lines.append, progress=False)
    assert {r["status"] for r in rows} == {"done"}
    assert "4 already done, 0 to run" in lines[0]
    assert {f: f.stat().st_mtime_ns for f in files} == before
    # The dry run now times cells from the finished ones' throughput.
    table = "\n".join(dry_run_table(load_spec(spec_file), reference.parent))
    rows = table.splitlines()[2:-1]
    assert len(rows) == 4 and all(r.endswith("finished  done") for r in rows)
    assert "4 done; the 0 left: estimated 0s" in table


def test_packed_grid_trains_each_cell_into_its_own_folder(reference, spec_file, tmp_path):
    """pack_runs=2: BC and PAC of each budget as one process and one vmapped program."""
    lines: list[str] = []
    spec = load_spec(spec_file).replace(pack_runs=2)
    rows = run_grid(spec, tmp_path, parallel=1, log=lines.append, progress=False)
    assert {r["status"] for r in rows} == {"done"}
    assert "4 to run in 2 packed jobs of up to 2" in lines[0]
    assert any("start 2 packed runs tiny_C1.5e9_a1_s0, tiny_C1.5e9_a0.5_s0" in line for line in lines)
    grid = tmp_path / "tiny"
    for cell in CELLS:
        result = json.loads((grid / cell / "result.json").read_text())
        assert result["throughput"]["packed_runs"] == 2
        a, b = _metrics(reference / cell), _metrics(grid / cell)
        assert list(a.step) == list(b.step)
        for column in ("loss", "bc_loss", "critic_loss"):
            pd.testing.assert_series_equal(a[column], b[column], rtol=0.05)  # see tests/test_packed.py
    assert "trained in one program with tiny_C1.5e9_a1_s0" in (grid / "tiny_C1.5e9_a0.5_s0" / "stdout.log").read_text()
    # Packing is how cells run, not what they compute: the same folder takes either.
    assert run_grid(load_spec(spec_file), tmp_path, log=lines.append, progress=False)[0]["status"] == "done"


def test_a_failing_cell_is_recorded_and_the_others_finish(reference, spec_file, tmp_path):
    claim_grid_dir(load_spec(spec_file), tmp_path / "tiny")
    bad = tmp_path / "tiny" / CELLS[1]
    bad.mkdir()
    config = json.loads((reference / CELLS[1] / "config.json").read_text())
    config["train"]["seed"] = 7  # someone else's run in this cell's folder
    (bad / "config.json").write_text(json.dumps(config))
    saved = (bad / "config.json").read_bytes()
    lines: list[str] = []
    rows = {r["cell"]: r for r in run_grid(load_spec(spec_file), tmp_path, parallel=2, only=CELLS[:2],
                                           log=lines.append, progress=False)}
    assert rows[CELLS[0]]["status"] == "done"
    assert rows[CELLS[1]]["status"] == "failed"
    assert "holds a run with a different config (seed: 7 there, 0 now)" in rows[CELLS[1]]["error"]
    assert rows[CELLS[2]]["status"] == rows[CELLS[3]]["status"] == "pending"
    index = pd.read_csv(tmp_path / "tiny" / "index.csv").set_index("cell")
    assert index.loc[CELLS[1], "status"] == "failed" and "different config" in index.loc[CELLS[1], "error"]
    assert (bad / "config.json").read_bytes() == saved and not (bad / "result.json").exists()
    pd.testing.assert_frame_equal(_metrics(tmp_path / "tiny" / CELLS[0]), _metrics(reference / CELLS[0]))
    # The CLI's exit status says a cell failed; the relaunch retries it (and fails the same way).
    out = subprocess.run(_grid_command(spec_file, tmp_path, "--only-cells", CELLS[1]), capture_output=True, text=True)
    assert out.returncode == 1 and "FAILED tiny_C1.5e9_a0.5_s0" in out.stdout


def test_a_plain_file_fails_its_cell_only_and_a_damaged_index_is_rebuilt(spec_file, tmp_path, capsys):
    # Issue 24, items 7-8: a plain file where a cell's folder goes, and index.csv (derived
    # data) garbled; neither stops the launcher or --status.
    spec = load_spec(spec_file)
    grid = tmp_path / "tiny"
    claim_grid_dir(spec, grid)
    (grid / CELLS[1]).write_text("not a folder")
    (grid / "index.csv").write_bytes(b"\xff\xfe\x00garbage\ncell,status\n")
    rows = {r["cell"]: r for r in run_grid(spec, tmp_path, only=[CELLS[1]], log=lambda _: None, progress=False)}
    assert rows[CELLS[1]]["status"] == "failed" and "exists and is not a folder" in rows[CELLS[1]]["error"]
    assert [rows[c]["status"] for c in (CELLS[0], CELLS[2], CELLS[3])] == ["pending"] * 3
    assert pd.read_csv(grid / "index.csv").set_index("cell").loc[CELLS[1], "status"] == "failed"
    # A damaged index of other shapes and values: --status rebuilds it.
    (grid / "index.csv").write_text(f"cell,status,wall_seconds,error\nnope,weird,abc,x\n{CELLS[2]},failed,abc,boom\n"
                                    f"{CELLS[3]},failed,-1,bang\n\"x\n")
    from pac import cli

    assert cli.main(["grid", str(spec_file), "--results", str(tmp_path), "--status"]) == 0, capsys.readouterr().err
    index = pd.read_csv(grid / "index.csv")
    assert list(index.cell) == CELLS and list(index.status) == ["pending", "pending", "failed", "failed"]
    assert list(index.error.fillna("")) == ["", "", "boom", "bang"] and index.wall_seconds.isna().all()


def test_a_killed_launcher_resumes_where_it_stopped(reference, spec_file, tmp_path):
    first, second = CELLS[0], CELLS[2]  # 17 then 62 updates, one at a time
    grid = tmp_path / "tiny"
    # The second cell is held after its step-15 row (past its step-10 checkpoint), however
    # fast the machine: the kill never races the job's end.
    proc = subprocess.Popen(_grid_command(spec_file, tmp_path, "--only-cells", first, second),
                            env=dict(os.environ, PAC_PAUSE_AFTER_ROW=f"{second}@15"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def held() -> bool:
        try:
            return (grid / second / "checkpoints" / "10").is_dir() and \
                "\n15,train" in (grid / second / "metrics.csv").read_text()
        except OSError:
            return False

    try:
        _wait_for(held, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (grid / first / "result.json").exists() and not (grid / second / "result.json").exists()
    deadline = time.time() + 10
    while _processes_mentioning(str(grid / second)) and time.time() < deadline:  # the child dies with the launcher
        time.sleep(0.05)
    assert not _processes_mentioning(str(grid / second)), "orphaned training process"
    assert pd.read_csv(grid / "index.csv").set_index("cell").loc[second, "status"] == "running"
    done_mtime = (grid / first / "result.json").stat().st_mtime_ns

    rows = {r["cell"]: r for r in run_grid(load_spec(spec_file), tmp_path, only=[first, second], log=lambda _: None,
                                           progress=False)}
    assert rows[first]["status"] == rows[second]["status"] == "done"
    assert (grid / first / "result.json").stat().st_mtime_ns == done_mtime
    assert "resumed" in (grid / second / "stdout.log").read_text()
    for cell in (first, second):
        pd.testing.assert_frame_equal(_metrics(grid / cell), _metrics(reference / cell))


def test_ctrl_c_stops_children_and_updates_the_index(tiny_dataset_dir, tmp_path):
    # A cell of thousands of updates: still running when Ctrl-C comes, however fast the
    # machine (compiled programs come from the cache).
    spec_file = tmp_path / "long_grid.py"
    spec_file.write_text(f"from launch.grids.tiny import get_config as tiny\n\n\ndef get_config():\n"
                         f"    return tiny().replace(name='long', dataset={str(tiny_dataset_dir)!r}, budgets=(5e11,), "
                         f"alphas=(1.0,), max_epochs=1e6)\n")
    grid, cell = tmp_path / "long", "tiny_C5e11_a1_s0"
    proc = subprocess.Popen(_grid_command(spec_file, tmp_path, "--only-cells", cell),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: (grid / cell / "checkpoints" / "10").is_dir(), proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "pac grid: interrupted" in err
    assert not _processes_mentioning(str(grid / cell))
    row = pd.read_csv(grid / "index.csv").set_index("cell").loc[cell]
    assert row["status"] == "pending" and "interrupted" in row["error"]
    assert not (grid / cell / "result.json").exists()


def test_xmanager_local_executor_runs_the_grid(reference, spec_file, tmp_path):
    pytest.importorskip("xmanager")
    claim_grid_dir(load_spec(spec_file), tmp_path / "tiny")
    bad = tmp_path / "tiny" / CELLS[1]  # one cell fails: its folder holds another run
    bad.mkdir()
    config = json.loads((reference / CELLS[1] / "config.json").read_text())
    config["train"]["alpha"] = 0.25
    (bad / "config.json").write_text(json.dumps(config))
    env = dict(os.environ, HOME=str(tmp_path / "home"))  # XManager's experiment database goes there
    out = subprocess.run([sys.executable, str(REPO / "launch" / "xm_launch.py"), f"--grid={spec_file}",
                          f"--results={tmp_path}", "--parallel=2"], capture_output=True, text=True, env=env,
                         cwd=REPO, timeout=480)
    assert out.returncode == 1, out.stderr[-3000:]
    assert "4 work units (local)" in out.stdout and "3 of 4 cells done or skipped, 1 failed" in out.stdout
    index = pd.read_csv(tmp_path / "tiny" / "index.csv").set_index("cell")
    assert list(index.index) == CELLS and index.loc[CELLS[1], "status"] == "failed"
    assert "holds a run with a different config" in out.stdout  # the cell's stderr, streamed by XManager
    for cell in (CELLS[0], CELLS[2], CELLS[3]):  # the same cells as the local executor's, to the last bit
        assert index.loc[cell, "status"] == "done"
        pd.testing.assert_frame_equal(_metrics(tmp_path / "tiny" / cell), _metrics(reference / cell))
    assert (tmp_path / "home" / ".xmanager" / "experiments.sqlite3").exists()
