"""BC vs PAC on imported Minari data, evaluated in its Gymnasium environment (D4RL score).

Records a Minari dataset locally (minari.DataCollector around Gymnasium's InvertedPendulum-v5:
a balancing PD controller with per-episode action noise from none to swamping, so the data
mixes expert and failing episodes), imports it beside a dm_control task of a `pac data`
dataset, trains the tiny preset with alpha = 1 (BC) and alpha = 0.5 (PAC) over seeds, and
prints each run's return and D4RL score with 10 evaluation episodes. Nothing is downloaded.

    python -m benchmarks.minari_pendulum --steps 1000 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

GAINS = np.array([1.0, 10.0, 1.0, 1.0])  # balances InvertedPendulum-v5 (obs: x, theta, x', theta')
DATASET_ID = "pac-bench/invertedpendulum/noisy-pd-v0"


def record(episodes: int, max_steps: int, max_noise: float) -> None:
    import gymnasium as gym
    import minari

    collector = minari.DataCollector(gym.make("InvertedPendulum-v5", max_episode_steps=max_steps), data_format="arrow")
    rng = np.random.default_rng(0)
    for episode in range(episodes):
        observation, _ = collector.reset(seed=episode)
        noise, done = max_noise * episode / max(episodes - 1, 1), False
        while not done:
            action = np.clip(GAINS @ observation + noise * rng.normal(), -3.0, 3.0)
            observation, _, terminated, truncated, _ = collector.step(np.array([action], np.float32))
            done = terminated or truncated
    collector.create_dataset(dataset_id=DATASET_ID, algorithm_name="noisy PD controller", ref_min_score=5.0,
                             ref_max_score=float(max_steps))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/pac-minari-pendulum", help="datasets and runs (default: %(default)s)")
    parser.add_argument("--dm-control", default="results/data/demo", help="`pac data` folder with cartpole-swingup")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args(argv)
    work = Path(args.work)
    os.environ["MINARI_DATASETS_PATH"] = str(work / "minari")
    from harness.config import TrainConfig
    from harness.data import minari_io, storage
    from harness.train import train

    if not (work / "minari" / DATASET_ID).exists():
        record(args.episodes, max_steps=200, max_noise=4.0)
    data = work / "data"
    name = minari_io.task_name(DATASET_ID)
    if not (data / f"{name}.json").exists():
        data.mkdir(parents=True, exist_ok=True)
        for suffix in (".npz", ".json"):
            shutil.copy(Path(args.dm_control) / f"cartpole-swingup{suffix}", data)
        minari_io.import_dataset(DATASET_ID, data)
    task = storage.read_task(data, name)
    print(json.dumps({"episodes": task.num_episodes, "transitions": task.num_transitions,
                      "return_quantiles": np.quantile(task.arrays["episode_returns"], [0, .25, .5, .75, 1]).tolist(),
                      "terminated": int((task.arrays["discounts"] == 0).sum())}))
    for alpha in (1.0, 0.5):
        for seed in args.seeds:
            config = TrainConfig(preset="tiny", dataset=str(data), steps=args.steps, alpha=alpha, seed=seed,
                                 eval_episodes=10, valid_every=args.steps, checkpoint_every=args.steps)
            began = time.time()
            result = train(config, work / "runs" / f"alpha{alpha}_seed{seed}_steps{args.steps}", progress=False,
                           log=lambda _: None)
            pendulum = result["returns"][name]
            print(json.dumps({"alpha": alpha, "seed": seed, "return": pendulum["return"],
                              "d4rl_score": round(pendulum["d4rl_score"], 1),
                              "cartpole_normalized_return": round(result["returns"]["cartpole-swingup"]["normalized_return"], 3),
                              "valid_bc_loss": round(result["valid"]["bc_loss"], 4),
                              "seconds": round(time.time() - began, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
