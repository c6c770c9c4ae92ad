"""Every user-facing error path of the CLI: one line on stderr (what, where, what to do), exit code 2,
no traceback. Each row runs ``python -m warnframe.cli`` in a subprocess, as a user would; full and
read-only disks are real (a tmpfs and a read-only bind mount in a private mount namespace,
``unshare -rm``), a file-size limit is ``prlimit --fsize``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "warnframe.cli"]
SMOKE = ["--preset", "smoke"]


def _can(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, check=False, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


UNSHARE = shutil.which("unshare")
CAN_MOUNT = bool(UNSHARE) and _can([UNSHARE, "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"])
PRLIMIT = shutil.which("prlimit")


def _files(d: Path) -> None:
    """The inputs every row may use."""
    (d / "ok.jsonl").write_text('{"code": "x = 1"}\n')
    (d / "latin1.jsonl").write_bytes(b'{"code": "x = 1"}\n{"code": "caf\xe9 = 1"}\n')
    (d / "binary.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    (d / "afile").write_text("not a directory\n")
    (d / "bad_value.yaml").write_text("finetune:\n  lr: -1\n")
    (d / "latin1.yaml").write_bytes(b"finetune:\n  lr: caf\xe9\n")
    (d / "corpus_latin1.jsonl").write_bytes(
        b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x = 1"}]}\n'
        b'{"messages": [{"role": "user", "content": "h\xe9"}, {"role": "assistant", "content": "y"}]}\n')
    run = d / "run"
    run.mkdir()
    cfg = subprocess.run([*CLI, "config", *SMOKE], capture_output=True, text=True, check=True).stdout
    (run / "config.json").write_text(cfg)
    big = "\n".join(json.dumps({"code": f"x{i} = {i}  # " + "y" * 200}) for i in range(600))
    (d / "big.jsonl").write_text(big + "\n")


def _in_ns(script: str) -> list[str]:
    return [UNSHARE, "-rm", "sh", "-c", script]


def _q(args: list[str]) -> str:
    return " ".join(f"'{a}'" for a in args)


# (id, command line, expected pieces of the one line, what the row needs)
ROWS = [
    ("detect-latin1", ["detect", "latin1.jsonl", "--out", "o.jsonl"], ["not UTF-8", "latin1.jsonl:2", "iconv"], None),
    ("detect-binary", ["detect", "binary.jsonl", "--out", "o.jsonl"], ["not UTF-8", "binary.jsonl:1"], None),
    ("detect-missing", ["detect", "nope.jsonl", "--out", "o.jsonl"], ["not found", "nope.jsonl"], None),
    ("detect-out-is-dir", ["detect", "ok.jsonl", "--out", "."], ["is a directory", "--out"], None),
    ("detect-out-under-file", ["detect", "ok.jsonl", "--out", "afile/o.jsonl"], ["lies under", "afile", "which is a file"], None),
    ("evaluate-prompts-latin1", ["evaluate", "--prompts", "latin1.jsonl", "--out", "run"], ["not UTF-8", "latin1.jsonl:2"], None),
    ("evaluate-prompts-binary", ["evaluate", "--prompts", "binary.jsonl", "--out", "run"], ["not UTF-8", "binary.jsonl:1"], None),
    ("evaluate-out-is-file", ["evaluate", "--prompts", "ok.jsonl", "--out", "afile"], ["afile", "is a file"], None),
    ("run-out-is-file", ["run", *SMOKE, "--out", "afile"], ["afile", "is a file", "--out"], None),
    ("run-out-under-file", ["run", *SMOKE, "--out", "afile/run"], ["lies under", "which is a file"], None),
    ("data-from-latin1", ["data", *SMOKE, "--from", "corpus_latin1.jsonl", "--check"], ["not UTF-8", "corpus_latin1.jsonl:2"], None),
    ("run-unknown-condition", ["run", *SMOKE, "--condition", "L7", "--out", "r"],
     ["unknown condition 'L7'", "--condition", "choose from"], None),
    ("evaluate-unknown-condition", ["evaluate", "--prompts", "ok.jsonl", "--out", "run", "--condition", "L7"],
     ["unknown condition 'L7'", "--condition", "choose from"], None),
    ("data-unknown-on-error", ["data", *SMOKE, "--on-error", "maybe", "--out", "r"], ["unknown --on-error", "stop or skip"], None),
    ("data-unknown-remedy", ["data", *SMOKE, "--remedy", "burn", "--out", "r"], ["unknown remedy 'burn'", "--remedy"], None),
    ("grid-slurm-arg-not-key-value", ["grid", *SMOKE, "--slurm-arg", "account", "--out", "r"],
     ["not key=value", "--slurm-arg"], None),
    ("config-latin1", ["config", "--config", "latin1.yaml"], ["not UTF-8", "latin1.yaml:2"], None),
    ("config-bad-value-blames-file", ["data", *SMOKE, "--config", "bad_value.yaml", "--out", "r"],
     ["finetune.lr", "bad_value.yaml"], None),
    ("detect-read-only", ["detect", "ok.jsonl", "--out", "ro/o.jsonl"], ["cannot write", "ro/o.jsonl", "read-only"], "ro"),
    ("data-read-only", ["data", *SMOKE, "--out", "ro/run"], ["cannot write", "ro/run", "read-only"], "ro"),
    ("detect-disk-full", ["detect", "big.jsonl", "--out", "full/o.jsonl", "--no-bandit"],
     ["cannot write", "full/o.jsonl", "no space left", "finished stages are kept"], "full"),
    ("data-disk-full", ["data", *SMOKE, "--out", "full/run"], ["cannot write", "full/run", "no space left"], "full"),
    ("data-file-too-large", ["data", *SMOKE, "--out", "fsz"], ["cannot write", "fsz/", "file too large"], "fsize"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_errors")
    _files(d)
    return d


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_error_path_is_one_line_and_exit_2(row, inputs, tmp_path):
    _, args, expect, needs = row
    for f in inputs.iterdir():
        (tmp_path / f.name).symlink_to(f)
    if needs in ("ro", "full") and not CAN_MOUNT:
        pytest.skip("no private mount namespace (unshare -rm) here")
    if needs == "fsize" and not PRLIMIT:
        pytest.skip("prlimit not installed")
    cmd = [*CLI, *args]
    if needs == "ro":
        (tmp_path / "ro").mkdir()
        cmd = _in_ns(f"mount --bind ro ro && mount -o remount,bind,ro ro && exec {_q(cmd)}")
    elif needs == "full":
        (tmp_path / "full").mkdir()
        cmd = _in_ns(f"mount -t tmpfs -o size=64k tmpfs full && exec {_q(cmd)}")
    elif needs == "fsize":
        cmd = [PRLIMIT, "--fsize=65536", *cmd]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "COLUMNS": "200"}
    res = subprocess.run(cmd, check=False, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("warnframe: error:")]
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    assert len(errors) == 1, res.stderr[-2000:]
    for piece in expect:
        assert piece in errors[0], errors[0]
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*")), "a partial file was left"
