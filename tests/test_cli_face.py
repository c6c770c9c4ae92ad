"""The face of the CLI: help in plain text that wraps at the terminal, the study options defined once
and reaching the study, and one check of --condition with one error line for every command."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from warnframe.cli import StudyOptions, app

CLI = [sys.executable, "-m", "warnframe.cli"]
GROUP = typer.main.get_command(app)
COMMANDS = sorted(GROUP.commands)
STUDY_COMMANDS = ["run", "pretrain", "finetune", "sample", "score", "report", "dose", "remedies", "data", "grid"]


def _opts(name: str) -> dict[str, object]:
    """Option name → its click parameter, for one command."""
    return {opt: p for p in GROUP.commands[name].params for opt in p.opts if opt.startswith("--")}


def _help(args: list[str], columns: int) -> str:
    """The help as a terminal ``columns`` wide shows it (in process; see the COLUMNS test below)."""
    res = CliRunner().invoke(app, [*args, "--help"], terminal_width=columns)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.mark.parametrize("columns", [60, 70, 120])
@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_is_plain_text_within_the_terminal(command, columns):
    out = _help([command] if command else [], columns)
    assert "``" not in out, out  # no RST
    assert not any(ch in out for ch in "╭│╰"), out  # no rich panels
    assert "[bold" not in out and "**" not in out, out
    long = [ln for ln in out.splitlines() if len(ln) > columns]
    assert not long, long


def _paragraphs(out: str) -> list[list[str]]:
    """The description's paragraphs (between the usage line and the first section), as lines."""
    text = out.split("\n\n", 1)[1]
    for section in ("\nArguments:", "\nOptions:", "\nCommands:"):
        text = text.split(section)[0]
    return [p.splitlines() for p in text.strip("\n").split("\n\n")]


@pytest.mark.parametrize("columns", [60, 120])
@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_paragraphs_are_rewrapped(command, columns):
    """A docstring's line breaks do not survive: every line but a paragraph's last fills the width."""
    width = min(columns, 100) - 2
    for para in _paragraphs(_help([command] if command else [], columns)):
        short = [ln for ln in para[:-1] if len(ln) < width - 20]
        assert not short, para


def test_help_follows_COLUMNS():
    """As a user runs it: the terminal's width (COLUMNS) decides where lines break."""
    def lines(columns: int) -> list[str]:
        res = subprocess.run([*CLI, "--help"], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "COLUMNS": str(columns)})
        assert res.returncode == 0 and "``" not in res.stdout, res.stderr
        return res.stdout.splitlines()

    narrow, wide = lines(70), lines(120)
    assert max(map(len, narrow)) <= 70 < max(map(len, wide)) <= 120
    assert len(wide) < len(narrow)


def test_every_command_has_a_whole_summary():
    """The command list shows each command's first paragraph, wrapped, never cut short with '...'."""
    out = _help([], 60)
    commands = out.split("Commands:")[1]
    assert "..." not in commands
    for name in COMMANDS:
        assert f"  {name} " in commands


def test_study_commands_share_the_study_options():
    shared = {f.name for f in dataclasses.fields(StudyOptions)}
    first = _opts("run")
    names = {"--preset", "--config", "--set", "--out", "--condition", "--seed", "--model", "--analysis-model", "--sae"}
    assert names <= set(first) and {first[n].name for n in names} == shared
    for cmd in STUDY_COMMANDS:
        opts = _opts(cmd)
        for n in names:
            assert opts[n].help == first[n].help and opts[n].opts == first[n].opts, (cmd, n)


def _condition_commands() -> list[str]:
    found = sorted(name for name in COMMANDS if "--condition" in _opts(name))
    assert set(STUDY_COMMANDS) | {"evaluate"} <= set(found)
    return found


EXTRA = {"evaluate": ["--prompts", "prompts.jsonl", "--out", "run"]}


@pytest.mark.parametrize("command", _condition_commands())
def test_unknown_condition_is_one_line_and_exit_2(command, tmp_path):
    env = {**os.environ, "COLUMNS": "200"}
    args = [command, *EXTRA.get(command, ["--preset", "smoke"]), "--condition", "L1", "--condition", "L7"]
    res = subprocess.run([*CLI, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2, res.stderr
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    line = lines[0]
    assert line.startswith("warnframe: error: unknown condition 'L7'"), line
    assert "(--condition)" in line and "choose from baseline, L0" in line, line
    assert res.stdout == "" and not any(tmp_path.iterdir()), "nothing runs, nothing is written"


def test_study_options_reach_the_study(tmp_path, monkeypatch):
    from warnframe.study import Study

    seen = []

    def fake_run(self, until="report", conditions=None, seeds=None):
        seen.append((until, conditions, seeds, self.cfg, self.store.root))
        return self.store.root / "report.md"

    monkeypatch.setattr(Study, "run", fake_run)
    out = tmp_path / "r"
    res = CliRunner().invoke(app, ["finetune", "-p", "smoke", "-o", str(out), "--condition", "L1", "--seed", "3",
                                   "-s", "seeds=[3, 4]", "--model", "org/model", "--sae", "hf://a/b"])
    assert res.exit_code == 0, res.output
    until, conds, seeds, cfg, root = seen[-1]
    assert (until, conds, seeds, root) == ("finetune", ["L1"], [3], out)
    assert cfg.preset == "smoke" and cfg.seeds == [3, 4]
    assert cfg.model.source == "org/model" and cfg.mech.sae == "hf://a/b"
    assert res.output.strip().endswith(str(out))

    res = CliRunner().invoke(app, ["dose", "-p", "smoke", "-o", str(out)])
    assert res.exit_code == 0, res.output
    until, conds, seeds, cfg, _ = seen[-1]
    assert until == "report" and conds is None and seeds is None and "dose" in cfg.sections
