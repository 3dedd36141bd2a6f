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
