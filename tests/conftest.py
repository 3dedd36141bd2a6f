"""Shared fixtures: one tiny dataset recorded from the real dm_control tasks per session."""

from __future__ import annotations

import os

import tempfile

os.environ.setdefault("MUJOCO_GL", "disable")  # physics only: nothing renders
# Tests run many tiny jobs of the same shapes, in-process and in subprocesses: share
# compiled programs through JAX's persistent cache (set before jax is imported).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "pac-tests-jax-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import pytest

TINY_LEARNER = dict(agent_steps=600, warmup_steps=200, snapshot_every=200, eval_every=300, eval_episodes=1, chunk=40,
                    hidden_size=32, batch_size=32)
TINY_GENERATOR = dict(transitions_per_task=4000)
TINY_TASKS = ("cartpole-swingup", "point_mass-easy")


@pytest.fixture(scope="session")
def tiny_generator_config():
    from harness.data.generate import GeneratorConfig
    from harness.data.online import LearnerConfig

    return GeneratorConfig(learner=LearnerConfig(**TINY_LEARNER), **TINY_GENERATOR)


@pytest.fixture(scope="session")
def tiny_dataset_dir(tmp_path_factory, tiny_generator_config):
    """A real two-task dataset: SAC briefly learning cartpole-swingup and point_mass-easy,
    its snapshots rolled out."""
    from harness.data import generate

    out = tmp_path_factory.mktemp("data") / "tiny"
    generate.generate(TINY_TASKS, out, tiny_generator_config, workers=1, log=lambda _: None)
    return out
