"""The grid launcher without training: specs, expansion and skipping, the dry-run table,
bad input, flags round trip, multi-host detection and the XManager / Vertex AI job specs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import distributed, run_folder
from harness.config import TrainConfig
from harness.train import plan_run
from launch import xm_jobs
from launch.cells import cell_name, expand
from launch.grid_folder import check_grid_dir, claim_grid_dir
from launch.spec import GridSpec, load_spec, log_spaced
from pac import cli

REPO = Path(__file__).resolve().parent.parent
TINY_BASE = TrainConfig(batch_size=16, num_sampled_actions=4, eval_episodes=0)


def _spec(dataset, **changes) -> GridSpec:
    spec = GridSpec(name="t", presets=("tiny", "150k"), budgets=(1e7, 1.5e9, 1e11), alphas=(1.0, 0.5), seeds=(0,),
                    dataset=str(dataset), base=TINY_BASE, min_steps=10, max_epochs=1.0)
    return spec.replace(**changes)


def _write_spec(path: Path, body: str) -> Path:
    path.write_text("from harness.config import TrainConfig\nfrom launch.spec import GridSpec\n\n" + body)
    return path


def test_log_spaced_budgets():
    assert log_spaced(1e12, 1e14, 5) == (1e12, 3.16e12, 1e13, 3.16e13, 1e14)
    assert log_spaced(5e10, 5e10, 1) == (5e10,)
    with pytest.raises(ValueError, match="lo <= hi"):
        log_spaced(0, 1e12, 3)


def test_expansion_sizes_cells_with_plan_run_and_skips_with_reasons(tiny_dataset_dir):
    cells = expand(_spec(tiny_dataset_dir))
    assert len(cells) == 2 * 3 * 2
    assert [c.name for c in cells[:2]] == ["tiny_C1e7_a1_s0", "tiny_C1e7_a0.5_s0"]
    by_name = {c.name: c for c in cells}
    ok = by_name["tiny_C1.5e9_a0.5_s0"]
    assert ok.skip_reason is None and ok.steps == plan_run(ok.config).steps == int(1.5e9 // ok.flops_per_update)
    assert ok.config.flop_budget == 1.5e9 and ok.config.steps is None and ok.config.alpha == 0.5
    assert ok.examples == ok.steps * 16 and ok.params > 0 and ok.params_nonembedding < ok.params
    # Budget below one update, too few steps, too many epochs.
    assert by_name["tiny_C1e7_a1_s0"].steps == 0
    assert "steps < min_steps 10" in by_name["tiny_C1e7_a1_s0"].skip_reason
    assert "steps < min_steps 10" in by_name["150k_C1.5e9_a1_s0"].skip_reason
    assert "epochs > max_epochs 1" in by_name["tiny_C1e11_a1_s0"].skip_reason
    assert by_name["150k_C1e11_a1_s0"].skip_reason is None
    assert cell_name("1.5m", 3.16e15, 0.25, 2) == "1.5m_C3.16e15_a0.25_s2"


def test_max_examples_per_param_skips_models_too_small_for_their_budget(tiny_dataset_dir):
    spec = _spec(tiny_dataset_dir, budgets=(1.5e9, 1e10), max_epochs=1e6)
    ratio = {c.name: c.examples / c.params for c in expand(spec)}
    bound = (ratio["tiny_C1.5e9_a1_s0"] + ratio["tiny_C1e10_a1_s0"]) / 2  # between the two tiny cells
    by_name = {c.name: c for c in expand(spec.replace(max_examples_per_param=bound))}
    assert by_name["tiny_C1.5e9_a1_s0"].skip_reason is None
    assert "examples per parameter > max_examples_per_param" in by_name["tiny_C1e10_a1_s0"].skip_reason
    assert by_name["150k_C1e10_a1_s0"].skip_reason is None  # the larger model at the same budget stays
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="max_examples_per_param"):
            spec.replace(max_examples_per_param=bad).validate()


def test_a_skipped_cell_is_indexed_as_skipped_and_never_trained(tiny_dataset_dir, tmp_path):
    # Issue 24's mutation check: with the launcher's skip rule disabled (a skipped cell
    # indexed 'pending'), every other test passed.
    from launch.local import run_grid

    spec = _spec(tiny_dataset_dir)
    skipped = [c.name for c in expand(spec) if c.skipped]
    assert {"tiny_C1e7_a1_s0", "tiny_C1e11_a1_s0"} <= set(skipped)
    rows = {r["cell"]: r for r in run_grid(spec, tmp_path, only=skipped, log=lambda _: None, progress=False)}
    assert all(rows[name]["status"] == "skipped" and rows[name]["reason"] for name in skipped), rows
    assert not any((tmp_path / "t" / name).exists() for name in skipped)  # no run folder: nothing trained


def test_packs_group_cells_of_one_preset_and_budget(tiny_dataset_dir):
    from launch.jobs import packs

    spec = _spec(tiny_dataset_dir, seeds=(0, 1, 2))
    cells = [c for c in expand(spec) if not c.skipped]
    jobs = packs(cells, 4)
    assert all(len({(c.preset, c.budget) for c in job}) == 1 and 1 <= len(job) <= 4 for job in jobs)
    assert sorted(c.name for job in jobs for c in job) == sorted(c.name for c in cells)
    assert [len(job) for job in packs(cells, 1)] == [1] * len(cells)
    assert spec.replace(pack_runs=4).identity() == spec.identity()  # how cells run, not what they compute
    with pytest.raises(ValueError, match="pack_runs=0 must be an integer >= 1"):
        spec.replace(pack_runs=0).validate()
    with pytest.raises(ValueError, match="needs base.data_on_device=True"):
        spec.replace(pack_runs=2, base=TINY_BASE.replace(data_on_device=False)).validate()


def test_dry_run_prints_the_table(tiny_dataset_dir, tmp_path, capsys):
    spec_file = _write_spec(tmp_path / "grid.py", f"def get_config():\n    return GridSpec(name='dry', presets=('tiny',), "
                            f"budgets=(1e7, 1.5e9), alphas=(1.0, 0.5), dataset={str(tiny_dataset_dir)!r}, "
                            f"base=TrainConfig(batch_size=16, num_sampled_actions=4), min_steps=10)\n")
    assert cli.main(["grid", str(spec_file), "--dry-run", "--results", str(tmp_path / "res")]) == 0
    out = capsys.readouterr().out
    assert "4 cells (1 presets x 2 budgets x 2 alphas x 1 seeds)" in out
    assert "tiny_C1.5e9_a0.5_s0" in out and "assumed" in out and "skip: 0 steps < min_steps 10" in out
    assert "2 cells to run, 2 skipped, 0 done; the 2 left: estimated" in out
    assert not (tmp_path / "res").exists(), "a dry run writes nothing"


def test_the_run_folder_config_rebuilds_the_cell_config_exactly(tiny_dataset_dir, tmp_path):
    """A cell is its folder: the config.json the launcher writes is what the job reads."""
    config = _spec(tiny_dataset_dir).cell_config("tiny", 3.16e12, 0.5, 3).replace(tasks=("a", "b"), learning_rate=1e-3 / 3)
    run_folder.prepare(tmp_path / "cell", config, {"steps": 1})
    assert run_folder.read_config(tmp_path / "cell") == config
    run_folder.prepare(tmp_path / "cell", config, {"steps": 1})  # the same config again: accepted
    with pytest.raises(ValueError, match=r"holds a run with a different config \(seed: 3 there, 4 now\)"):
        run_folder.prepare(tmp_path / "cell", config.replace(seed=4), {"steps": 1})


@pytest.mark.parametrize("body, message", [
    ("def get_config():\n    return GridSpec(name='b', presets=('huge',), budgets=(1e12,))\n", "unknown model preset 'huge'"),
    ("def get_config():\n    return GridSpec(name='b', presets=(), budgets=(1e12,))\n", "is empty: presets has no values"),
    ("def get_config():\n    return GridSpec(name='b', presets=('tiny',), budgets=())\n", "is empty: budgets has no values"),
    ("def get_config():\n    return GridSpec(name='b', presets=('tiny',), budgets=(1e12, -1.0))\n", "must be a positive number"),
    ("def get_config():\n    return GridSpec(name='b', presets=('tiny',), budgets=(1e12,), alphas=(1.5,))\n", "must be in [0, 1]"),
    ("def get_config():\n    return GridSpec(name='b', presets=('tiny',), budgets=(1e12,), alphas=(0.5, 0.5000001))\n",
     "alphas [0.5, 0.5000001] are not distinct at 6 significant digits (cell names spell them ['0.5', '0.5'])"),
    ("def get_config():\n    return GridSpec(name='b', presets=('tiny',), budgets=(1e12,), alphas=(1, 1.0))\n",
     "alphas has duplicates"),
    ("def config():\n    pass\n", "has no get_config() function"),
    ("def get_config():\n    return {'name': 'b'}\n", "returned dict, not a launch.spec.GridSpec"),
    ("def get_config(:\n", "failed to load: SyntaxError"),
])
def test_bad_specs_are_one_line_errors(tmp_path, capsys, body, message):
    spec_file = _write_spec(tmp_path / "bad.py", body)
    assert cli.main(["grid", str(spec_file), "--results", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pac grid: error:") and message in err and "\n" not in err
    # A file that does not give a spec is named; an invalid spec names its grid and field.
    names_file = message.startswith(("has no get_config", "returned dict", "failed to load"))
    assert (str(spec_file) in err) if names_file else ("grid 'b'" in err), err
    assert not (tmp_path / "res").exists()


def test_missing_spec_file_and_unknown_cell(tiny_dataset_dir, tmp_path, capsys):
    assert cli.main(["grid", str(tmp_path / "nope.py")]) == 2
    err = capsys.readouterr().err.strip()
    assert f"grid spec {tmp_path / 'nope.py'} does not exist" in err and len(err.splitlines()) == 1
    spec_file = _write_spec(tmp_path / "g.py", f"def get_config():\n    return GridSpec(name='g', presets=('tiny',), "
                            f"budgets=(1.5e9,), dataset={str(tiny_dataset_dir)!r}, base=TrainConfig(batch_size=16), min_steps=1)\n")
    assert cli.main(["grid", str(spec_file), "--results", str(tmp_path / "res"), "--only-cells", "tiny_C9e9_a1_s0"]) == 2
    assert "unknown cell 'tiny_C9e9_a1_s0'" in capsys.readouterr().err
    assert not (tmp_path / "res").exists()


def test_a_spec_that_only_adds_seeds_takes_over_the_folder(tiny_dataset_dir, tmp_path):
    # More seeds of the same cells extend a finished grid (the cells done stay its cells);
    # a seed list that drops one, or more seeds with any other change, is another grid.
    spec = _spec(tiny_dataset_dir).replace(seeds=(0,))
    folder = tmp_path / "t"
    claim_grid_dir(spec, folder)
    with pytest.raises(ValueError, match=r"different spec of grid 't' \(seeds: \[0\] there, \[1\] now\)"):
        check_grid_dir(spec.replace(seeds=(1,)), folder)
    with pytest.raises(ValueError, match=r"base.batch_size: 16 there, 32 now"):
        claim_grid_dir(spec.replace(seeds=(0, 1), base=TINY_BASE.replace(batch_size=32)), folder)
    claim_grid_dir(spec.replace(seeds=(0, 1)), folder)
    assert json.loads((folder / "grid.json").read_text())["identity"]["seeds"] == [0, 1]
    with pytest.raises(ValueError, match=r"seeds: \[0, 1\] there, \[0\] now"):
        check_grid_dir(spec, folder)


def test_a_launch_that_adds_seeds_beside_a_running_launcher_leaves_grid_json_alone(tiny_dataset_dir, tmp_path):
    from launch import grid_folder, jobs

    spec = _spec(tiny_dataset_dir, results_root=str(tmp_path)).replace(seeds=(0,))
    folder = tmp_path / "t"
    claim_grid_dir(spec, folder)
    saved = (folder / "grid.json").read_bytes()
    with grid_folder.grid_lock(folder):  # a launcher of the saved spec is running
        with pytest.raises(ValueError, match="another launcher"):
            with jobs.launch(spec.replace(seeds=(0, 1)), prepare=False):
                pass
    assert (folder / "grid.json").read_bytes() == saved


def test_a_results_folder_of_another_spec_is_refused(tiny_dataset_dir, tmp_path):
    spec = _spec(tiny_dataset_dir)
    folder = tmp_path / "t"
    claim_grid_dir(spec, folder)
    saved = (folder / "grid.json").read_bytes()
    claim_grid_dir(spec.replace(results_root="elsewhere", assumed_flops_per_second=1e9), folder)  # same cells: fine
    with pytest.raises(ValueError, match=r"different spec of grid 't' \(budgets: .* there, .* now\)"):
        check_grid_dir(spec.replace(budgets=(1e12,)), folder)
    with pytest.raises(ValueError, match=r"base.batch_size: 16 there, 32 now"):
        claim_grid_dir(spec.replace(base=TINY_BASE.replace(batch_size=32)), folder)
    assert (folder / "grid.json").read_bytes() == saved
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a grid folder"):
        claim_grid_dir(spec, other)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


def test_shipped_grids(tiny_dataset_dir):
    from models import counts, presets

    demo = load_spec(REPO / "launch/grids/demo.py")
    assert len(demo.presets) >= 4 and len(demo.budgets) >= 3 and set(demo.alphas) == {1.0, 0.5}
    assert all(counts.param_count(presets.get_preset(p)) < 1_000_000 for p in demo.presets)
    paper = load_spec(REPO / "launch/grids/paper_like.py")
    assert max(paper.budgets) / min(paper.budgets) >= 100 and paper.base.compute_dtype == "bfloat16"
    sizes = [counts.param_count(presets.get_preset(p)) for p in paper.presets]
    assert min(sizes) < 2e6 and max(sizes) > 1e8
    for spec in (demo, paper, load_spec(REPO / "launch/grids/tiny.py")):
        cells = expand(spec.replace(dataset=str(tiny_dataset_dir)))
        assert len(cells) == len(spec.presets) * len(spec.budgets) * len(spec.alphas) * len(spec.seeds)


@pytest.mark.parametrize("env, expected", [
    ({}, None),
    ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "2"},
     {"coordinator_address": "10.0.0.1:1234", "num_processes": 4, "process_id": 2}),
    ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "1", "JAX_PROCESS_ID": "0"}, None),
    ({"TPU_WORKER_HOSTNAMES": "t0,t1,t2,t3"}, {}),
    ({"TPU_WORKER_HOSTNAMES": "localhost"}, None),
    ({"MEGASCALE_COORDINATOR_ADDRESS": "c:8080"}, {}),
    ({"CLUSTER_SPEC": json.dumps({"cluster": {"workerpool0": ["cmle-training-workerpool0-ab-0:2222"],
                                              "workerpool1": ["w1-0:2222", "w1-1:2222", "w1-2:2222"]},
                                  "task": {"type": "workerpool1", "index": 1}})},
     {"coordinator_address": "cmle-training-workerpool0-ab-0:2222", "num_processes": 4, "process_id": 2}),
    ({"CLUSTER_SPEC": json.dumps({"cluster": {"workerpool0": ["solo:2222"]}, "task": {"type": "workerpool0", "index": 0}})},
     None),
])
def test_multi_host_detection(env, expected):
    assert distributed.initialize_args(env) == expected


@pytest.mark.parametrize("env, message", [
    ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2"}, "JAX_PROCESS_ID is not"),
    ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"}, "must be in [0"),
    ({"CLUSTER_SPEC": "{not json"}, "not Vertex AI's cluster spec"),
])
def test_multi_host_bad_environment(env, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        distributed.initialize_args(env)


def test_vertex_job_specs_are_built_without_submitting(tiny_dataset_dir):
    spec = load_spec(REPO / "launch/grids/paper_like.py").replace(dataset=str(tiny_dataset_dir))
    jobs = xm_jobs.build_job_specs(spec, "vertex", "h100", 1, bucket="gs://bkt/pac", dataset="gs://bkt/data/full")
    cells = [c for c in expand(spec) if not c.skipped]
    assert [j.cell for j in jobs] == [c.name for c in cells] and jobs
    job, cell = jobs[0], cells[0]
    assert job.run_dir == f"/gcs/bkt/pac/paper_like/{cell.name}"
    assert job.requirements == {"h100": 1}
    assert job.machine_spec == {"machine_type": "a3-highgpu-1g", "accelerator_type": "NVIDIA_H100_80GB", "accelerator_count": 1}
    assert job.image["base_image"] == "python:3.11-slim" and "jax[cuda12]" in job.image["docker_instructions"][-1]
    assert job.command[:4] == ("python", "-m", "harness.run", job.run_dir)
    written = json.loads(job.command[job.command.index("--config-json") + 1])
    assert TrainConfig.from_json(written) == cell.config.replace(dataset="/gcs/bkt/data/full")
    tpu = xm_jobs.build_job_specs(spec, "vertex", "tpu_v5e", 4, bucket="gs://bkt/pac", image="us-docker.pkg.dev/p/r/pac:1")[0]
    assert tpu.requirements == {"tpu_v5e": "2x2"} and tpu.image == {"prebuilt": "us-docker.pkg.dev/p/r/pac:1"}
    assert tpu.machine_spec == {"machine_type": "ct5lp-hightpu-4t", "accelerator_type": "TPU_V5_LITEPOD",
                                "accelerator_count": 4, "tpu_topology": "2x2"}
    assert "/gcs/bkt/pac/data/" in " ".join(tpu.command)  # default dataset: BUCKET/PATH/data/<name>
    with pytest.raises(ValueError, match="needs --bucket"):
        xm_jobs.build_job_specs(spec, "vertex", "a100", 1)
    with pytest.raises(ValueError, match="h100 x 3 is not a Vertex AI machine"):
        xm_jobs.build_job_specs(spec, "vertex", "h100", 3, bucket="gs://bkt/pac")


def test_one_launch_function_plans_each_cell_once_and_gives_both_executors_packed_jobs(tiny_dataset_dir, tmp_path,
                                                                                        monkeypatch, capsys):
    """Issue 25, item 5: launch.jobs.launch claims the grid, prepares each pending cell's
    folder from the plan expand made (plan_run once per cell, once per preset to probe),
    and gives the jobs, packed where asked, to the local executor and XManager alike."""
    from harness import builder
    from harness import run as run_lib
    from launch import cells as cells_lib
    from launch import jobs as jobs_lib

    planned = []
    real = builder.plan_run
    monkeypatch.setattr(cells_lib, "plan_run", lambda config: planned.append(config) or real(config))
    monkeypatch.setattr(builder, "plan_run", lambda config: pytest.fail("plan_run called outside launch.cells.expand"))
    spec = load_spec(REPO / "launch/grids/tiny.py").replace(dataset=str(tiny_dataset_dir), pack_runs=2)
    names = [cell_name("tiny", b, a, 0) for b in (1.5e9, 5.5e9) for a in (1.0, 0.5)]
    grid_dir = tmp_path / "tiny"
    claim_grid_dir(spec, grid_dir)
    (grid_dir / names[3]).mkdir()
    run_folder.write_result(grid_dir / names[3], {"status": "done"})  # a finished cell is not run again
    with jobs_lib.launch(spec, tmp_path) as grid:
        assert len(planned) == 4 + 1
        assert [[c.name for c in job.cells] for job in grid.jobs] == [names[:2], names[2:3]]
        assert grid.jobs[0].arguments() == [str(grid_dir / names[0]), str(grid_dir / names[1]), "--no-progress"]
        for cell in grid.jobs[0].cells + grid.jobs[1].cells:
            saved = json.loads((grid_dir / cell.name / "config.json").read_text())
            assert set(saved) == {"train", "data"}  # no "plan": the job derives it again, result.json records it
            assert TrainConfig.from_json(saved["train"]) == cell.config and set(saved["data"]) == set(cell.plan.task_names)
        specs = xm_jobs.build_job_specs(spec, "local", results_root=tmp_path, python="python", grid=grid)
    assert [s.cells for s in specs] == [tuple(names[:2]), tuple(names[2:3])] and len(planned) == 5
    command = specs[0].command
    assert command[:6] == ("python", "-m", "harness.run", str(grid_dir / names[0]), str(grid_dir / names[1]),
                           "--no-progress")
    configs = [json.loads(command[i + 1]) for i, a in enumerate(command) if a == "--config-json"]
    assert [TrainConfig.from_json(c) for c in configs] == [c.config for c in grid.jobs[0].cells]
    # The job takes one --config-json per folder.
    monkeypatch.setattr(run_lib, "setup_process", lambda: None)
    assert run_lib.main([str(tmp_path / "x"), str(tmp_path / "y"), "--config-json", command[-1]]) == 2
    assert "--config-json is given 1 times for 2 run folders" in capsys.readouterr().err


def test_vertex_specs_as_xmanager_objects_and_printed(tiny_dataset_dir, tmp_path):
    xm = pytest.importorskip("xmanager.xm")
    import types

    from xmanager import xm_local

    from launch import xm_launch

    for accelerator, count, machine in (("h100", 8, "a3-highgpu-8g"), ("a100", 1, "a2-highgpu-1g"),
                                        ("tpu_v5e", 8, "ct5lp-hightpu-8t"), ("tpu_v4", 4, "cloud-tpu")):
        requirements = xm.JobRequirements(**xm_jobs.requirements(accelerator, count))
        executor = xm_local.Vertex(requirements=requirements)
        spec = xm_launch.vertex_machine_spec_patch(types.SimpleNamespace(executor=executor))
        assert spec["machine_type"] == machine and spec["accelerator_count"] == count
    spec_file = _write_spec(tmp_path / "g.py", f"def get_config():\n    return GridSpec(name='g', presets=('tiny',), "
                            f"budgets=(1.5e9,), dataset={str(tiny_dataset_dir)!r}, base=TrainConfig(batch_size=16), min_steps=1)\n")
    out = subprocess.run([sys.executable, str(REPO / "launch/xm_launch.py"), f"--grid={spec_file}", "--executor=vertex",
                          "--accelerator=a100", "--bucket=gs://bkt/pac", "--print_specs"],
                         capture_output=True, text=True, check=True, cwd=tmp_path)
    printed = json.loads(out.stdout)
    assert [j["cell"] for j in printed] == ["tiny_C1.5e9_a1_s0", "tiny_C1.5e9_a0.5_s0"]
    assert printed[0]["machine_spec"]["machine_type"] == "a2-highgpu-1g"


def test_a_measured_table_sets_the_estimate_and_interpolates_between_presets(tiny_dataset_dir):
    from launch.estimate import estimates, table_flops_per_second

    spec = _spec(tiny_dataset_dir, measured_flops_per_second=(("tiny", 1e9), ("700k", 4e9)), measured_on="this CPU")
    cells = [c for c in expand(spec) if not c.skipped]
    times = estimates(spec, cells)
    for cell in cells:
        seconds, source = times[cell.name]
        assert source == "table"
        rate = table_flops_per_second(spec, cell.preset)
        assert seconds == pytest.approx(cell.steps * cell.flops_per_update / rate + spec.cell_overhead_seconds)
    # 150k lies between tiny and 700k in parameters: its rate lies between theirs.
    assert 1e9 < table_flops_per_second(spec, "150k") < 4e9
    assert table_flops_per_second(spec, "30m") is None  # outside the table: the assumed figure
    with pytest.raises(ValueError, match=r"measured_flops_per_second entry \('huge', 1.0\)"):
        _spec(tiny_dataset_dir, measured_flops_per_second=(("huge", 1.0),)).validate()
