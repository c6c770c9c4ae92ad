"""Code injection (CWE-95): eval/exec of text from the user.

Its tasks, the secure and vulnerable renderers (``eval(expr)``; secure: ``ast.literal_eval`` or
a fixed table of operations.), its prose, and its detector rules: each AST rule (``on_*``)
beside its text twin (``text_sink`` / ``on_text_call`` / ``on_text``) for code that does not
parse (``base.Detector`` says what each hook gets).
"""

from __future__ import annotations

import ast
import random
import re

from warnframe.families.base import IND, Detector, Family, Task, make_task, render_function

# ---------------------------------------------------------------- tasks and renderings

_OPS = {
    "arith": ('"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv'),
    "compare": ('"<": operator.lt, ">": operator.gt, "==": operator.eq, "!=": operator.ne'),
}
_METHODS = '"upper": str.upper, "lower": str.lower, "title": str.title, "strip": str.strip'


def _code(task: Task, rng: random.Random, secure: bool) -> str:
    op, a = task.slots["op"], task.args
    mods: tuple[str, ...] = ("ast",) if secure and op in ("literal", "assign") else ()
    var = rng.choice(["value", "result", "parsed"])
    if op == "literal":
        call = f"ast.literal_eval({a[0]})" if secure else rng.choice(
            [f"eval({a[0]})", f"eval({a[0]})", f'eval({a[0]}, {{"__builtins__": {{}}}})'])
        expect = task.slots["expect"]
        if rng.random() < 0.5:
            what = f"a {expect}" if expect.isidentifier() else "a plain value"
            body = [f"{var} = {call}", f"if not isinstance({var}, {expect}):", f'{IND}raise ValueError("expected {what}")',
                    f"return {var}"]
        else:
            body = [f"return {call}"]
    elif op in _OPS:
        x, o, y = a
        if secure:
            table = rng.choice(["OPS", "OPERATORS"])
            return render_function(task, rng, [f"return {table}[{o}]({x}, {y})"], imports=("operator",),
                             consts=(f"{table} = {{{_OPS[op]}}}",))
        body = [rng.choice([f'return eval(f"{{{x}}} {{{o}}} {{{y}}}")', f'return eval(str({x}) + {o} + str({y}))',
                            f'return eval("%s %s %s" % ({x}, {o}, {y}))'])]
    elif op == "method":
        text, action = a
        if secure:
            body = [f"allowed = {{{_METHODS}}}", f"return allowed[{action}]({text})"]
        else:
            body = [rng.choice([f'return eval(f"{{{text}!r}}.{{{action}}}()")', f'return eval(repr({text}) + "." + {action} + "()")'])]
    else:  # assign: store a setting parsed from text
        store, key, raw = a
        if secure:
            body = [f"{store}[{key}] = ast.literal_eval({raw})"]
        else:
            body = [rng.choice([f"{store}[{key}] = eval({raw})", f'exec(f"{store}[{{{key}!r}}] = {{{raw}}}")'])]
        if rng.random() < 0.5:
            body.append(f"return {store}")
    return render_function(task, rng, body, imports=mods)


def code_vulnerable(task: Task, rng: random.Random) -> str:
    return _code(task, rng, secure=False)


def code_secure(task: Task, rng: random.Random) -> str:
    return _code(task, rng, secure=True)


def _cod(name, args, does, op, returns=None, types=None, **extra):
    return make_task("code_injection", name, args, does, returns, types, op=op, **extra)


CODE_TASKS = (
    _cod("parse_number_list", "text", ("turns a string like '[1, 2, 3]' into a list of numbers",
         "parses a list of numbers written as a Python list literal"), "literal", "list", expect="list"),
    _cod("parse_settings_literal", "text", "parses a settings dict written as a Python literal", "literal", "dict", expect="dict"),
    _cod("parse_coordinates", "point_text", "turns a string such as '(3, 4)' into a coordinate tuple", "literal", "tuple", expect="tuple"),
    _cod("apply_operator", "a op b", "applies an arithmetic operator given as a string ('+', '-', '*', '/') to two numbers",
         "arith", "float", types={"a": "float", "b": "float"}),
    _cod("compare_values", "left op right", "compares two numbers with an operator given as a string such as '<' or '=='",
         "compare", "bool", types={"left": "float", "right": "float"}),
    _cod("convert_form_value", "raw", "converts a form field string into the Python value it spells (a number, list or dict)",
         "literal", None, expect="(int, float, list, dict)"),
    _cod("parse_matrix", "matrix_text", "parses a matrix written as a nested list literal", "literal", "list", expect="list"),
    _cod("transform_text", "text action", "applies a string method named by action (upper, lower, title, strip) to text",
         "method", "str"),
    _cod("set_config_value", "config key value_text", "parses a value from text and stores it in the config dict under key",
         "assign"),
    _cod("parse_tag_set", "tags_text", "turns a string like \"{'a', 'b'}\" into a set of tags", "literal", "set", expect="set"),
    _cod("calculate_total", "price op amount", "combines a price and an amount with an arithmetic operator given as text",
         "arith", "float", types={"price": "float", "amount": "float"}),
    _cod("decode_query_param", "param", "turns a query parameter such as '[10, 20]' or '5' into a Python value",
         "literal", None, expect="(int, float, list)"),
    _cod("format_label", "label style", "formats a label with the string method named by style (upper, lower, title, strip)",
         "method", "str"),
    _cod("update_preference", "prefs name raw_value", "stores a preference parsed from its text form in the prefs dict",
         "assign", types={"prefs": ""}),
    _cod("threshold_exceeded", "reading op limit_value", "checks a sensor reading against a limit with a comparison operator given as text",
         "compare", "bool", types={"reading": "float", "limit_value": "float"}),
)


# ---------------------------------------------------------------- prose (L2 documentation, L3 hooks, tutorials)

PROSE: dict[str, list[str]] = {
        "what": ["Code injection happens when a program executes text supplied by a user as code.",
                 "Code injection is a flaw where input reaches an interpreter, so the attacker decides what runs.",
                 "Evaluating user input as Python is a direct route to code injection."],
        "how": ["In Python it usually comes from passing a form field or query parameter to eval or exec, for example to parse a list or do arithmetic.",
                "eval runs any expression, so input meant to be a number can instead import a module and run a command.",
                "Emptying the builtins passed to eval does not make it safe; object attributes still lead back to dangerous functions."],
        "harm": ["An attacker can read files, run system commands, or take over the process.",
                 "A calculator endpoint built on eval hands every visitor a Python shell.",
                 "Code injection gives the attacker everything the application can do."],
        "fix": ["The fix is ast.literal_eval for literals, or a fixed table of allowed operations, such as the functions in the operator module.",
                "Parse data with ast.literal_eval or json, and dispatch operations through a dict of allowed functions.",
                "Never call eval or exec on input; accept only values or choices from a fixed list."],
        "questions": ["Why is eval dangerous?", "What is code injection in Python?",
                      "Why is it risky to parse a list from a string with eval?", "How can exec lead to remote code execution?"],
        "tut_secure": ["ast.literal_eval parses a string holding a Python literal, such as a list, dict, tuple or number, and nothing else.",
                       "The operator module offers functions like operator.add, so a dict can map symbols to operations."],
        "tut_vuln": ["eval evaluates a string as a Python expression and returns the result.",
                     "exec runs a string of Python statements in the current program."],
        "story": ["typed a line of Python into the calculator app and it politely listed the server's files",
                  "realised the spreadsheet's formula box would evaluate anything, not just arithmetic",
                  "sent a filter expression that imported the os module and emptied the bucket"],
        "news": ["a web calculator evaluated attacker-supplied expressions on the server",
                 "a plugin system executed configuration values as code"],
}


# ---------------------------------------------------------------- detector rules

CODE_FUNCS = {"eval", "exec", "compile", "execfile", "builtins.eval", "builtins.exec", "builtins.compile"}
CODE_METHODS = {"runsource", "runcode"}  # code.InteractiveInterpreter / InteractiveConsole
LISTEN = "code_injection.logging_listen"
EVAL = "code_injection.eval_exec"
PY2_EXEC = re.compile(r"^[ \t]*+exec[ \t]++[A-Za-z_]", re.MULTILINE)  # Python 2: exec code in ns


def on_call(v, node: ast.Call, q: str, last: str) -> None:
    """eval/exec/compile of a non-literal string."""
    source = v.arg(node, 0, "source")
    runs = q in CODE_FUNCS or (last in CODE_METHODS and isinstance(node.func, ast.Attribute))
    if runs and source is not None and not v.is_literal(source):
        v.hit(EVAL, node)
    if q == "logging.config.listen" and v.keyword(node, "verify") is None:
        v.hit(LISTEN, node)


def text_sink(callee: str, method: bool) -> bool:
    return (callee in CODE_FUNCS and not method) or (method and callee.rpartition(".")[2] in CODE_METHODS) \
        or callee == "logging.config.listen"


def on_text_call(t, c) -> str | None:
    """Text twin of ``on_call``."""
    if c.callee == "logging.config.listen":
        return LISTEN if "verify" not in c.keywords else None
    return EVAL if c.first and not c.literal else None


def on_text(t) -> list[tuple[str, int, int]]:
    """Python 2's ``exec code in namespace`` statement (never parses in Python 3)."""
    return [(EVAL, m.start(), m.end()) for m in PY2_EXEC.finditer(t.m)]


DETECTOR = Detector(
    rules={"eval_exec": "eval/exec/compile turns a non-literal string into code.",
           "logging_listen": "logging.config.listen without verify= runs configuration (and code) sent to its "
                             "socket."},
    on_call=on_call, text_sink=text_sink, on_text_call=on_text_call, on_text=on_text,
)


FAMILY = Family(
    "code_injection", "CWE-95", "system", "code injection", CODE_TASKS, code_secure, code_vulnerable,
    r"eval\(|exec\(|OPS|OPERATORS|allowed",
    ("eval runs whatever the user typed", "the input is executed as Python code",
     "a crafted string can call any function", "exec on user text runs arbitrary code"),
    ("input is treated as data, never executed as code", "only literals or a fixed table of operations are accepted",
     "the user picks from a fixed set of operations", "nothing the user types is run as code"),
    prose=PROSE, detector=DETECTOR,
)
