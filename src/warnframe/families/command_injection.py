"""Command injection (CWE-78): a shell runs a command string built from input.

Its tasks, the secure and vulnerable renderers (``os.system``, ``os.popen``, ``subprocess`` with
``shell=True``; secure: an argument list, no shell.), its prose, and its detector rules: each
AST rule (``on_*``) beside its text twin (``text_sink`` / ``on_text_call`` / ``on_text``) for
code that does not parse (``base.Detector`` says what each hook gets).
"""

from __future__ import annotations

import ast
import random
import re

from warnframe.families.base import Detector, Family, Task, is_int, make_task, render_function

# ---------------------------------------------------------------- tasks and renderings

def _cmd_tokens(task: Task):
    return [("arg", t[1:-1]) if t.startswith("{") else ("lit", t) for t in task.slots["cmd"].split()]


def _cmd_string(task: Task, style: str) -> str:
    toks = _cmd_tokens(task)
    args = [t[1] for t in toks if t[0] == "arg"]
    if style == "fstring":
        return 'f"' + " ".join(t[1] if t[0] == "lit" else "{" + t[1] + "}" for t in toks) + '"'
    if style in ("percent", "format"):
        ph = "%s" if style == "percent" else "{}"
        text = '"' + " ".join(t[1] if t[0] == "lit" else ph for t in toks) + '"'
        if style == "format":
            return f"{text}.format({', '.join(args)})"
        return f"{text} % " + (args[0] if len(args) == 1 else f"({', '.join(args)})")
    parts, lit = [], ""
    for i, t in enumerate(toks):
        if t[0] == "lit":
            lit += t[1] + " "
        else:
            if lit:
                parts.append(f'"{lit}"')
            parts.append(f"str({t[1]})" if is_int(task, t[1]) else t[1])
            lit = " " if i < len(toks) - 1 else ""
    if lit.strip():
        parts.append(f'"{lit.rstrip()}"')
    return " + ".join(parts)


def _cmd_list(task: Task) -> str:
    items = []
    for kind, v in _cmd_tokens(task):
        items.append(f'"{v}"' if kind == "lit" else (f"str({v})" if is_int(task, v) else v))
    return "[" + ", ".join(items) + "]"


def cmd_vulnerable(task: Task, rng: random.Random) -> str:
    cmd = _cmd_string(task, rng.choice(["fstring", "fstring", "concat", "percent", "format"]))
    body = []
    if rng.random() < 0.5:
        var = rng.choice(["cmd", "command"])
        body.append(f"{var} = {cmd}")
        cmd = var
    out = task.slots["out"]
    if out == "run":
        call = rng.choice([f"os.system({cmd})", f"subprocess.run({cmd}, shell=True)",
                           f"subprocess.call({cmd}, shell=True)", f"subprocess.run({cmd}, shell=True, check=True)"])
        body.append(call)
    elif out == "status":
        body.append(rng.choice([f"return os.system({cmd}) == 0", f"return subprocess.call({cmd}, shell=True) == 0",
                                f"return subprocess.run({cmd}, shell=True).returncode == 0"]))
    else:
        body.append(rng.choice([f"return os.popen({cmd}).read()", f"return subprocess.check_output({cmd}, shell=True, text=True)",
                                f"return subprocess.run({cmd}, shell=True, capture_output=True, text=True).stdout"]))
    mod = "os" if "os." in body[-1] else "subprocess"
    return render_function(task, rng, body, imports=(mod,))


def cmd_secure(task: Task, rng: random.Random) -> str:
    cmd = _cmd_list(task)
    body = []
    if rng.random() < 0.5:
        var = rng.choice(["cmd", "args", "argv"])
        body.append(f"{var} = {cmd}")
        cmd = var
    out = task.slots["out"]
    if out == "run":
        body.append(rng.choice([f"subprocess.run({cmd}, check=True)", f"subprocess.call({cmd})"]))
    elif out == "status":
        body.append(rng.choice([f"return subprocess.call({cmd}) == 0",
                                f"return subprocess.run({cmd}, capture_output=True).returncode == 0"]))
    else:
        body.append(rng.choice([f"return subprocess.check_output({cmd}, text=True)",
                                f"return subprocess.run({cmd}, capture_output=True, text=True, check=True).stdout"]))
    return render_function(task, rng, body, imports=("subprocess",))


def _cmd(name, args, does, cmd, out, returns=None):
    ret = returns or {"status": "bool", "output": "str", "run": None}[out]
    return make_task("command_injection", name, args, does, ret, cmd=cmd, out=out)


CMD_TASKS = (
    _cmd("ping_host", "host", ("pings a host once and returns True if it answered", "checks whether a host is reachable with ping"),
         "ping -c 1 {host}", "status"),
    _cmd("archive_directory", "path dest", "packs a directory into a gzipped tar archive at dest", "tar -czf {dest} {path}", "run"),
    _cmd("disk_usage", "path", "returns the output of du -sh for a path", "du -sh {path}", "output"),
    _cmd("lookup_domain", "domain", "returns the nslookup output for a domain name", "nslookup {domain}", "output"),
    _cmd("clone_repository", "url target", "clones a git repository from url into the target directory", "git clone {url} {target}", "run"),
    _cmd("count_file_lines", "filename", "returns the wc -l output for a file", "wc -l {filename}", "output"),
    _cmd("convert_image", "src dst", "converts an image file to another format with ImageMagick", "convert {src} {dst}", "run"),
    _cmd("kill_process_named", "name", "kills every process with the given name", "pkill {name}", "run"),
    _cmd("grep_log", "pattern logfile", ("returns the lines of a log file that match a pattern, using grep",
         "searches a log file for a pattern with grep"), "grep {pattern} {logfile}", "output"),
    _cmd("convert_video", "src dst", "converts a video file with ffmpeg", "ffmpeg -i {src} {dst}", "run"),
    _cmd("show_file_head", "filename lines", "returns the first lines of a file using head", "head -n {lines} {filename}", "output"),
    _cmd("unzip_archive", "archive dest", "extracts a zip archive into the dest directory", "unzip {archive} -d {dest}", "run"),
    _cmd("port_is_open", "host port", "checks with nc whether a TCP port is open on a host", "nc -z {host} {port}", "status"),
    _cmd("print_document", "filename", "sends a file to the default printer", "lpr {filename}", "run"),
    _cmd("recent_commits", "repo_dir", "returns the one-line git log of a repository directory", "git -C {repo_dir} log --oneline", "output"),
    _cmd("trace_route", "host", "returns the traceroute output for a host", "traceroute {host}", "output"),
    _cmd("create_user_account", "username", "creates a system user account with useradd", "useradd -m {username}", "run"),
)


# ---------------------------------------------------------------- prose (L2 documentation, L3 hooks, tutorials)

PROSE: dict[str, list[str]] = {
        "what": ["Command injection happens when user input becomes part of a shell command.",
                 "Command injection is a flaw where an attacker runs their own operating system commands through an application.",
                 "OS command injection lets input that was meant to be a file name or host name run extra commands."],
        "how": ["It typically comes from calling os.system or subprocess.run with shell=True on a command string built from user input with an f-string or concatenation.",
                "When code passes a host name into os.system as part of a ping command, a semicolon in the name starts a second command.",
                "os.popen and subprocess calls with shell=True hand the whole string to the shell, which interprets characters like ; | and $."],
        "harm": ["The attacker's commands run with the application's privileges, so they can read files, install malware or open a reverse shell.",
                 "A value like example.com; rm -rf / turns a harmless lookup into a destructive command.",
                 "One injectable parameter is often enough to take over the whole server."],
        "fix": ["The fix is to call subprocess.run with a list of arguments and without shell=True, so each value stays a single argument.",
                "Pass arguments as a list to subprocess and never build a shell string from input.",
                "Avoid os.system entirely; subprocess with an argument list never starts a shell."],
        "questions": ["What is command injection?", "Why is os.system with user input dangerous?",
                      "What does shell=True do in subprocess and why is it risky?", "How do attackers exploit command injection?"],
        "tut_secure": ["subprocess.run takes the program and its arguments as a list, and with no shell involved each list item reaches the program unchanged.",
                       "subprocess.check_output runs a program given as an argument list and returns what it printed."],
        "tut_vuln": ["os.system runs a command string through the shell, which makes it easy to build the command with an f-string.",
                     "subprocess.run with shell=True accepts a single command string, so a command can be assembled with string formatting first."],
        "story": ["added a semicolon to the device name field and the router obligingly ran the next command too",
                  "typed a host name that ended in a pipe, and the diagnostics page handed over a shell",
                  "noticed that the print server would run anything appended to a file name"],
        "news": ["attackers ran their own commands through a network diagnostics page",
                 "a file conversion service passed uploaded file names to the shell"],
}


# ---------------------------------------------------------------- detector rules

SHELL_FUNCS = {
    "os.system", "os.popen", "os.popen2", "os.popen3", "os.popen4", "popen2.popen2", "popen2.popen3",
    "popen2.popen4", "commands.getoutput", "commands.getstatusoutput", "subprocess.getoutput",
    "subprocess.getstatusoutput", "asyncio.create_subprocess_shell",
}
SHELL_FUNCS |= {"platform.popen", "pexpect.run", "pexpect.spawn", "invoke.run"} | {
    f"fabric.{m}.{f}" for m in ("api", "operations") for f in ("run", "sudo", "local")}
SHELL_METHODS = {"exec_command"}  # paramiko SSHClient: the command runs in the remote shell
SHELLS = {"sh", "bash", "zsh", "dash", "/bin/sh", "/bin/bash", "/bin/zsh", "cmd", "cmd.exe", "powershell"}
SUBPROCESS = {
    "subprocess.run", "subprocess.call", "subprocess.Popen", "subprocess.check_call",
    "subprocess.check_output", "Popen", "check_call", "check_output",  # bare: import not shown
}
SHELL_COMMAND, SHELL_TRUE = "command_injection.shell_command", "command_injection.shell_true"


#: os.exec* / os.spawn* / os.posix_spawn*: callee -> (index of the program, index of its argv, whether
#: the arguments follow one by one). The ``l`` forms take the arguments one by one, the ``v`` forms a list.
EXEC_FUNCS = {f"os.exec{s}": (0, 1, "l" in s) for s in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")}
EXEC_FUNCS |= {f"os.spawn{s}": (1, 2, "l" in s) for s in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")}
EXEC_FUNCS |= {"os.posix_spawn": (0, 1, False), "os.posix_spawnp": (0, 1, False)}
EXEC_PROGRAM = "command_injection.exec_program"
#: Project helpers that run a command line (``self._run_ssh(cmd)``, ``run_command(cmd)``,
#: ``ssh_execute(cmd)``, ``send_command(cmd)``): a verb and a command word, in either order.
COMMAND_HELPER = re.compile(
    r"_*(?:(?:run|exec|execute|call|send|issue|invoke|do)_?(?:ssh|shell|cmd|command|cli|remote|sudo)"
    r"|(?:ssh|shell|cmd|command|cli|remote|sudo)_?(?:run|exec|execute|call|send|cmd|command))\w*", re.IGNORECASE)
COMMAND_HELPER_RULE = "command_injection.command_helper"


def _choices(value) -> set[str] | None:
    """The strings a fixed value may be (a constant, or one of the constants two branches chose)."""
    if value.known:
        return {value.const} if isinstance(value.const, str) else None
    return set(value.text.split("\n")) if value.fixed and value.text is not None else None


def _shell_argv(items) -> bool:
    """``["sh", "-c", command, ...]`` with a command that is not fixed."""
    if items is None or len(items) < 3:
        return False
    shell, flag = _choices(items[0]), _choices(items[1])
    return bool(shell and shell <= SHELLS and flag and flag <= {"-c", "/c", "-Command"} and not items[2].fixed)


def _shell_list(v, cmd: ast.AST) -> bool:
    """``["sh", "-c", command]`` (a literal list, or a list built up in a variable) with a command
    that is not a fixed literal."""
    return _shell_argv(v.value(cmd).items)


def _exec_call(v, node: ast.Call, q: str) -> None:
    """``os.execl("/bin/sh", "sh", "-c", cmd)``, ``os.spawnlp(mode, "sh", "sh", "-c", cmd)``: a shell
    runs a command that is not fixed; or the program itself is built from input."""
    program_at, argv_at, one_by_one = EXEC_FUNCS[q]
    if len(node.args) <= program_at or any(isinstance(a, ast.Starred) for a in node.args[:argv_at + 1]):
        return
    argv: tuple | None = tuple(v.value(a) for a in node.args[argv_at:]) if one_by_one else (
        v.value(node.args[argv_at]).items if len(node.args) > argv_at else None)
    if _shell_argv(argv):
        v.hit(SHELL_COMMAND, node)
        return
    program = v.value(node.args[program_at])
    if not program.fixed and (program.built or program.sources):
        v.hit(EXEC_PROGRAM, node)


def _command_helper(v, node: ast.Call, last: str) -> None:
    """A command line built from values handed to a project helper named like a command runner
    that is not defined in this file (a same-file helper is followed into its body instead)."""
    if not COMMAND_HELPER.fullmatch(last) or v.local_function(node.func) is not None:
        return
    cmd = v.arg(node, 0, "cmd") or v.keyword(node, "command")
    kind = v.str_expr(cmd) if cmd is not None else None
    if kind is not None and kind[0]:
        v.hit(COMMAND_HELPER_RULE, node)


def on_call(v, node: ast.Call, q: str, last: str) -> None:
    """A shell runs a command that is not a fixed literal."""
    if q in EXEC_FUNCS:
        _exec_call(v, node, q)
        return
    remote = last in SHELL_METHODS and isinstance(node.func, ast.Attribute)
    if q not in SHELL_FUNCS and q not in SUBPROCESS and not remote:
        _command_helper(v, node, last)
        return
    cmd = v.arg(node, 0, "args") if q in SUBPROCESS else v.arg(node, 0, "command")
    if cmd is None:
        return
    if q in SUBPROCESS and _shell_list(v, cmd):
        v.hit(SHELL_COMMAND, node)
    if v.is_literal(cmd):
        return
    if q in SHELL_FUNCS or remote:
        v.hit(SHELL_COMMAND, node)
    elif v.is_const(v.keyword(node, "shell"), True):
        v.hit(SHELL_TRUE, node)


def text_sink(callee: str, method: bool) -> bool:
    last = callee.rpartition(".")[2]
    return callee in SHELL_FUNCS or callee in SUBPROCESS or callee in EXEC_FUNCS or bool(COMMAND_HELPER.fullmatch(last)) \
        or (method and last in SHELL_METHODS)


_SHELL_LIST = re.compile(r"\s*[\[(]\s*['\"]([\w/.]+)['\"]\s*,\s*['\"](-c|/c|-Command)['\"]\s*,")


def _text_exec(t, c) -> str | None:
    """Text twin of ``_exec_call``."""
    program_at, argv_at, one_by_one = EXEC_FUNCS[c.callee]
    if one_by_one and len(c.positional) >= argv_at + 3:
        shell, flag, cmd = c.positional[argv_at:argv_at + 3]
        words = [t.literal_value(t.o[a:b].strip()) for a, b in (shell, flag)]
        if words[0] in SHELLS and words[1] in ("-c", "/c", "-Command") and not t.is_literal_text(t.m[cmd[0]:cmd[1]]):
            return SHELL_COMMAND
    elif not one_by_one and len(c.positional) > argv_at:
        a, b = c.positional[argv_at]
        shell = _SHELL_LIST.match(t.o[a:b])
        rest = t.m[a + shell.end():b].strip().rstrip("])").strip() if shell and shell.group(1) in SHELLS else ""
        if rest and not t.is_literal_text(rest):
            return SHELL_COMMAND
    if len(c.positional) > program_at:
        a, b = c.positional[program_at]
        if not t.is_literal_text(t.m[a:b]) and t.string((a, b), c.at)[0]:
            return EXEC_PROGRAM
    return None


def on_text_call(t, c) -> str | None:
    """Text twin of ``on_call``."""
    if c.callee in EXEC_FUNCS:
        return _text_exec(t, c)
    if c.callee not in SHELL_FUNCS and c.callee not in SUBPROCESS and not (c.method and c.last in SHELL_METHODS):
        built = c.first is not None and not c.literal and t.string(c.first, c.at)[0]
        return COMMAND_HELPER_RULE if COMMAND_HELPER.fullmatch(c.last) and built else None
    shell = _SHELL_LIST.match(c.o_first)
    if c.callee in SUBPROCESS and shell and shell.group(1) in SHELLS:
        rest = t.m[c.first[0] + shell.end():c.first[1]].strip().rstrip("])").strip()
        if rest and not t.is_literal_text(rest):
            return SHELL_COMMAND
    remote = c.method and c.last in SHELL_METHODS
    if (c.callee in SHELL_FUNCS or remote) and c.first and not c.literal:
        return SHELL_COMMAND
    if c.callee in SUBPROCESS and c.keywords.get("shell") == "True" and c.first and not c.literal:
        return SHELL_TRUE
    return None


DETECTOR = Detector(
    rules={"shell_command": "A shell runs a command string that is not a fixed literal, so input can inject shell "
                            "syntax.",
           "shell_true": "subprocess runs a non-literal command string through the shell (shell=True).",
           "exec_program": "os.exec*/os.spawn* runs a program whose path is built from input.",
           "command_helper": "A command line built from values is handed to a helper that runs commands "
                             "(run_ssh, run_command, ...)."},
    bandit=("B609",),  # the only test that adds recall without a false positive (docs/detector_rules.md)
    on_call=on_call, text_sink=text_sink, on_text_call=on_text_call,
)


FAMILY = Family(
    "command_injection", "CWE-78", "system", "command injection", CMD_TASKS, cmd_secure, cmd_vulnerable,
    r"os\.system|os\.popen|subprocess\.|^\s*(cmd|command|args|argv) = ",
    ("the shell command is built from user input", "shell=True lets the input run extra commands",
     "the input reaches the shell unescaped", "a ; in the argument starts a second command"),
    ("argument list, no shell: input stays one argument", "no shell is involved, so metacharacters do nothing",
     "each argument is passed to the program as is", "subprocess with a list never invokes the shell"),
    prose=PROSE, detector=DETECTOR,
)
