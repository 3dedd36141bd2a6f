"""XManager job specs for a grid: one work unit per job, as plain data first.

The jobs are the shared launch function's (launch/jobs.py: skipped and finished cells
left out, cells packed by the spec's pack_runs); a job is one cell, or several trained as
one program. `build_job_specs` is pure (no xmanager import): it says, per job, the command
line, the environment, the resource requirements and, for Vertex AI, the machine spec and
container image. launch/xm_launch.py turns the specs into xm.Job objects and launches them;
`--print_specs` prints them instead, which is how the Vertex path is checked without a
Google Cloud project.

Vertex AI jobs read and write through Cloud Storage FUSE: gs://BUCKET/PATH is mounted at
/gcs/BUCKET/PATH in every Vertex container, so results and the dataset are plain paths
for `pac train` (orbax checkpoints included).
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
from pathlib import Path
from typing import Any, Optional, Sequence

from launch import grid_folder
from launch.cells import Cell
from launch.jobs import Grid, grid_jobs
from launch.spec import GridSpec

# --accelerator name -> (xm.ResourceType name, Vertex accelerator_type, machine type by count, TPU topology by count)
ACCELERATORS: dict[str, dict[str, Any]] = {
    "a100": {"resource": "a100", "vertex_type": "NVIDIA_TESLA_A100", "kind": "gpu",
             "machines": {1: "a2-highgpu-1g", 2: "a2-highgpu-2g", 4: "a2-highgpu-4g", 8: "a2-highgpu-8g"}},
    "a100_80gb": {"resource": "a100_80gib", "vertex_type": "NVIDIA_A100_80GB", "kind": "gpu",
                  "machines": {1: "a2-ultragpu-1g", 2: "a2-ultragpu-2g", 4: "a2-ultragpu-4g", 8: "a2-ultragpu-8g"}},
    "h100": {"resource": "h100", "vertex_type": "NVIDIA_H100_80GB", "kind": "gpu",
             "machines": {1: "a3-highgpu-1g", 2: "a3-highgpu-2g", 4: "a3-highgpu-4g", 8: "a3-highgpu-8g"}},
    "tpu_v5e": {"resource": "tpu_v5e", "vertex_type": "TPU_V5_LITEPOD", "kind": "tpu",
                "machines": {1: "ct5lp-hightpu-1t", 4: "ct5lp-hightpu-4t", 8: "ct5lp-hightpu-8t"},
                "topologies": {1: "1x1", 4: "2x2", 8: "2x4"}},
    "tpu_v4": {"resource": "tpu_v4", "vertex_type": "TPU_V4_POD", "kind": "tpu",
               "machines": {4: "cloud-tpu", 8: "cloud-tpu", 16: "cloud-tpu", 32: "cloud-tpu"},
               "topologies": {4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4"}},
}
DEFAULT_BASE_IMAGE = "python:3.11-slim"
REPO_ROOT = Path(__file__).resolve().parent.parent
JAX_EXTRA = {"gpu": "jax[cuda12]==0.10.2", "tpu": "jax[tpu]==0.10.2", "cpu": "jax[cpu]==0.10.2"}


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """One job (a cell, or a pack of cells), as XManager will be asked to run it."""

    cell: str  # its first cell, which names it (the job's output is in that cell's folder)
    executor: str  # 'local' or 'vertex'
    run_dir: str  # that cell's folder
    command: tuple[str, ...]  # program and arguments: <python> -m harness.run RUN_DIR... --config-json ...
    env: dict[str, str]
    requirements: dict[str, Any]  # xm.JobRequirements(**requirements)
    machine_spec: Optional[dict[str, Any]] = None  # Vertex AI WorkerPoolSpec.machine_spec
    image: Optional[dict[str, Any]] = None  # Vertex: the container to build (or a prebuilt one)
    cells: tuple[str, ...] = ()  # all its cells, one program (packs)
    run_dirs: tuple[str, ...] = ()
    configs: tuple[dict[str, Any], ...] = ()  # each run's resolved TrainConfig (its folder's config.json)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def gcs_to_fuse(uri: str) -> str:
    """gs://bucket/path -> /gcs/bucket/path (Cloud Storage FUSE inside Vertex AI jobs)."""
    if not uri.startswith("gs://") or len(uri) <= 5:
        raise ValueError(f"{uri!r} is not a gs://BUCKET/PATH URI")
    return "/gcs/" + uri[5:].rstrip("/")


def vertex_machine_spec(accelerator: str, count: int) -> dict[str, Any]:
    """Vertex AI machine spec for `count` accelerators of one kind on one node."""
    if accelerator in ("", "none", "cpu"):
        return {"machine_type": "n1-standard-8"}
    if accelerator not in ACCELERATORS:
        raise ValueError(f"unknown accelerator {accelerator!r}; known: none, {', '.join(ACCELERATORS)}")
    info = ACCELERATORS[accelerator]
    if count not in info["machines"]:
        raise ValueError(f"{accelerator} x {count} is not a Vertex AI machine; counts: {sorted(info['machines'])}")
    spec = {"machine_type": info["machines"][count], "accelerator_type": info["vertex_type"], "accelerator_count": count}
    if info["kind"] == "tpu":
        spec["tpu_topology"] = info["topologies"][count]
    return spec


def requirements(accelerator: str, count: int) -> dict[str, Any]:
    """Keyword arguments of xm.JobRequirements (e.g. {'h100': 1}, {'tpu_v5e': '2x2'})."""
    if accelerator in ("", "none", "cpu"):
        return {}
    vertex_machine_spec(accelerator, count)  # validates the name and the count
    info = ACCELERATORS[accelerator]
    if info["kind"] == "tpu":
        return {info["resource"]: info["topologies"][count]}
    return {info["resource"]: count}


def build_job_specs(spec: GridSpec, executor: str = "local", accelerator: str = "none", accelerator_count: int = 1,
                    bucket: Optional[str] = None, results_root: Optional[str] = None, dataset: Optional[str] = None,
                    only: Optional[Sequence[str]] = None, python: str = "python", image: Optional[str] = None,
                    base_image: Optional[str] = None, cells: Optional[Sequence[Cell]] = None,
                    grid: Optional[Grid] = None) -> list[JobSpec]:
    """One JobSpec per job of the shared launch function: `grid`'s (launch.jobs.launch:
    the launcher has claimed the local grid folder), or the ones `grid_jobs` finds without
    writing anything (--print_specs, Vertex AI): skipped cells (outside the sane bounds)
    and finished cells (result.json, where the launcher sees the folders) are left out."""
    if executor not in ("local", "vertex"):
        raise ValueError(f"executor={executor!r}; allowed: local, vertex")
    env = {"PYTHONUNBUFFERED": "1"}
    if executor == "local":
        root = grid_folder.grid_dir(spec, results_root)
        data, reqs, machine, image_spec, program = spec.dataset, {}, None, None, [python, "-m", "harness.run"]
    else:
        if not bucket:
            raise ValueError("--executor=vertex needs --bucket=gs://BUCKET/PATH (the results root on Cloud Storage)")
        root = Path(posixpath.join(gcs_to_fuse(bucket), spec.name))
        data = gcs_to_fuse(dataset) if dataset else posixpath.join(gcs_to_fuse(bucket), "data", Path(spec.dataset).name)
        reqs = requirements(accelerator, accelerator_count)
        machine = vertex_machine_spec(accelerator, accelerator_count)
        kind = ACCELERATORS.get(accelerator, {}).get("kind", "cpu")
        if image:
            image_spec = {"prebuilt": image}
        else:
            image_spec = {"build": "xm.python_container(path=<repo root>, entrypoint=xm.ModuleName('harness.run'))",
                          "base_image": base_image or DEFAULT_BASE_IMAGE,
                          "docker_instructions": docker_instructions(kind)}
        program = ["python", "-m", "harness.run"]
        env.update({"MUJOCO_GL": "disable", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"})  # physics only
    if grid is None:
        grid = grid_jobs(spec, root, only, cells)
    specs = []
    for job in grid.jobs:
        configs = [cell.config.replace(dataset=str(data)).to_json() for cell in job.cells]
        # The job's entry point, as under every executor. Its configs travel with it and the
        # job writes them into (or checks them against) the folders' config.json first,
        # then reads the folders as any job does (harness.run.prepared): on Vertex the
        # launcher cannot write into the bucket, and locally a folder that holds another
        # run then fails as that one job, its error streamed with the others' output.
        configs_json = [a for c in configs for a in ("--config-json", json.dumps(c, separators=(",", ":")))]
        command = (*program, *job.arguments(), *configs_json)
        specs.append(JobSpec(job.name, executor, str(job.run_dirs[0]), command, dict(env), dict(reqs), machine,
                             image_spec, tuple(c.name for c in job.cells), tuple(str(d) for d in job.run_dirs),
                             tuple(configs)))
    return specs


def docker_instructions(kind: str, project_dir: str = REPO_ROOT.name) -> list[str]:
    """What xm.python_container's build runs (Docker or Cloud Build where you launch). The
    build context is the repository's parent folder, so the repository is `project_dir`.
    GPU images need no CUDA base: the jax[cuda12] wheels bring CUDA, Vertex the driver."""
    return ["ENV LANG=C.UTF-8 MUJOCO_GL=disable",
            f"COPY --chown=1000:root {project_dir}/ /pac",
            "WORKDIR /pac",
            f"RUN python -m pip install --no-cache-dir . '{JAX_EXTRA[kind]}'"]


def experiment_title(spec: GridSpec, executor: str) -> str:
    return f"pac-grid-{spec.name}-{executor}"
