"""`pac train --tensorboard`: event files beside metrics.csv holding the logged scalars,
read back record by record (TFRecord framing + the Event protobuf tensorboardX writes)."""

from __future__ import annotations

import struct
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.metrics_log import BASE_COLUMNS
from pac import cli

pytest.importorskip("tensorboardX")
from tensorboardX.proto import event_pb2  # noqa: E402


def _scalars(directory: Path) -> dict[str, dict[int, float]]:
    """tag -> {step: value} over every event file in `directory` (later events win)."""
    out: dict[str, dict[int, float]] = defaultdict(dict)
    for path in sorted(directory.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            record = data[offset + 12:offset + 12 + length]  # after the length and its CRC
            offset += 12 + length + 4  # and the record's CRC
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                out[value.tag][event.step] = value.simple_value
    return out


def _train(dataset, run_dir, *flags) -> int:
    # test_train.py's full job (programs of the same shapes: compiled once per suite, the
    # persistent compilation cache serves the other).
    return cli.main(["train", "--run-dir", str(run_dir), "--no-progress", "--dataset", str(dataset), "--preset", "tiny",
                     "--steps", "12", "--batch-size", "16", "--log-every", "4", "--valid-every", "6",
                     "--checkpoint-every", "6", "--valid-examples-per-task", "32", "--valid-batch-size", "16",
                     "--eval-episodes", "1", "--num-sampled-actions", "4", *flags])


def test_tensorboard_events_hold_the_csv_metrics(tiny_dataset_dir, tmp_path):
    run = tmp_path / "run"
    assert _train(tiny_dataset_dir, run, "--tensorboard") == 0  # a bare flag turns it on
    metrics = pd.read_csv(run / "metrics.csv")
    scalars = _scalars(run / "tensorboard")
    for split, metric in (("train", "bc_loss"), ("train", "learning_rate"), ("valid", "bc_loss"),
                          ("valid", "bc_loss/point_mass-easy"), ("eval", "normalized_return")):
        assert metrics[metrics.split == split][metric].notna().any(), (split, metric)
    # Every number of every row (but the x axes: step, flops, examples, ...) is a scalar
    # at its step, and nothing else is.
    expected = {}
    for column in metrics.columns.difference(BASE_COLUMNS):
        for split, step, value in zip(metrics.split, metrics.step, pd.to_numeric(metrics[column], errors="coerce")):
            if np.isfinite(value):
                expected.setdefault(f"{split}/{column}", {})[step] = value
    assert set(scalars) == set(expected)
    for tag, values in expected.items():
        assert sorted(scalars[tag]) == sorted(values), tag
        for step, value in values.items():
            assert scalars[tag][step] == pytest.approx(value, rel=1e-6, abs=1e-30), tag  # float32 in the file


def test_tensorboard_is_output_only(tiny_dataset_dir, tmp_path):
    """Turning it on for a finished run is not a different run (no refusal, nothing retrained)."""
    run = tmp_path / "run"
    assert _train(tiny_dataset_dir, run, "--eval-episodes", "0") == 0
    before = (run / "result.json").read_text()
    assert _train(tiny_dataset_dir, run, "--eval-episodes", "0", "--tensorboard", "true") == 0
    assert (run / "result.json").read_text() == before


def test_tensorboard_flag_values(tmp_path, capsys):
    assert cli.main(["train", "--run-dir", str(tmp_path), "--tensorboard", "maybe"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'maybe' is not a boolean; allowed: true, false" in err


def test_tensorboard_as_a_grid_base_setting(tiny_dataset_dir):
    """Every cell of a grid whose base sets it writes events; the grid stays the same grid."""
    from harness.config import TrainConfig
    from launch.spec import GridSpec

    plain = GridSpec(name="g", presets=("tiny",), budgets=(1e9,), dataset=str(tiny_dataset_dir))
    logged = plain.replace(base=TrainConfig(tensorboard=True))
    assert logged.cell_config("tiny", 1e9, 1.0, 0).tensorboard
    assert logged.identity() == plain.identity()
