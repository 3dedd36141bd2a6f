"""Every bad input a user can type gets one line naming the bad value and what is allowed
(exit status 2), never a traceback: the sweep behind issue 16's table, run through the
real `pac` command in-process. Faults that need a process of their own (a second writer,
a killed run, a damaged metrics file) are in test_reliability.py and test_train.py.
"""

from __future__ import annotations

import json

import pytest

from pac import cli


def _run(argv, capsys) -> tuple[int, str]:
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err.strip()


@pytest.fixture(scope="module")
def spec_files(tmp_path_factory, tiny_dataset_dir):
    root = tmp_path_factory.mktemp("specs")
    head = "from harness.config import TrainConfig\nfrom launch.spec import GridSpec\n\n"
    bodies = {
        "raises": "def get_config():\n    raise RuntimeError('boom')\n",
        "no_function": "x = 1\n",
        "unknown_preset": f"def get_config():\n    return GridSpec(name='g', presets=('huge',), budgets=(1e9,), "
                          f"dataset={str(tiny_dataset_dir)!r})\n",
        "bad_budget": f"def get_config():\n    return GridSpec(name='g', presets=('tiny',), budgets=(-1.0,), "
                      f"dataset={str(tiny_dataset_dir)!r})\n",
        "syntax": "def get_config(:\n",
    }
    for name, body in bodies.items():
        (root / f"{name}.py").write_text(head + body)
    (root / "not_a_spec.txt").write_text("hello")
    return root


def _train(dataset, run_dir, *flags):
    return ["train", "--run-dir", run_dir, "--dataset", dataset, "--preset", "tiny", "--eval-episodes", "0", *flags]


# (flags after `pac train --run-dir D --dataset DATA --preset tiny`, text the one line must hold)
TRAIN_CASES = [
    (["--steps", "100000000000000000000"], "--steps"),
    (["--flop-budget", "1e40"], "--flop-budget"),
    (["--flop-budget", "inf"], "--flop-budget"),
    (["--flop-budget", "nan"], "--flop-budget"),
    (["--flop-budget", "-1e9"], "--flop-budget"),
    (["--steps", "10", "--flop-budget", "1e9"], "--steps"),
    ([], "--steps"),
    (["--steps", "abc"], "--steps"),
    (["--steps", "10", "--batch-size", "0"], "--batch-size"),
    (["--steps", "10", "--batch-size", "-5"], "--batch-size"),
    (["--steps", "10", "--preset", "huge"], "huge"),
    (["--steps", "10", "--alpha", "1.5"], "--alpha"),
    (["--steps", "10", "--alpha", "-0.1"], "--alpha"),
    (["--steps", "10", "--learning-rate", "0"], "--learning-rate"),
    (["--steps", "10", "--learning-rate", "nan"], "--learning-rate"),
    (["--steps", "10", "--weight-decay=-1"], "--weight-decay=-1.0 must be >= 0"),
    (["--steps", "10", "--final-learning-rate-fraction", "1.5"], "--final-learning-rate-fraction=1.5 must be in [0, 1]"),
    (["--steps", "10", "--valid-fraction", "1"], "--valid-fraction=1.0 must be in [0, 1)"),
    (["--steps", "10", "--discount", "1.5"], "--discount"),
    (["--steps", "10", "--compute-dtype", "float8"], "--compute-dtype"),
    (["--steps", "10", "--eval-mode", "greedy"], "--eval-mode"),
    (["--steps", "10", "--attention", "flash"], "--attention"),
    (["--steps", "10", "--valid-fraction", "1.5"], "--valid-fraction"),
    (["--steps", "10", "--log-every", "0"], "--log-every"),
    (["--steps", "10", "--num-sampled-actions", "0"], "--num-sampled-actions"),
    (["--steps", "10", "--updates-per-dispatch", "0"], "--updates-per-dispatch"),
    (["--steps", "10", "--tasks", "cartpole-nope"], "cartpole-nope"),
    (["--steps", "10", "--max-obs-dim", "1"], "--max-obs-dim=1 is too small"),
    (["--steps", "10", "--warmup-fraction", "1"], "--warmup-fraction"),
    (["--steps", "10", "--top-episode-fraction", "0"], "--top-episode-fraction"),
    (["--steps", "10", "--no-such-flag", "1"], "--no-such-flag"),
    # Far beyond this machine's memory: refused from XLA's memory plan before training.
    (["--steps", "10", "--batch-size", "10000000"], "--batch-size=10000000 does not fit on cpu"),
]


@pytest.mark.parametrize("flags, expected", TRAIN_CASES, ids=[" ".join(c[0]) or "no-length" for c in TRAIN_CASES])
def test_pac_train_bad_flags(flags, expected, tiny_dataset_dir, tmp_path, capsys):
    code, err = _run(_train(tiny_dataset_dir, tmp_path / "run", *flags), capsys)
    assert code == 2 and len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "run" / "config.json").exists(), "a refused run leaves no config behind"


def test_pac_train_bad_dataset_and_folder(tiny_dataset_dir, tmp_path, capsys):
    code, err = _run(_train(tmp_path / "nowhere", tmp_path / "run", "--steps", "5"), capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "nowhere" in err, err
    (tmp_path / "file").write_text("x")
    code, err = _run(_train(tiny_dataset_dir, tmp_path / "file", "--steps", "5"), capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "file" in err, err


OTHER_CASES = [
    (["data", "--workers", "0"], "--workers"),
    (["data", "--preset", "nope"], "nope"),
    (["data", "--tasks", "walker-fly"], "walker-fly"),
    (["data", "--transitions-per-task", "0"], "--transitions-per-task"),
    (["data", "--noise-fraction", "2"], "--noise-fraction"),
    (["data", "--stats", "/nonexistent/data"], "/nonexistent/data"),
    (["grid", "/nonexistent/spec.py"], "does not exist"),
    (["fit", "/nonexistent/results"], "results folder not found"),
    (["fit", "--csv", "/nonexistent.csv", "--out", "/tmp/x"], "CSV file not found"),
    (["fit"], "give either RESULTS_DIR or --csv"),
    (["allocate", "/nonexistent/results", "--budget", "1e12"], "fits.json"),
    (["figures", "/nonexistent/results"], "/nonexistent/results"),
    (["models", "--presets", "nope"], "unknown model preset 'nope'"),
    (["models", "--batch-size", "0"], "--batch-size"),
]


@pytest.mark.parametrize("argv, expected", OTHER_CASES, ids=[" ".join(c[0]) for c in OTHER_CASES])
def test_other_commands_bad_input(argv, expected, capsys):
    code, err = _run(argv, capsys)
    assert code == 2 and len(err.splitlines()) == 1 and expected in err, err


@pytest.mark.parametrize("spec, expected", [
    ("raises.py", "get_config() raised RuntimeError: boom"), ("no_function.py", "no get_config()"),
    ("unknown_preset.py", "unknown model preset 'huge'"), ("bad_budget.py", "FLOP budget -1.0"),
    ("syntax.py", "failed to load: SyntaxError"), ("not_a_spec.txt", "not_a_spec.txt"),
])
def test_bad_grid_specs(spec, expected, spec_files, capsys):
    code, err = _run(["grid", spec_files / spec, "--dry-run"], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and expected in err, err


def test_bad_grid_flags_and_fit_inputs(spec_files, tiny_dataset_dir, tmp_path, capsys):
    good = tmp_path / "good.py"
    good.write_text("from harness.config import TrainConfig\nfrom launch.spec import GridSpec\n\n"
                    f"def get_config():\n    return GridSpec(name='g', presets=('tiny',), budgets=(1e9,), "
                    f"dataset={str(tiny_dataset_dir)!r})\n")
    for argv, expected in ((["grid", good, "--parallel", "0"], "--parallel 0"),
                           (["grid", good, "--dry-run", "--only-cells", "nope_C1_a1_s0"], "nope_C1_a1_s0")):
        code, err = _run([*argv, "--results", tmp_path / "res"], capsys)
        assert code == 2 and len(err.splitlines()) == 1 and expected in err, err
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    (tmp_path / "empty.csv").write_text("")
    for csv in ("bad.csv", "empty.csv"):
        code, err = _run(["fit", "--csv", tmp_path / csv, "--out", tmp_path / "fits"], capsys)
        assert code == 2 and len(err.splitlines()) == 1, err
    (tmp_path / "fits.json").write_text(json.dumps({"approach3": {"error": "x"}}))
    for budget in ("-1", "nan", "inf"):
        code, err = _run(["allocate", "--fits", tmp_path / "fits.json", "--budget", budget], capsys)
        assert code == 2 and len(err.splitlines()) == 1 and "--budget" in err, err
    code, err = _run(["fit", "--csv", tmp_path / "bad.csv", "--out", tmp_path / "fits", "--bootstrap", "-1"], capsys)
    assert code == 2 and "--bootstrap" in err, err
