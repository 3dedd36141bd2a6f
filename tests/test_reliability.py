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
from harness.train import train
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
    with pytest.raises(Exception):
        train(_config(data, steps=4), run_dir, progress=False)
    assert not (run_dir / run_folder.CONFIG_FILE).exists()  # the failed run took its config back
    (data / "point_mass-easy.npz").write_bytes(good_arrays)
    assert train(_config(data, steps=4, batch_size=4), run_dir, progress=False)["steps"] == 4  # the fix runs
    # Once a run has trained, another config is refused.
    with pytest.raises(ValueError, match="holds a run with a different config"):
        run_folder.prepare(run_dir, _config(data, steps=4), {})


def test_a_spec_whose_get_config_raises_is_one_line(tmp_path):
    spec = tmp_path / "broken.py"
    spec.write_text("def get_config():\n    raise KeyError('budgets')\n")
    with pytest.raises(ValueError, match=r"grid spec .*broken.py: get_config\(\) raised KeyError: 'budgets'"):
        load_spec(spec)


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
