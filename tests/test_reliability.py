"""Faults a run folder must survive, and bad input that must give one line (issue 16)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from harness import run_folder
from harness.config import TrainConfig
from harness.metrics_log import BASE_COLUMNS, MetricsWriter
from harness.train import train, train_pack
from launch.spec import load_spec

REPO = Path(__file__).resolve().parent.parent


def _config(dataset, **changes) -> TrainConfig:
    return TrainConfig(preset="tiny", dataset=str(dataset), steps=8, batch_size=8, log_every=2, valid_every=4,
                       checkpoint_every=4, valid_examples_per_task=16, valid_batch_size=8, eval_episodes=0,
                       num_sampled_actions=2).replace(**changes)


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from harness import run_folder
        with run_folder.lock({str(tmp_path / 'run')!r}):
            print("locked", flush=True)
            time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ValueError, match=rf"is being trained by pid {holder.pid} on .* since"):
            with run_folder.lock(tmp_path / "run"):
                pass
    finally:
        holder.kill()
        holder.wait()
    with run_folder.lock(tmp_path / "run"):  # released when its holder died (SIGKILL)
        pass


def test_an_inconsistent_metrics_file_is_kept_aside(tmp_path):
    path = tmp_path / "metrics.csv"
    writer = MetricsWriter(path)
    for step in (10, 20, 30):
        writer.write({"step": step, "split": "train", "loss": 1.0 / step})
    writer.close()
    text = path.read_text().splitlines()
    text[2] = "garbage,row"  # step 20's row damaged
    path.write_text("\n".join(text) + "\n")
    messages = []
    writer = MetricsWriter(path, resume_step=30, log=messages.append)
    writer.close()
    kept = list(tmp_path.glob("metrics.csv.*.kept"))
    assert len(kept) == 1 and "garbage,row" in kept[0].read_text() and "bad row 3" in messages[0]
    assert list(pd.read_csv(path).step) == [10]  # the readable rows before the damage go on
    # Rows are written once per (step, split).
    writer = MetricsWriter(path, resume_step=30)
    writer.write({"step": 10, "split": "train", "loss": 5.0})
    writer.write({"step": 10, "split": "valid", "loss": 5.0})
    writer.close()
    assert list(zip(*[pd.read_csv(path)[c] for c in ("step", "split")])) == [(10, "train"), (10, "valid")]


def test_the_metrics_file_takes_its_columns_from_the_rows(tmp_path):
    path = tmp_path / "metrics.csv"
    writer = MetricsWriter(path)
    writer.write({"step": 10, "split": "train", "loss": 0.5})
    writer.write({"step": 10, "split": "valid", "bc_loss/walker": 2.0, "loss": 0.25})  # a new name widens it
    writer.write({"step": 20, "split": "train", "loss": 0.125})
    writer.close()
    table = pd.read_csv(path)
    assert list(table.columns) == [*BASE_COLUMNS, "loss", "bc_loss/walker"]
    assert list(table["loss"]) == [0.5, 0.25, 0.125] and table["bc_loss/walker"].isna().tolist() == [True, False, True]
    # A resumed run keeps the file's columns and order.
    writer = MetricsWriter(path, resume_step=10)
    writer.write({"step": 20, "split": "train", "loss": 0.125})
    writer.close()
    assert pd.read_csv(path).equals(table)


def test_a_run_that_failed_before_training_takes_the_corrected_config(tiny_dataset_dir, tmp_path):
    data, run_dir = tmp_path / "data", tmp_path / "run"
    shutil.copytree(tiny_dataset_dir, data)
    good_arrays = (data / "point_mass-easy.npz").read_bytes()
    (data / "point_mass-easy.npz").write_bytes(good_arrays[: len(good_arrays) // 2])  # truncated data
    with pytest.raises(ValueError, match=r"point_mass-easy\.npz: corrupted or truncated") as err:
        train(_config(data, steps=4), run_dir, progress=False)
    assert "\n" not in str(err.value)
    assert not (run_dir / run_folder.CONFIG_FILE).exists()  # the failed run took its config back
    (data / "point_mass-easy.npz").write_bytes(good_arrays)
    assert train(_config(data, steps=4, batch_size=4), run_dir, progress=False)["steps"] == 4  # the fix runs
    # Once a run has trained, another config is refused.
    with pytest.raises(ValueError, match="holds a run with a different config"):
        run_folder.prepare(run_dir, _config(data, steps=4), {})


def test_a_spec_whose_get_config_raises_is_one_line(tmp_path):
    spec = tmp_path / "broken.py"
    spec.write_text("def get_config():\n    raise KeyError('budgets')\n")
    with pytest.raises(ValueError, match=r"grid spec .*broken.py: get_config\(\) raised KeyError: 'budgets'") as err:
        load_spec(spec)
    assert "\n" not in str(err.value) and str(spec) in str(err.value)


@pytest.mark.parametrize("flags, message", [
    (["--steps", "100000000000000000000"], "--steps=100000000000000000000 must be in [1, 2147483647]"),
    (["--flop-budget", "1e40"], "more than 2147483647"),
    (["--flop-budget", "inf"], "--flop-budget=inf must be a finite number"),
    (["--flop-budget", "-1e9"], "--flop-budget=-1000000000.0 must be > 0"),
    (["--steps", "5", "--learning-rate", "nan"], "--learning-rate=nan must be a finite number"),
])
def test_bad_numbers_are_one_line_naming_the_flag(tiny_dataset_dir, tmp_path, flags, message):
    out = subprocess.run([sys.executable, "-m", "pac.cli", "train", "--run-dir", str(tmp_path / "r"), "--dataset",
                          str(tiny_dataset_dir), "--preset", "tiny", *flags], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert not (tmp_path / "r").exists()  # nothing written for a refused config


# --- Resume faults (issue 24, items 1, 4-6, 15): one trained pack, copied per test -----------

def _pack_configs(dataset="data") -> list[TrainConfig]:
    # A relative dataset path: each test works on its own copy of the data and the runs,
    # under the same config (the config names its dataset).
    return [_config(dataset, seed=seed, tasks=("cartpole-swingup",)) for seed in (0, 1)]


@pytest.fixture(scope="module")
def trained_pack(tiny_dataset_dir, tmp_path_factory):
    """A finished pack of two runs (steps 8, checkpoints at 4 and 8) and its results."""
    import os

    base = tmp_path_factory.mktemp("pack")
    (base / "data").mkdir()
    for suffix in ("npz", "json"):
        shutil.copy(tiny_dataset_dir / f"cartpole-swingup.{suffix}", base / "data")
    before = os.getcwd()
    os.chdir(base)
    try:
        results = train_pack(_pack_configs(), ["run0", "run1"], progress=False)
    finally:
        os.chdir(before)
    return base, results


def _copy_pack(trained_pack, tmp_path, monkeypatch) -> Path:
    base, _ = trained_pack
    copy = tmp_path / "pack"
    shutil.copytree(base, copy)
    monkeypatch.chdir(copy)
    return copy


def test_a_run_resumed_after_its_last_checkpoint_keeps_its_train_metrics(trained_pack, tmp_path, monkeypatch):
    # Killed after its last checkpoint (during the final evaluation): everything is on disk
    # but result.json.
    base = _copy_pack(trained_pack, tmp_path, monkeypatch)
    (base / "run0" / run_folder.RESULT_FILE).unlink()
    again = train(_pack_configs()[0], "run0", progress=False)
    first = trained_pack[1][0]
    assert again["train"] and again["train"] == pytest.approx(first["train"], nan_ok=True)
    assert again["valid"] == pytest.approx(first["valid"])


def test_a_paused_run_refuses_other_data_naming_what_changed(trained_pack, tmp_path, monkeypatch):
    from harness.data import storage

    base = _copy_pack(trained_pack, tmp_path, monkeypatch)
    (base / "run0" / run_folder.RESULT_FILE).unlink()
    data = storage.read_task("data", "cartpole-swingup")
    arrays = dict(data.arrays, rewards=data.arrays["rewards"] * 0.5)  # a valid dataset, other data
    storage.write_task("data", "cartpole-swingup", arrays,
                       {k: v for k, v in data.spec.items() if k not in ("arrays", "sha256")})
    with pytest.raises(ValueError, match=r"run0: its dataset changed since the run began \(task 'cartpole-swingup' "
                                         r"replaced \(sha256 \w{12} there, \w{12} now\)\)"):
        train(_pack_configs()[0], "run0", progress=False)
    # A task added under a run that trains on all of its dataset's tasks (issue 24, item 15).
    storage.write_task("data", "cartpole-swingup", data.arrays,
                       {k: v for k, v in data.spec.items() if k not in ("arrays", "sha256")})
    config = _pack_configs()[0].replace(tasks=None)
    shutil.rmtree(base / "all", ignore_errors=True)
    train(config.replace(steps=4, checkpoint_every=2), "all", progress=False)
    (base / "all" / run_folder.RESULT_FILE).unlink()
    storage.write_task("data", "cartpole-balance", data.arrays,
                       {k: v for k, v in data.spec.items() if k not in ("arrays", "sha256")})
    with pytest.raises(ValueError, match=r"all: its dataset changed since the run began \(task 'cartpole-balance' added\)"):
        train(config.replace(steps=4, checkpoint_every=2), "all", progress=False)
    assert train(_pack_configs()[0], "run0", progress=False)["steps"] == 8  # its own data back: it resumes


def test_a_pack_resumes_from_the_newest_step_all_its_runs_hold(trained_pack, tmp_path, monkeypatch):
    # Killed between the two runs' step-8 saves, after the first: steps {4, 8} and {4}.
    base = _copy_pack(trained_pack, tmp_path, monkeypatch)
    for run in ("run0", "run1"):
        (base / run / run_folder.RESULT_FILE).unlink()
    shutil.rmtree(base / "run1" / "checkpoints" / "8")
    messages = []
    again = train_pack(_pack_configs(), ["run0", "run1"], progress=False, log=messages.append)
    assert "resumed run0, run1 from step 4" in messages
    assert any("run0: skipped checkpoint step 8" in m for m in messages), messages
    for new, old in zip(again, trained_pack[1]):  # the same run as the uninterrupted one
        assert new["valid"] == pytest.approx(old["valid"], rel=1e-5) and new["steps"] == 8
    assert sorted(p.name for p in (base / "run1" / "checkpoints").iterdir() if p.name.isdigit()) == ["4", "8"]


def test_a_damaged_newest_checkpoint_is_skipped_for_the_older_one(trained_pack, tmp_path, monkeypatch):
    base = _copy_pack(trained_pack, tmp_path, monkeypatch)
    (base / "run0" / run_folder.RESULT_FILE).unlink()
    for path in (base / "run0" / "checkpoints" / "8").rglob("*"):
        if path.is_file():
            path.write_bytes(b"\x00garbage")
    messages = []
    again = train(_pack_configs()[0], "run0", progress=False, log=messages.append)
    assert any("run0: checkpoint step 8 does not read" in m for m in messages), messages
    assert "resumed run0 from step 4" in messages
    assert again["valid"] == pytest.approx(trained_pack[1][0]["valid"], rel=1e-5)


def test_a_checkpoint_that_cannot_be_written_stops_the_run_in_one_line(tiny_dataset_dir, tmp_path):
    """A full disk, simulated by a file-size limit the checkpoint's files exceed (issue 24,
    item 14): the run stops at the next save with one line naming the folder and the step
    that failed, and that line is all of stderr: neither orbax's own error logs (a
    traceback each) nor tensorstore's "Event loop is closed" tracebacks (up to 180 of them,
    1,100 lines, from the failed save's other writes finishing after orbax closed their
    event loop; see harness.checkpointing._run_sync_via_new_loop) are printed."""
    import os
    import resource

    run_dir = tmp_path / "full"
    command = [sys.executable, "-m", "pac.cli", "train", "--run-dir", str(run_dir), "--no-progress",
               "--dataset", str(tiny_dataset_dir), "--preset", "tiny", "--steps", "40", "--batch-size", "16",
               "--log-every", "5", "--valid-every", "20", "--checkpoint-every", "10", "--valid-examples-per-task", "32",
               "--valid-batch-size", "16", "--eval-episodes", "0", "--num-sampled-actions", "4"]
    limit = 200 * 1024  # metrics and config fit; the checkpoint's arrays do not

    # No compilation cache: JAX writes its entries in place, so the limit would leave truncated
    # ones behind (a warning each in every later run with these shapes, this test's included).
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR="")
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert "Event loop is closed" not in done.stderr and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len(lines) <= 5, done.stderr[-3000:]
    last = lines[-1]
    assert last.startswith(f"pac train: error: {run_dir / 'checkpoints'}: checkpoint step 10 could not be written (")
    assert last.endswith("then rerun the same command to resume from the start")
    assert "ERROR:absl" not in done.stderr
    steps = pd.read_csv(run_dir / "metrics.csv")["step"]
    assert steps.max() <= 20  # stopped at the next save, not at the end of the run
    assert not (run_dir / "result.json").exists()
