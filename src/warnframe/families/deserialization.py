"""Unsafe deserialization (CWE-502): loading untrusted bytes into objects.

Its tasks, the secure and vulnerable renderers (``pickle.loads``, ``yaml.load``; secure: JSON or
``yaml.safe_load``.), its prose, and its detector rules: each AST rule (``on_*``) beside its
text twin (``text_sink`` / ``on_text_call`` / ``on_text``) for code that does not parse
(``base.Detector`` says what each hook gets).
"""

from __future__ import annotations

import ast
import random
import re

from warnframe.families.base import IND, Detector, Family, Task, make_task, render_function

# ---------------------------------------------------------------- tasks and renderings

def _deser_source(task: Task, rng: random.Random):
    """(setup lines, the thing to parse, whether it is a file object) for the task's input."""
    src, arg = task.slots["source"], task.args[0]
    if src == "b64":
        raw = rng.choice(["raw", "decoded"])
        return [f"{raw} = base64.b64decode({arg})"], raw, False
    if src == "file":
        f = rng.choice(["f", "fh"])
        return [f'with open({arg}, "rb") as {f}:' if task.slots["fmt"] == "pickle" else f"with open({arg}) as {f}:"], f, True
    return [], arg, False


def _deser(task: Task, rng: random.Random, secure: bool) -> str:
    setup, src, is_file = _deser_source(task, rng)
    fmt = task.slots["fmt"]
    if fmt == "pickle":
        mod = "json" if secure else "pickle"
        call = f"{mod}.load({src})" if is_file else f"{mod}.loads({src})"
    else:
        mod = "yaml"
        if secure:
            call = rng.choice([f"yaml.safe_load({src})", f"yaml.safe_load({src})", f"yaml.load({src}, Loader=yaml.SafeLoader)"])
        else:
            call = rng.choice([f"yaml.load({src})", f"yaml.load({src})", f"yaml.load({src}, Loader=yaml.Loader)"])
    pad = IND if is_file else ""
    var = rng.choice(["data", "obj", "result", "value"])
    expect = task.slots.get("expect")
    if expect and rng.random() < 0.5:
        body = [f"{pad}{var} = {call}", f"{pad}if not isinstance({var}, {expect}):",
                f'{pad}{IND}raise ValueError("unexpected data")', f"{pad}return {var}"]
    elif rng.random() < 0.5:
        body = [f"{pad}{var} = {call}", f"{pad}return {var}"]
    else:
        body = [f"{pad}return {call}"]
    imports = (mod,) + (("base64",) if task.slots["source"] == "b64" else ())
    return render_function(task, rng, setup + body, imports=imports)


def deser_vulnerable(task: Task, rng: random.Random) -> str:
    return _deser(task, rng, secure=False)


def deser_secure(task: Task, rng: random.Random) -> str:
    return _deser(task, rng, secure=True)


def _des(name, args, does, fmt, source, expect="dict", types=None):
    return make_task("deserialization", name, args, does, expect, types, fmt=fmt, source=source, expect=expect)


DESER_TASKS = (
    _des("load_session", "data", ("restores a session dict from the bytes stored in a cookie",
         "turns serialized session bytes back into a dict"), "pickle", "bytes", types={"data": "bytes"}),
    _des("read_cache_file", "path", "loads cached results that an earlier run saved to a file", "pickle", "file"),
    _des("parse_config_text", "text", "parses a YAML configuration string into a dict", "yaml", "text"),
    _des("restore_cart", "blob", "decodes a base64 cart blob from the client back into a cart dict", "pickle", "b64"),
    _des("load_job_payload", "message", "decodes the payload of a job taken from a work queue", "pickle", "bytes", types={"message": "bytes"}),
    _des("import_settings", "filename", "reads application settings from a YAML file", "yaml", "file"),
    _des("decode_preferences", "raw", "turns stored user preference bytes back into a dict", "pickle", "bytes", types={"raw": "bytes"}),
    _des("load_saved_game", "path", "loads a saved game state from disk", "pickle", "file"),
    _des("parse_manifest", "manifest_text", "parses a deployment manifest written in YAML", "yaml", "text"),
    _des("read_queue_message", "body", "decodes a message body received from a message broker", "pickle", "bytes", types={"body": "bytes"}),
    _des("parse_workflow", "source", "parses a CI workflow definition given as YAML text", "yaml", "text"),
    _des("load_user_profile_blob", "encoded", "decodes a base64 profile blob sent by the mobile app", "pickle", "b64"),
    _des("read_rules_file", "rules_path", "loads alerting rules from a YAML file", "yaml", "file", expect="list"),
    _des("unpack_webhook_body", "payload", "decodes the body of an incoming webhook into a dict", "pickle", "bytes", types={"payload": "bytes"}),
)


# ---------------------------------------------------------------- prose (L2 documentation, L3 hooks, tutorials)

PROSE: dict[str, list[str]] = {
        "what": ["Insecure deserialization means turning untrusted bytes back into objects with a format that can build arbitrary objects.",
                 "Unsafe deserialization is a flaw where loading data can also run code chosen by whoever wrote the data.",
                 "Deserialization attacks abuse formats that describe objects rather than plain values."],
        "how": ["In Python it usually comes from calling pickle.loads on data from a cookie, a request or a queue, because pickle can call any function while loading.",
                "yaml.load without the SafeLoader can construct arbitrary Python objects from tags in the document.",
                "Code that reads a cache file or a session blob with pickle.load trusts whoever could write that data."],
        "harm": ["A crafted payload runs attacker code the moment it is loaded, before the application even looks at the result.",
                 "Attackers who can write one cookie can execute commands on the server.",
                 "Remote code execution through deserialization is one of the most severe bugs a web service can have."],
        "fix": ["The fix is a data-only format: json.loads for JSON, or yaml.safe_load for YAML, which build plain dicts, lists and strings.",
                "Never unpickle data you did not produce yourself; use json instead.",
                "Use yaml.safe_load instead of yaml.load, and json instead of pickle for anything from outside."],
        "questions": ["Why is pickle unsafe for untrusted data?", "What is insecure deserialization?",
                      "What is the difference between yaml.load and yaml.safe_load?", "How can loading a file execute code?"],
        "tut_secure": ["json.loads turns JSON text or bytes into plain Python values: dicts, lists, strings and numbers.",
                       "yaml.safe_load parses a YAML document into plain Python values and refuses object tags."],
        "tut_vuln": ["pickle.loads turns bytes produced by pickle.dumps back into the original Python objects.",
                     "yaml.load parses a YAML document into Python objects, including tagged custom types."],
        "story": ["hid a small program inside a saved-game file and waited for the server to load it",
                  "crafted a session cookie that, once the server unpacked it, phoned home with a shell",
                  "poisoned the job queue with a message that ran its hidden code on every worker that read it"],
        "news": ["attackers planted malicious serialized data in session cookies",
                 "a message queue accepted serialized objects from an untrusted source"],
}


# ---------------------------------------------------------------- detector rules

DESER_FUNCS = {
    f"{m}.{f}" for m in ("pickle", "cPickle", "_pickle", "dill") for f in ("load", "loads", "Unpickler")
} | {"marshal.load", "marshal.loads", "shelve.open", "jsonpickle.decode", "jsonpickle.loads",
     "pandas.read_pickle", "joblib.load", "cloudpickle.load", "cloudpickle.loads", "dill.Unpickler"}
#: pickle underneath unless told otherwise: torch.load without weights_only=True, numpy.load with
#: allow_pickle=True.
TORCH_LOADS, NUMPY_LOADS = {"torch.load"}, {"numpy.load"}
YAML_LOADS = {"yaml.load", "yaml.load_all"}
YAML_UNSAFE = {"yaml.unsafe_load", "yaml.unsafe_load_all", "yaml.full_load", "yaml.full_load_all"}
RUAMEL = {"ruamel.yaml.YAML", "YAML"}  # YAML(typ="unsafe")
SAFE_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}
SAFE_LOADER_TEXT = re.compile(r"\bC?(Safe|Base)Loader\b")
PICKLE, YAML = "deserialization.pickle_family", "deserialization.yaml_unsafe_load"
#: Loads that take the serialised data itself (not a file or a path): a fixed payload (a literal, a
#: constant, what is computed from them) is not a finding.
PAYLOAD_LOADS = {f"{m}.loads" for m in ("pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal")} | {
    "jsonpickle.decode", "jsonpickle.loads"} | YAML_LOADS | YAML_UNSAFE


def on_call(v, node: ast.Call, q: str, last: str) -> None:
    """A pickle-family load, or yaml.load without a safe loader (of a payload that is not fixed)."""
    if q in PAYLOAD_LOADS and v.is_literal(v.arg(node, 0, "data" if q.endswith("loads") else "stream")):
        return
    if q in DESER_FUNCS or q in TORCH_LOADS and not v.is_const(v.keyword(node, "weights_only"), True) or q in NUMPY_LOADS and v.is_const(v.keyword(node, "allow_pickle"), True):
        v.hit(PICKLE, node)
    elif q in RUAMEL and isinstance(typ := v.keyword(node, "typ"), ast.Constant) and typ.value == "unsafe" or q in YAML_UNSAFE:
        v.hit(YAML, node)
    elif q in YAML_LOADS:
        loader = v.arg(node, 1, "Loader")
        if loader is None or v.qualname(loader).rpartition(".")[2] not in SAFE_LOADERS:
            v.hit(YAML, node)


_ALIASES = {"np.load": "numpy.load"}


def text_sink(callee: str, method: bool) -> bool:
    callee = _ALIASES.get(callee, callee)
    return bool({callee} & (DESER_FUNCS | YAML_UNSAFE | YAML_LOADS | TORCH_LOADS | NUMPY_LOADS | RUAMEL))


def on_text_call(t, c) -> str | None:
    """Text twin of ``on_call``."""
    callee = _ALIASES.get(c.callee, c.callee)
    if callee in DESER_FUNCS:
        return PICKLE
    if callee in TORCH_LOADS:
        return PICKLE if c.keywords.get("weights_only") != "True" else None
    if callee in NUMPY_LOADS:
        return PICKLE if c.keywords.get("allow_pickle") == "True" else None
    if callee in RUAMEL:
        return YAML if re.fullmatch(r"\s*['\"]unsafe['\"]\s*", c.o_keywords.get("typ", "")) else None
    loader_text = ",".join(t.m[a:b] for a, b in c.args)
    if c.callee in YAML_UNSAFE or (c.callee in YAML_LOADS and not SAFE_LOADER_TEXT.search(loader_text)):
        return YAML
    return None


DETECTOR = Detector(
    rules={"pickle_family": "pickle-style deserialisation (pickle, dill, marshal, shelve, jsonpickle) can execute "
                            "arbitrary code from its input.",
           "yaml_unsafe_load": "yaml.load without a safe loader can construct arbitrary Python objects."},
    on_call=on_call, text_sink=text_sink, on_text_call=on_text_call,
)


FAMILY = Family(
    "deserialization", "CWE-502", "files", "unsafe deserialization", DESER_TASKS, deser_secure, deser_vulnerable,
    r"pickle\.|yaml\.|json\.",
    ("pickle runs code hidden in untrusted bytes", "yaml.load can build arbitrary Python objects",
     "untrusted data is deserialized into objects", "loading this data can execute code"),
    ("a data-only format: parsing never builds objects", "safe_load and json build plain data only",
     "untrusted input is parsed as data, not objects", "no code runs while the data is loaded"),
    prose=PROSE, detector=DETECTOR,
)
