"""models.helpers: the one file lock (run folders and grid folders), atomic writes and the
checked replace."""

from __future__ import annotations

import dataclasses

import pytest

from harness import run_folder
from launch import grid_folder
from models.helpers import checked_replace, file_lock, write_atomic


def test_a_held_lock_refuses_a_second_holder_naming_the_first(tmp_path):
    path = tmp_path / ".lock"
    with file_lock(path, busy=lambda holder: f"busy: {holder}"):
        # flock belongs to the open file, so a second open in this process is refused too.
        with pytest.raises(ValueError, match=r"^busy: pid \d+ on .* since "):
            with file_lock(path, busy=lambda holder: f"busy: {holder}"):
                pass
    with file_lock(path, busy=lambda holder: f"busy: {holder}"):  # released on leaving the block
        pass


def test_run_and_grid_folders_share_the_lock(tmp_path):
    with run_folder.lock(tmp_path / "run"):
        with pytest.raises(ValueError, match=r"is being trained by pid \d+"):
            with run_folder.lock(tmp_path / "run"):
                pass
    with grid_folder.grid_lock(tmp_path):
        with pytest.raises(ValueError, match=r"another launcher \(pid \d+ .*\) is running grid"):
            with grid_folder.grid_lock(tmp_path):
                pass


def test_write_atomic_replaces_whole_files_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "a.json"
    write_atomic(path, "old")
    write_atomic(path, "new")
    assert path.read_text() == "new"
    with pytest.raises(TypeError):
        write_atomic(path, None)  # fails mid-write: the old file stays, no temp file is left
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_write_atomic_from_concurrent_threads_leaves_one_whole_file(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "index.csv"
    texts = [str(i) * 200_000 for i in range(8)]  # long writes, so the threads overlap
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda text: write_atomic(path, text), texts * 3))  # each raises on failure
    assert path.read_text() in texts and [p.name for p in tmp_path.iterdir()] == ["index.csv"]


def test_checked_replace_names_an_unknown_field():
    @dataclasses.dataclass(frozen=True)
    class Config:
        steps: int = 1

    assert checked_replace(Config(), steps=2) == Config(steps=2)
    with pytest.raises(ValueError, match="unknown Config field 'step'; valid: steps"):
        checked_replace(Config(), step=2)
