"""Multi-host JAX: when a training job is one process of many, call
`jax.distributed.initialize` before anything touches the devices.

`initialize_args(env)` is a pure function of the environment that says whether and how:
  1. explicit:  JAX_COORDINATOR_ADDRESS=host:port JAX_NUM_PROCESSES=N JAX_PROCESS_ID=i
     (any cluster: set them on every process; process 0 runs the coordinator);
  2. Vertex AI multi-node: CLUSTER_SPEC (JSON: cluster.workerpool0..3 host:port lists and
     task.type/index); the coordinator is workerpool0's single replica, process ids
     follow the pools' order;
  3. Cloud TPU pod slices: TPU_WORKER_HOSTNAMES with more than one host, or a multislice
     job (MEGASCALE_COORDINATOR_ADDRESS): JAX finds everything itself, so initialize()
     is called without arguments.
Anything else (one process, the default) is left alone.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Optional

VERTEX_POOLS = ("workerpool0", "workerpool1", "workerpool2", "workerpool3")


def initialize_args(env: Mapping[str, str]) -> Optional[dict[str, Any]]:
    """Keyword arguments for jax.distributed.initialize, or None for a single process.
    Raises a one-line ValueError for an inconsistent environment."""
    if env.get("JAX_COORDINATOR_ADDRESS"):
        missing = [k for k in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID") if not env.get(k)]
        if missing:
            raise ValueError(f"JAX_COORDINATOR_ADDRESS is set but {missing[0]} is not; set all three for multi-host")
        try:
            num, pid = int(env["JAX_NUM_PROCESSES"]), int(env["JAX_PROCESS_ID"])
        except ValueError:
            raise ValueError(f"JAX_NUM_PROCESSES={env['JAX_NUM_PROCESSES']!r} and JAX_PROCESS_ID="
                             f"{env['JAX_PROCESS_ID']!r} must be integers") from None
        if not 0 <= pid < num:
            raise ValueError(f"JAX_PROCESS_ID={pid} must be in [0, JAX_NUM_PROCESSES={num})")
        if num == 1:
            return None
        return {"coordinator_address": env["JAX_COORDINATOR_ADDRESS"], "num_processes": num, "process_id": pid}
    if env.get("CLUSTER_SPEC"):
        return _vertex_args(env["CLUSTER_SPEC"])
    if env.get("MEGASCALE_COORDINATOR_ADDRESS"):
        return {}
    hosts = [h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h.strip()]
    if len(hosts) > 1:
        return {}
    return None


def _vertex_args(cluster_spec: str) -> Optional[dict[str, Any]]:
    try:
        spec = json.loads(cluster_spec)
        cluster, task = spec["cluster"], spec["task"]
        pool, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"CLUSTER_SPEC is not Vertex AI's cluster spec JSON ({type(err).__name__}: {err})") from None
    pools = [p for p in VERTEX_POOLS if cluster.get(p)]
    if pool not in pools or "workerpool0" not in pools:
        raise ValueError(f"CLUSTER_SPEC: task type {pool!r} is not among its pools {pools} (workerpool0 is required)")
    num = sum(len(cluster[p]) for p in pools)
    if num == 1:
        return None
    offset = sum(len(cluster[p]) for p in pools[:pools.index(pool)])
    if not 0 <= index < len(cluster[pool]):
        raise ValueError(f"CLUSTER_SPEC: task index {index} outside pool {pool!r} of {len(cluster[pool])}")
    return {"coordinator_address": cluster["workerpool0"][0], "num_processes": num, "process_id": offset + index}


def maybe_initialize(env: Optional[Mapping[str, str]] = None, log=lambda _: None) -> Optional[dict[str, Any]]:
    """Calls jax.distributed.initialize when the environment says this is one process of
    many; returns the arguments used (None for a single process)."""
    args = initialize_args(os.environ if env is None else env)
    if args is None:
        return None
    import jax

    jax.distributed.initialize(**args)
    log(f"jax.distributed: process {jax.process_index()} of {jax.process_count()}, "
        f"{jax.local_device_count()} local of {jax.device_count()} devices")
    return args
