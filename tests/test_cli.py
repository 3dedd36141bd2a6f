"""The `pac` command's face: help lists every subcommand; errors are one line."""

import subprocess
import sys

import pytest

from pac import cli


def test_help_lists_all_subcommands(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    for name in cli.SUBCOMMANDS:
        assert name in out


def test_console_script_help_runs():
    result = subprocess.run([sys.executable, "-m", "pac.cli", "--help"], capture_output=True, text=True, check=True)
    for name in ("data", "models", "train", "grid", "fit", "figures"):
        assert name in result.stdout


def test_train_help_documents_every_flag_with_choices_and_defaults(capsys):
    from pac import cli

    assert cli.main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--temperature {dual,fixed} 'dual': eta fitted by MPO's dual" in text
    assert "--action-sampling {gumbel,inverse_cdf}" in text and "(default: inverse_cdf)" in text
    assert "--alpha ALPHA BC weight: 1 = BC (+Q), < 1 = PAC. (default: 0.5)" in text


def test_dry_run_refuses_a_folder_of_another_spec_as_launch_does(tiny_dataset_dir, tmp_path, capsys):
    # The table once listed another spec's finished cells as "done" while launch refused the folder.
    from harness.config import TrainConfig
    from launch.grid_folder import claim_grid_dir, grid_dir
    from launch.spec import load_spec

    spec_file = tmp_path / "grid.py"
    spec_file.write_text("from harness.config import TrainConfig\nfrom launch.spec import GridSpec\n\n"
                         "def get_config():\n    return GridSpec(name='dry', presets=('tiny',), budgets=(1.5e9,), "
                         f"alphas=(1.0,), dataset={str(tiny_dataset_dir)!r}, base=TrainConfig(batch_size=16), "
                         "min_steps=10)\n")
    spec = load_spec(spec_file)
    claim_grid_dir(spec.replace(base=TrainConfig(batch_size=32)), grid_dir(spec, tmp_path / "res"))
    assert cli.main(["grid", str(spec_file), "--dry-run", "--results", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "belongs to a different spec of grid 'dry' (base.batch_size: 32 there, 16 now)" in err[0]
