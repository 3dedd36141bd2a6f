"""The per-run metrics file: one CSV row per logged step, read back with pandas.

Rows are appended and flushed as they are made; the columns are fixed when the run
starts. On resume, rows logged after the restored checkpoint (and any line cut short by
a kill) are dropped by an atomic rewrite, so a resumed run's file equals an
uninterrupted run's.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from harness.run_folder import write_atomic

BASE_COLUMNS = ("step", "split", "flops", "examples", "tokens", "wall_time")


class MetricsWriter:
    def __init__(self, path: str | os.PathLike, metric_columns: Sequence[str], resume_step: int | None = None):
        self.path = Path(path)
        self.columns = list(BASE_COLUMNS) + [c for c in metric_columns if c not in BASE_COLUMNS]
        kept: list[dict[str, str]] = []
        if resume_step is not None and self.path.exists():
            with open(self.path, newline="") as f:
                for row in csv.DictReader(f):
                    # A kill can cut the last line short: it then lacks trailing fields.
                    if None in row.values() or row.get(self.columns[-1]) is None:
                        continue
                    if row["step"] and int(row["step"]) <= resume_step:
                        kept.append(row)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
        write_atomic(self.path, buffer.getvalue())
        self._file = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")

    def write(self, row: Mapping[str, Any]) -> None:
        self._writer.writerow({k: _format(v) for k, v in row.items()})
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _format(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)  # shortest exact round-trip form
    return value
