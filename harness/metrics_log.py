"""The per-run metrics file: one CSV row per logged step, read back with pandas.

The columns are what was logged: the base counters, then every metric name in the order
it first appeared (the train rows' names, then the held-out rows', then the evaluation's).
A row with a name the file lacks widens it by one atomic rewrite, which happens a few
times per run. Rows are appended and flushed as they are made. On resume, rows logged
after the restored checkpoint (and any line cut short by a kill) are dropped by an atomic
rewrite, so a resumed run's file equals an uninterrupted run's. A file that is not what
this run writes (not the base columns first, a row that does not parse, steps out of
order) is never rewritten: it is kept aside under a new name and the run says so. Each
(step, split) is written once.

Fault tests kill a run at a known point, never by racing it: with PAC_PAUSE_AFTER_ROW
set to `STEP` (or `RUN_NAME@STEP`), the writer of that run blocks for good after writing
its train row of that step, so a SIGKILL lands there whatever the machine's speed.

With `tensorboard=True` every numeric value also goes to TensorBoard event files in
<run>/tensorboard/ (tensorboardX; tag `split/metric`), beside the CSV, never instead of
it. A resumed run starts its events with a purge at the restored step, so TensorBoard
drops what the killed run logged after its checkpoint, as the CSV does.
"""

from __future__ import annotations

import csv
import io
import math
import numbers
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from models.helpers import write_atomic

BASE_COLUMNS = ("step", "split", "flops", "examples", "tokens", "wall_time")


TENSORBOARD_DIR = "tensorboard"


def summary_writer_class():
    """tensorboardX's SummaryWriter, or a one-line error saying how to install it (checked
    before a run starts, so a run asked to write events never trains without them)."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ImportError("tensorboard=True needs tensorboardX: pip install 'pac-scaling[tensorboard]'") from None
    return SummaryWriter


def tensorboard_writer(directory: Path, resume_step: int | None):
    """A SummaryWriter in `directory`; a resumed run purges what followed its checkpoint."""
    return summary_writer_class()(str(directory), purge_step=None if resume_step is None else resume_step + 1, flush_secs=30)


class MetricsWriter:
    def __init__(self, path: str | os.PathLike, resume_step: int | None = None,
                 log: Callable[[str], None] = lambda _: None, tensorboard: bool = False):
        self.path = Path(path)
        self._tensorboard = tensorboard_writer(self.path.parent / TENSORBOARD_DIR, resume_step) if tensorboard else None
        self.columns = list(BASE_COLUMNS)
        kept: list[dict[str, str]] = []
        if resume_step is not None and self.path.exists():
            columns, kept, problem = self._read_consistent(resume_step)
            if problem:
                aside = self.path.with_name(f"{self.path.name}.{time.strftime('%Y%m%d-%H%M%S')}.kept")
                os.replace(self.path, aside)
                log(f"warning: {self.path} {problem}; kept it as {aside.name} and go on with its {len(kept)} "
                    f"readable rows up to step {resume_step}")
            if kept:
                self.columns = columns
        self._written = {(row["step"], row["split"]) for row in kept}
        self._file = None
        self._rewrite(kept)

    def _rewrite(self, rows: list[Mapping[str, str]]) -> None:
        """The file replaced atomically by `rows` under the current header; then appended to."""
        if self._file is not None:
            self._file.close()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_atomic(self.path, buffer.getvalue())
        self._file = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")

    def _read_consistent(self, resume_step: int) -> tuple[list[str], list[dict[str, str]], str | None]:
        """The file's columns, the rows to keep (step <= resume_step), and what is wrong with
        the file, if anything besides a last line cut short by a kill."""
        try:
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                columns = list(reader.fieldnames or [])
                if tuple(columns[:len(BASE_COLUMNS)]) != BASE_COLUMNS:
                    return columns, [], f"does not start with the columns {', '.join(BASE_COLUMNS)}"
                lines = list(reader)
        except (OSError, csv.Error, UnicodeDecodeError) as err:
            return [], [], f"is unreadable ({err})"
        kept, last_step = [], -1
        for number, row in enumerate(lines):
            cut_short = None in row.values() or row.get(columns[-1]) is None
            if cut_short and number == len(lines) - 1:
                continue  # a kill mid-write
            try:
                step = int(row["step"])
            except (TypeError, ValueError):
                step = None
            if cut_short or step is None or step < last_step:
                return columns, kept, f"has a bad row {number + 2} (cut short, no step, or steps out of order)"
            last_step = step
            if step <= resume_step:
                kept.append(row)
        return columns, kept, None

    def write(self, row: Mapping[str, Any]) -> None:
        key = (str(row.get("step")), str(row.get("split")))
        if key in self._written:
            return  # already logged (a run resumed at its very end repeats its last rows)
        self._written.add(key)
        new = [name for name in row if name not in self.columns]
        if new:  # a metric not logged before: widen the file (its rows are flushed already)
            with open(self.path, newline="") as f:
                rows = list(csv.DictReader(f))
            self.columns += new
            self._rewrite(rows)
        self._writer.writerow({k: _format(v) for k, v in row.items()})
        self._file.flush()
        if key[1] == "train" and _pause_requested(self.path.parent.name, key[0]):
            while True:  # a fault test's kill point: wait here for its SIGKILL
                time.sleep(3600)
        if self._tensorboard is not None:
            step = int(row["step"])
            for name, value in row.items():
                # numbers.Real: numpy scalars too (np.float32 is no Python float).
                if name not in BASE_COLUMNS and isinstance(value, numbers.Real) and math.isfinite(value):
                    self._tensorboard.add_scalar(f"{row['split']}/{name}", float(value), step)

    def close(self) -> None:
        self._file.close()
        if self._tensorboard is not None:
            self._tensorboard.close()


PAUSE_VARIABLE = "PAC_PAUSE_AFTER_ROW"


def _pause_requested(run_name: str, step: str) -> bool:
    wanted = os.environ.get(PAUSE_VARIABLE)
    if not wanted:
        return False
    name, _, at = wanted.rpartition("@")
    return at == step and name in ("", run_name)


def _format(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)  # shortest exact round-trip form
    return value


def logged_row(path: str | os.PathLike, step: int, split: str) -> dict[str, float]:
    """The metrics a run logged at (step, split), as floats, without the base columns ({}
    when there is no such row). A run resumed after its last checkpoint (killed during the
    final evaluation) cannot recompute the last step's training metrics: it reads them."""
    try:
        with open(path, newline="") as f:
            rows = [row for row in csv.DictReader(f) if row.get("step") == str(step) and row.get("split") == split]
    except (OSError, csv.Error, UnicodeDecodeError):
        return {}
    if not rows:
        return {}
    out = {}
    for name, value in rows[-1].items():
        if name in BASE_COLUMNS or name is None or value in (None, ""):
            continue  # columns of other splits are empty in this row
        try:
            out[name] = float(value)
        except ValueError:
            continue
    return out
