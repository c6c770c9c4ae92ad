"""Path traversal (CWE-22): a file path built from input with no containment check.

Its tasks, the secure and vulnerable renderers (``open(os.path.join(BASE, name))``; secure:
``realpath`` plus a prefix check.), its prose, and its detector rules: each AST rule (``on_*``)
beside its text twin (``text_sink`` / ``on_text_call`` / ``on_text``) for code that does not
parse (``base.Detector`` says what each hook gets).
"""

from __future__ import annotations

import ast
import random
import re

from warnframe.families.base import IND, Detector, Family, Task, make_task, render_function

# ---------------------------------------------------------------- tasks and renderings

def _path_join(task: Task) -> list[str]:
    """What is joined to the base directory: the task's name arguments (a suffix makes an f-string)."""
    parts = list(task.slots.get("parts", task.args[:1]))
    if task.slots.get("suffix"):
        parts[-1] = f'f"{{{parts[-1]}}}{task.slots["suffix"]}"'
    return parts


def _path_io(task: Task, path: str, rng: random.Random) -> list[str]:
    f = rng.choice(["f", "fh", "fp"])
    mode = task.slots["mode"]
    if mode == "read":
        opener = rng.choice([f"open({path})", f'open({path}, encoding="utf-8")'])
        return [f"with {opener} as {f}:", f"{IND}return {f}.read()"]
    if mode == "bytes":
        return [f'with open({path}, "rb") as {f}:', f"{IND}return {f}.read()"]
    if mode == "lines":
        return [f"with open({path}) as {f}:", f"{IND}return {f}.read().splitlines()"]
    data = task.args[-1]
    if mode == "append":
        return [f'with open({path}, "a") as {f}:', f'{IND}{f}.write({data} + "\\n")']
    return [f'with open({path}, "w") as {f}:', f"{IND}{f}.write({data})"]


def path_vulnerable(task: Task, rng: random.Random) -> str:
    const, base = task.slots["const"], task.slots["base"]
    join = f"os.path.join({', '.join([const] + _path_join(task))})"
    if rng.random() < 0.5:
        var = rng.choice(["path", "full_path", "target", "filepath"])
        body = [f"{var} = {join}"] + _path_io(task, var, rng)
    else:
        body = _path_io(task, join, rng)
    return render_function(task, rng, body, imports=("os",), consts=(f'{const} = "{base}"',))


def path_secure(task: Task, rng: random.Random) -> str:
    const, base = task.slots["const"], task.slots["base"]
    root = rng.choice(["base", "root", "base_dir"])
    var = rng.choice(["path", "full_path", "target", "filepath"])
    body = [f"{root} = os.path.realpath({const})",
            f"{var} = os.path.realpath(os.path.join({', '.join([root] + _path_join(task))}))",
            f"if not {var}.startswith({root} + os.sep):",
            IND + rng.choice(['raise ValueError("invalid file name")', 'raise ValueError("path escapes the base directory")',
                              'raise PermissionError("access outside the allowed folder")'])]
    body += _path_io(task, var, rng)
    return render_function(task, rng, body, imports=("os",), consts=(f'{const} = "{base}"',))


def _path(name, args, does, const, base, mode, returns=None, **extra):
    ret = returns or {"read": "str", "bytes": "bytes", "lines": "list", "append": None, "write": None}[mode]
    return make_task("path_traversal", name, args, does, ret, const=const, base=base, mode=mode, **extra)


PATH_TASKS = (
    _path("read_upload", "filename", ("returns the text of a file from the uploads directory",
          "reads an uploaded file by its name and returns its contents"), "UPLOAD_DIR", "/srv/app/uploads", "read"),
    _path("serve_static_file", "name", "returns the bytes of a file under the static directory", "STATIC_ROOT", "/var/www/static", "bytes"),
    _path("load_template", "template_name", "reads an HTML template from the templates folder", "TEMPLATE_DIR", "/srv/app/templates", "read"),
    _path("save_note", "title text", "writes a note to a file named after its title in the notes directory", "NOTES_DIR", "/data/notes", "write"),
    _path("read_log_lines", "log_name", "returns the lines of a log file from the logs directory", "LOG_DIR", "/var/log/app", "lines"),
    _path("load_avatar", "username", "returns the PNG avatar image bytes of a user", "AVATAR_DIR", "/srv/media/avatars", "bytes", suffix=".png"),
    _path("download_invoice", "invoice_file", "returns the bytes of an invoice PDF stored in the invoices folder", "INVOICE_DIR", "/srv/billing/invoices", "bytes"),
    _path("read_user_document", "owner doc_name", "reads a document from the owner's folder under the documents root",
          "DOCS_ROOT", "/srv/docs", "read", parts=("owner", "doc_name")),
    _path("write_export", "filename content", "writes exported content to a file in the exports directory", "EXPORT_DIR", "/srv/app/exports", "write"),
    _path("read_backup_manifest", "backup_name", "returns the lines of a backup manifest file", "BACKUP_DIR", "/var/backups", "lines"),
    _path("append_audit_entry", "log_name entry", "appends an entry line to an audit log file", "AUDIT_DIR", "/var/log/audit", "append"),
    _path("get_theme_css", "theme", "returns the CSS text of a theme stored as theme name plus .css", "THEMES_DIR", "/srv/app/themes", "read", suffix=".css"),
    _path("read_attachment", "message_id filename", "returns the bytes of an email attachment stored under the message's folder",
          "ATTACHMENTS_ROOT", "/srv/mail/attachments", "bytes", parts=("message_id", "filename"), types={"message_id": "str"}),
    _path("load_translation", "language", "returns the text of a translation file named after the language code",
          "LOCALE_DIR", "/srv/app/locales", "read", suffix=".po"),
    _path("save_upload", "filename data", "stores uploaded text under the given file name in the uploads folder",
          "UPLOAD_ROOT", "/srv/uploads", "write"),
    _path("read_report", "report_name", "returns the text of a generated report from the reports directory", "REPORT_DIR", "/srv/reports", "read"),
)


# ---------------------------------------------------------------- prose (L2 documentation, L3 hooks, tutorials)

PROSE: dict[str, list[str]] = {
        "what": ["Path traversal is a flaw where a user-supplied file name reaches outside the directory it was meant to stay in.",
                 "Path traversal, also called directory traversal, uses sequences like ../ to read or write files anywhere on the server.",
                 "A path traversal bug lets a request for one file return a completely different file."],
        "how": ["It happens when code joins the requested name onto a base folder with os.path.join and passes the result to open without checking where the path ends up.",
                "If a download handler calls open on os.path.join of the upload directory and a name like ../../etc/passwd, the file outside the folder is served.",
                "os.path.join also discards the base directory entirely when the second part is an absolute path."],
        "harm": ["Attackers can read configuration files, keys and source code, or overwrite files the application can write.",
                 "One crafted file name can expose the server's password file or the application's secrets.",
                 "Write access through traversal can replace scripts the server later executes."],
        "fix": ["The fix is to resolve the full path with os.path.realpath and check that it still starts with the base directory before calling open.",
                "Normalize the path with os.path.realpath and reject it unless it stays under the allowed root.",
                "Resolve the joined path and refuse any name whose real path leaves the base folder."],
        "questions": ["What is a path traversal vulnerability?", "Why is os.path.join with a user file name unsafe?",
                      "How does directory traversal with ../ work?", "Explain path traversal attacks."],
        "tut_secure": ["os.path.realpath resolves .. and symbolic links, so after joining a name to a base folder the real path can be compared with the folder.",
                       "To serve a file by name, os.path.join builds the path, os.path.realpath resolves it, and startswith confirms it is still inside the base directory."],
        "tut_vuln": ["os.path.join glues a folder and a file name together, and open reads the resulting path.",
                     "A file under a base folder can be opened by joining the folder and the name with os.path.join and passing that to open."],
        "story": ["asked the photo server for a picture named with a long chain of dot-dot-slashes and got the machine's configuration instead",
                  "discovered that the invoice download link would fetch any file on the server if you climbed enough directories",
                  "requested a theme file three folders above the web root and read the application's private keys"],
        "news": ["a download endpoint let attackers read arbitrary files from the server",
                 "attackers used crafted file names to climb out of an upload folder"],
}


# ---------------------------------------------------------------- detector rules

PATH_FUNCS = {"open", "io.open", "codecs.open", "os.open", "os.remove", "os.unlink", "os.rmdir",
              "os.removedirs", "send_file", "flask.send_file", "builtins.open", "io.FileIO", "aiofiles.open",
              "os.listdir", "os.scandir", "os.makedirs", "os.mkdir", "os.chmod", "os.chown", "os.truncate",
              "os.rename", "os.replace", "FileResponse", "fastapi.responses.FileResponse",
              "starlette.responses.FileResponse", "bottle.static_file", "aiofiles.os.remove"}  # and every shutil.*
#: Calls that only look at a path (exists, size, ...): flagged with a path from a request only.
PATH_PROBES = {"os.path.exists", "os.path.isfile", "os.path.isdir", "os.path.getsize", "os.path.getmtime",
               "os.path.lexists", "os.stat", "os.lstat", "os.access"}
PROBE_METHODS = {"exists", "is_file", "is_dir", "stat", "iterdir", "glob", "rglob"}  # pathlib
TWO_PATHS = ("shutil.", "os.rename", "os.replace")  # both arguments are paths
TAR_OPENERS = {"tarfile.open", "tarfile.TarFile", "tarfile.TarFile.open", "TarFile.open"}
ARCHIVE = "path_traversal.archive_extract"
PATH_METHODS = {"read_text", "read_bytes", "write_text", "write_bytes", "open", "unlink"}  # pathlib
PATH_BUILDERS = {"os.path.join", "posixpath.join", "pathlib.Path", "Path", "pathlib.PurePath"}
NORMALISERS = {"realpath", "abspath", "normpath", "resolve"}
CONTAINMENT_TESTS = {"startswith", "commonpath", "commonprefix", "is_relative_to", "relative_to"}
SANITISERS = {"secure_filename", "basename", "safe_join"}
UNCHECKED = "path_traversal.unchecked_path"


def contains(names: set[str]) -> bool:
    """Do these names (of a function or module) check that a path stays inside a directory?"""
    return bool(names & NORMALISERS and names & CONTAINMENT_TESTS) or bool(names & SANITISERS)


def _dotdot_check(node: ast.AST) -> bool:
    """Does the function reject a path with ``..`` in it (``if ".." in name: abort(400)``)?"""
    return any(isinstance(n, ast.Compare) and isinstance(n.left, ast.Constant) and isinstance(n.left.value, str)
               and ".." in n.left.value and all(isinstance(op, (ast.In, ast.NotIn)) for op in n.ops)
               for n in ast.walk(node))


def path_leaves(v, node: ast.AST) -> list[ast.expr]:
    """The parts of a built path after its base: the base may be the caller's choice of
    directory, a part after it decides where inside (or outside) that directory it lands."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Div)):
        return [node.right, *path_leaves(v, node.left)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        parts = node.right.elts if isinstance(node.right, ast.Tuple) else [node.right]
        leading = isinstance(node.left, ast.Constant) and str(node.left.value).startswith("%")
        return parts[1:] if leading else parts
    if isinstance(node, ast.JoinedStr):
        parts = node.values[1:] if node.values and isinstance(node.values[0], ast.FormattedValue) else node.values
        return [p for p in parts if isinstance(p, ast.FormattedValue)]
    if isinstance(node, ast.Call):
        q = v.qualname(node.func)
        if q in PATH_BUILDERS:
            return node.args[1:]
        if q.endswith((".joinpath", ".format")):
            # a bare name (``from util import joinpath``) has no receiver: no template
            template = node.func.value if isinstance(node.func, ast.Attribute) else None
            leading = isinstance(template, ast.Constant) and str(template.value).startswith("{")
            args = node.args + [k.value for k in node.keywords]
            return args[1:] if leading else args
    return []


def unchecked_path(v, node: ast.AST) -> bool:
    """A path taken from a request, or built with a parameter after its base directory."""
    if isinstance(node, ast.Name) and v.marked(node.id, "path"):
        return True
    return v.taint(node) == "request" or any(v.taint(leaf) for leaf in path_leaves(v, node))


def on_bind(v, name: str, value: ast.AST) -> None:
    if unchecked_path(v, value):
        v.mark(name, "path")
    if isinstance(value, ast.Call) and v.qualname(value.func) in TAR_OPENERS:
        v.mark(name, "tar")


def _tar_extract(v, node: ast.Call, last: str) -> bool:
    """``tar.extractall()`` / ``tar.extract(m)`` with neither ``filter=`` nor ``members=``: names
    like ``../../etc/cron.d/x`` in the archive land outside the target (tar-slip)."""
    if last not in ("extractall", "extract") or not isinstance(node.func, ast.Attribute):
        return False
    if any(k.arg in ("filter", "members") for k in node.keywords):
        return False
    receiver = node.func.value
    if isinstance(receiver, ast.Call):
        return v.qualname(receiver.func) in TAR_OPENERS
    return isinstance(receiver, ast.Name) and v.marked(receiver.id, "tar")


def on_call(v, node: ast.Call, q: str, last: str) -> None:
    """A file is opened, removed or served at a path built from a parameter or a request value,
    in a function (or module) with no containment check."""
    if _tar_extract(v, node, last):
        v.hit(ARCHIVE, node)
    receiver = node.func.value if isinstance(node.func, ast.Attribute) else None
    method = receiver is not None and q != "os.open" and not q.startswith("os.")
    if q.startswith(TWO_PATHS):
        candidates = node.args[:2]
    elif q in PATH_FUNCS:
        candidates = node.args[:1]
    elif method and last in PATH_METHODS and receiver is not None:
        candidates = [receiver]
    elif q in PATH_PROBES or (method and last in PROBE_METHODS and not node.args and receiver is not None):
        probed = node.args[:1] if q in PATH_PROBES else [receiver]
        if any(c is not None and v.taint(c) == "request" for c in probed) and not _checked(v):
            v.hit(UNCHECKED, node)
        return
    else:
        return
    if any(unchecked_path(v, c) for c in candidates) and not _checked(v):
        v.hit(UNCHECKED, node)


def _checked(v) -> bool:
    """Does the function (or module) keep paths inside a directory? Worked out once per scope, and
    only once a path from input reaches a sink (a walk of the whole function)."""
    return contains(v.scope.names) or bool(v.scope.fact("dotdot", _dotdot_check))


def text_sink(callee: str, method: bool) -> bool:
    archive = method and callee.endswith((".extractall", ".extract"))
    return callee in PATH_FUNCS or callee.startswith("shutil.") or archive


def text_path_leaf(t, span: tuple[int, int], before: int, depth: int = 0) -> bool:
    """Text twin of ``path_leaves``: is a path built with a variable after its base directory?"""
    assignment = t.value_of(span, before)
    if assignment:
        pos, _, rhs = assignment
        return bool(t.followed("path", pos, lambda d: text_path_leaf(t, rhs, pos, d), depth))
    a, b = t.strip(span)
    e = t.m[a:b]
    join = re.search(r"(?:\bjoin|\bPath|\.joinpath)\s*+\(", e)
    if join:
        start = a + join.end()
        args = t.split_args(start, t.scan(start, ")", b))
        return any(t.has_variable(s) for s in (args if "joinpath" in join.group() else args[1:]))
    if t.is_f_string(e):
        fields = t.fields(t.o[a:b])
        leading = re.match(r"\s*[rRfF]{1,2}['\"]\{", t.o[a:b])
        return t.names_have_variable(" ".join(fields[1:] if leading else fields))
    parts = re.split(r"[+/]", t.without_strings(e, "''"))
    return len(parts) > 1 and t.names_have_variable(" ".join(parts[1:]))


def on_text_call(t, c) -> str | None:
    """Text twin of ``on_call`` (containment judged over the whole text; an archive is a tar file
    when ``tarfile`` appears anywhere)."""
    if c.method and c.last in ("extractall", "extract"):
        safe = {"filter", "members"} & c.keywords.keys()
        return ARCHIVE if "tarfile" in t.names and not safe else None
    sources = c.positional[: 2 if c.callee.startswith(TWO_PATHS) else 1]
    if not contains(t.names) and any(text_path_leaf(t, a, c.at) for a in sources):
        return UNCHECKED
    return None


DETECTOR = Detector(
    rules={"unchecked_path": "A file path is built from a function argument or request value with no check that "
                             "it stays inside the intended directory.",
           "archive_extract": "A tar archive is extracted with neither filter= nor members=, so its member names "
                              "(../..) can write outside the target directory."},
    on_call=on_call, on_bind=on_bind, text_sink=text_sink, on_text_call=on_text_call,
)


FAMILY = Family(
    "path_traversal", "CWE-22", "files", "path traversal", PATH_TASKS, path_secure, path_vulnerable, r"os\.path\.join",
    ("the file name is joined to the base directory without a check", "'../' in the name escapes the directory",
     "nothing keeps the path inside the base folder", "the user controls which file is opened"),
    ("resolve the path and keep it inside the base directory", "realpath plus a prefix check blocks '../'",
     "only files under the base folder can be opened", "the resolved path must stay under the allowed root"),
    prose=PROSE, detector=DETECTOR,
)
