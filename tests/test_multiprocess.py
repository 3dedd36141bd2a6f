"""One training job as 2 processes (jax.distributed over localhost, one CPU device each),
for real: the same run as one process, one set of run files, and resume after killing
both. Each process feeds its own slice of every global batch (the host-sampled path)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from harness import run_folder
from harness.config import TrainConfig
from harness.builder import plan_run

VOLATILE = ["wall_time", "steps_per_second", "data_wait_fraction"]
STEPS = 30


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _prepare(dataset, run_dir: Path) -> Path:
    # Gumbel draws: the sampled bins do not flip on the last-bit differences of a 2-device
    # reduction (see test_train.test_two_devices_give_the_same_update_as_one).
    config = TrainConfig(preset="tiny", dataset=str(dataset), steps=STEPS, batch_size=16, log_every=5, valid_every=10,
                         checkpoint_every=10, valid_examples_per_task=32, valid_batch_size=16, eval_episodes=0,
                         num_sampled_actions=4, action_sampling="gumbel", data_on_device=False)
    run_folder.prepare(run_dir, config, plan_run(config).to_json())
    return run_dir


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _start(run_dir: Path, processes: int, **env_vars: str) -> list[subprocess.Popen]:
    port = _free_port()
    started = []
    for pid in range(processes):
        env = dict(os.environ, JAX_PLATFORMS="cpu", **env_vars)
        if processes > 1:
            env.update(JAX_COORDINATOR_ADDRESS=f"localhost:{port}", JAX_NUM_PROCESSES=str(processes),
                       JAX_PROCESS_ID=str(pid))
        started.append(subprocess.Popen([sys.executable, "-m", "harness.run", str(run_dir), "--no-progress"], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return started


def _finish(procs: list[subprocess.Popen], timeout: float = 300) -> list[str]:
    outputs = [p.communicate(timeout=timeout)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-2000:]
    return outputs


def _metrics(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "metrics.csv").drop(columns=VOLATILE)


def test_two_processes_match_one_and_resume_after_both_are_killed(tiny_dataset_dir, tmp_path):
    one = _prepare(tiny_dataset_dir, tmp_path / "one")
    two = _prepare(tiny_dataset_dir, tmp_path / "two")
    _finish(_start(one, 1))
    outputs = _finish(_start(two, 2))
    assert all("process" in out and "of 2" in out for out in outputs), outputs[0][-500:]

    # One set of run files, each row once, written by process 0.
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    a, b = _metrics(one), _metrics(two)
    assert list(a.step) == list(b.step) and list(a.split) == list(b.split)
    assert not b.duplicated(["step", "split"]).any() and b.step.max() == STEPS
    for column in ("loss", "bc_loss", "critic_loss", "policy_loss", "q_mean"):
        pd.testing.assert_series_equal(a[column], b[column], rtol=1e-4, atol=1e-5)

    # Both processes SIGKILLed after the step-10 checkpoint; the same two commands resume
    # and end where the uninterrupted 2-process run ended.
    killed = _prepare(tiny_dataset_dir, tmp_path / "killed")
    # Held after the step-15 row (process 1 then waits on process 0), however fast the machine.
    procs = _start(killed, 2, PAC_PAUSE_AFTER_ROW="15")
    deadline = time.time() + 300
    while not ((killed / "checkpoints" / "10").is_dir() and "\n15,train" in _text(killed / "metrics.csv")) \
            and time.time() < deadline and procs[0].poll() is None:
        time.sleep(0.05)
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert not (killed / "result.json").exists(), "the job finished before it could be killed"
    outputs = _finish(_start(killed, 2))
    assert "resumed" in outputs[0]
    pd.testing.assert_frame_equal(_metrics(killed), b, rtol=1e-6)
