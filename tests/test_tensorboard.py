"""`pac train --tensorboard true`: event files beside metrics.csv holding the logged scalars,
read back record by record (TFRecord framing + the Event protobuf tensorboardX writes)."""

from __future__ import annotations

import struct
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

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
    return cli.main(["train", "--run-dir", str(run_dir), "--no-progress", "--dataset", str(dataset), "--preset", "tiny",
                     "--steps", "8", "--batch-size", "8", "--log-every", "2", "--valid-every", "4",
                     "--checkpoint-every", "4", "--valid-examples-per-task", "16", "--valid-batch-size", "8",
                     "--eval-episodes", "1", "--num-sampled-actions", "2", *flags])


def test_tensorboard_events_hold_the_csv_metrics(tiny_dataset_dir, tmp_path):
    run = tmp_path / "run"
    assert _train(tiny_dataset_dir, run, "--tensorboard", "true") == 0
    metrics = pd.read_csv(run / "metrics.csv")
    scalars = _scalars(run / "tensorboard")
    for split, metric in (("train", "bc_loss"), ("train", "learning_rate"), ("valid", "bc_loss"),
                          ("valid", "bc_loss/point_mass-easy"), ("eval", "normalized_return")):
        rows = metrics[metrics.split == split].dropna(subset=[metric])
        assert len(rows) > 0, (split, metric)
        logged = scalars[f"{split}/{metric}"]
        assert sorted(logged) == sorted(rows.step), (split, metric)
        for step, value in zip(rows.step, rows[metric]):
            assert logged[step] == pytest.approx(value, rel=1e-6)  # float32 in the event file


def test_tensorboard_is_output_only(tiny_dataset_dir, tmp_path):
    """Turning it on for a finished run is not a different run (no refusal, nothing retrained)."""
    run = tmp_path / "run"
    assert _train(tiny_dataset_dir, run, "--eval-episodes", "0") == 0
    before = (run / "result.json").read_text()
    assert _train(tiny_dataset_dir, run, "--eval-episodes", "0", "--tensorboard", "true") == 0
    assert (run / "result.json").read_text() == before
