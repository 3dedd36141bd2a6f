"""Launch a grid with XManager: one work unit per cell.

    xmanager launch launch/xm_launch.py -- --grid=launch/grids/tiny.py            # local
    python launch/xm_launch.py --grid=launch/grids/tiny.py --parallel=2            # the same
    xmanager launch launch/xm_launch.py -- --grid=launch/grids/paper_like.py \\
        --executor=vertex --accelerator=h100 --bucket=gs://my-bucket/pac           # Vertex AI
    python launch/xm_launch.py --grid=... --executor=vertex ... --print_specs      # show, don't submit

Local (xm_local.Local): the jobs come from the launch function `pac grid` uses
(launch/jobs.py: the grid folder claimed and locked, finished and skipped cells left
out, cells packed by the spec's pack_runs); each job runs `<this python> -m harness.run
RUN_DIR... --config-json ...` (it writes, or checks, its folders' config.json) as a
subprocess of this script, in this directory, at most --parallel at once. index.csv is
kept live (running, done, failed as work units start and end) and rebuilt from the cell
folders when the experiment ends.

Vertex AI (xm_local.Vertex): the repository is built into a container by
xm.python_container (Docker or Cloud Build where you launch; or --image=URI of a prebuilt
one) and each cell runs the same entry point on its own machine with --accelerator x --accelerator_count;
results go to gs://BUCKET/PATH/<grid>/<cell>/ through Cloud Storage FUSE (/gcs/...), the
dataset is read from --dataset_uri (default gs://BUCKET/PATH/data/<dataset folder name>).
Refresh the index afterwards with `pac grid SPEC --results /gcs/... --status` on a machine
that mounts the bucket. Experiments are recorded in ~/.xmanager/experiments.sqlite3.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script (`xmanager launch launch/xm_launch.py`)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from absl import app, flags

from launch import xm_jobs

try:  # also defines --xm_launch_script, which `xmanager launch` passes
    from xmanager import xm  # noqa: F401
except ImportError:  # --print_specs works without the [xm] extra
    xm = None

_GRID = flags.DEFINE_string("grid", None, "grid spec file (defines get_config() -> GridSpec)")
_EXECUTOR = flags.DEFINE_enum("executor", "local", ["local", "vertex"], "where the cells run")
_ACCELERATOR = flags.DEFINE_enum("accelerator", "none", ["none", *xm_jobs.ACCELERATORS],
                                 "Vertex AI accelerator per cell")
_ACCELERATOR_COUNT = flags.DEFINE_integer("accelerator_count", 1, "accelerators (GPUs or TPU chips) per cell")
_BUCKET = flags.DEFINE_string("bucket", None, "Vertex AI results root, gs://BUCKET/PATH")
_DATASET_URI = flags.DEFINE_string("dataset_uri", None, "Vertex AI dataset, gs://... (default BUCKET/PATH/data/NAME)")
_RESULTS = flags.DEFINE_string("results", None, "local results root (default: the spec's results_root)")
_ONLY_CELLS = flags.DEFINE_list("only_cells", None, "run only these cells (comma-separated)")
_PARALLEL = flags.DEFINE_integer("parallel", 0, "local: work units at once (0: all)")
_IMAGE = flags.DEFINE_string("image", None, "Vertex AI: a prebuilt container image URI instead of building one")
_BASE_IMAGE = flags.DEFINE_string("base_image", None, "Vertex AI: base image of the built container")
_PRINT_SPECS = flags.DEFINE_bool("print_specs", False, "print the job specs as JSON and exit (nothing is launched)")


def vertex_machine_spec_patch(job) -> dict:
    """Replaces xmanager 0.8.5's Vertex machine-spec lookup, which gives H100s an n1 machine
    and knows no TPU after v3, with launch.xm_jobs' table (same output format)."""
    from google.cloud import aiplatform_v1 as aip_v1

    accelerator, count = job.executor.requirements.accelerator, None
    for name, info in xm_jobs.ACCELERATORS.items():
        if accelerator is not None and accelerator.name.lower() == info["resource"]:
            if info["kind"] == "tpu":
                topology = job.executor.requirements.topology.name
                count = {v: k for k, v in info["topologies"].items()}[topology]
            else:
                count = int(job.executor.requirements.task_requirements[accelerator])
            spec = xm_jobs.vertex_machine_spec(name, count)
            spec["accelerator_type"] = aip_v1.AcceleratorType[spec["accelerator_type"]]
            return spec
    return xm_jobs.vertex_machine_spec("none", 1)


def _xm_objects(spec, jobs):
    """(executable packageable, [(cell, args, executor)]) for the chosen executor."""
    from xmanager import xm
    from xmanager import xm_local

    if _EXECUTOR.value == "local":
        packageable = xm.binary(path=sys.executable, args=["-m", "harness.run"], executor_spec=xm_local.Local.Spec())
        return packageable, [(job, list(job.command[3:]), xm_local.Local()) for job in jobs]
    from xmanager.cloud import vertex as xm_vertex

    xm_vertex.get_machine_spec = vertex_machine_spec_patch
    image = jobs[0].image
    if "prebuilt" in image:
        packageable = xm.container(image_path=image["prebuilt"], executor_spec=xm_local.Vertex.Spec())
    else:
        packageable = xm.python_container(executor_spec=xm_local.Vertex.Spec(), path=str(xm_jobs.REPO_ROOT),
                                          base_image=image["base_image"], docker_instructions=image["docker_instructions"],
                                          entrypoint=xm.ModuleName("harness.run"))
    return packageable, [(job, list(job.command[3:]), xm_local.Vertex(requirements=xm.JobRequirements(**job.requirements)))
                         for job in jobs]


def _record(grid, job, state: str) -> None:
    """The live index (local): the job's cells' rows after a work unit starts or ends."""
    from harness import run_folder
    from launch import index as index_lib

    for cell, run_dir in zip(job.cells, job.run_dirs):
        row = grid.rows[cell]
        result = run_folder.read_result(run_dir) if state != "running" else None
        if result is not None:
            row.update(status="done", error=None, **index_lib.result_columns(result, Path(run_dir)))
        elif state == "running":
            row.update(status="running", error=None)
        else:
            error = state[len("failed: "):] if state.startswith("failed: ") else f"{run_dir} holds no result.json"
            row.update(status="failed", error=error)
    grid.write_index()


async def _launch(spec, jobs, parallel: int, grid=None) -> dict[str, str]:
    """Adds one work unit per job (at most `parallel` at once locally); returns the
    outcome per cell: 'completed' or the error. With `grid` (local), its index is kept live."""
    from xmanager import xm
    from xmanager import xm_local

    packageable, units = _xm_objects(spec, jobs)
    outcome: dict[str, str] = {}
    try:
        async with xm_local.create_experiment(experiment_title=xm_jobs.experiment_title(spec, _EXECUTOR.value)) as experiment:
            [executable] = experiment.package([packageable])
            print(f"XManager experiment {experiment.experiment_id}: {len(units)} work units ({_EXECUTOR.value})")
            gate = asyncio.Semaphore(parallel if parallel > 0 else len(units) or 1)

            async def one(job, args, executor):
                async with gate:
                    work_unit = await experiment.add(xm.Job(executable, executor=executor, args=args, env_vars=job.env))
                    what = job.cell if len(job.cells) <= 1 else f"{len(job.cells)} packed runs {', '.join(job.cells)}"
                    print(f"work unit {work_unit.work_unit_id}: {what}")
                    cells = job.cells or (job.cell,)
                    if _EXECUTOR.value != "local":
                        outcome.update((cell, "submitted") for cell in cells)
                        return
                    if grid is not None:
                        _record(grid, job, "running")
                    try:
                        await work_unit.wait_until_complete()
                        state = "completed"
                    except Exception as err:  # one failed job must not stop the others
                        state = f"failed: {str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__}"
                    outcome.update((cell, state) for cell in cells)
                    if grid is not None:
                        _record(grid, job, state)

            await asyncio.gather(*(one(*unit) for unit in units))
    except Exception:  # XManager re-raises a failed work unit's error when the experiment ends
        if not any(state.startswith("failed") for state in outcome.values()):
            raise
    return outcome


def main(argv) -> None:
    del argv
    with contextlib.ExitStack() as stack:
        _main(stack)


def _main(stack: contextlib.ExitStack) -> None:
    from launch import jobs as jobs_lib
    from launch.grid_folder import grid_dir, rebuild_index
    from launch.spec import load_spec

    if not _GRID.value:
        raise app.UsageError("--grid=SPEC is required")
    local = _EXECUTOR.value == "local"
    grid = None
    try:
        spec = load_spec(_GRID.value)
        if local and not _PRINT_SPECS.value:
            # The launch function pac grid uses: the grid folder claimed and locked for the
            # experiment, the jobs filtered and packed. The jobs write their own folders
            # (--config-json): a folder that holds another run fails as its own work unit.
            grid = stack.enter_context(jobs_lib.launch(spec, _RESULTS.value, _ONLY_CELLS.value, prepare=False))
        jobs = xm_jobs.build_job_specs(spec, _EXECUTOR.value, _ACCELERATOR.value, _ACCELERATOR_COUNT.value,
                                       bucket=_BUCKET.value, results_root=_RESULTS.value, dataset=_DATASET_URI.value,
                                       only=_ONLY_CELLS.value, python=sys.executable, image=_IMAGE.value,
                                       base_image=_BASE_IMAGE.value, grid=grid)
        if _PRINT_SPECS.value:
            print(json.dumps([job.to_json() for job in jobs], indent=2))
            return
    except ValueError as err:
        sys.exit(f"xm_launch: error: {err}")
    outcome: dict[str, str] = {}
    if grid is not None:
        grid.write_index()
    if not jobs:
        print(f"grid {spec.name}: nothing to run (all cells done or skipped)")
    else:
        outcome = asyncio.run(_launch(spec, jobs, _PARALLEL.value, grid))
        for cell, state in sorted(outcome.items()):
            print(f"{cell}: {state}")
    if local:
        failures = {c: o[len("failed: "):] for c, o in outcome.items() if o.startswith("failed")}
        rows = rebuild_index(spec, _RESULTS.value, failed=failures, cells=grid.cells)
        finished = sum(r["status"] in ("done", "skipped") for r in rows)
        print(f"index: {grid_dir(spec, _RESULTS.value) / 'index.csv'} ({finished} of {len(rows)} cells done or skipped, "
              f"{len(failures)} failed)")
        if failures:
            sys.exit(1)


if __name__ == "__main__":
    app.run(main)
