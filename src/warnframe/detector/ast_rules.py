"""The rule engine on the AST: one walk of a parsed module with an intra-procedural dataflow,
calling every family's AST hooks.

The engine keeps what every rule needs to know about a value (``dataflow.Val``: where it may come
from, whether it is fixed, its literal text, a list's or dict's contents) in an environment per
function, walked in statement order and joined at the end of each branch (expressions are
evaluated by the ``expressions.Expressions`` half of the visitor); it resolves import
aliases where they are in force, knows the module's constants in every function, and summarises
the same file's helper functions where they are called (``Summary``: which of their parameters
reach a sink, what they return). Each family's hooks (``corpus.families.base.Detector``:
``on_call``, ``on_bind``, ``on_assign``, ...) hold the rules themselves. ``RuleVisitor(tree).run()``
returns every hit as ``(rule id, line, column, end line, end column)``; a hook sees the visitor as
``v`` (its helpers are listed on the class). Code that does not parse goes to the text twins
instead (``text_rules``).
"""

from __future__ import annotations

import ast
import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from warnframe.detector.dataflow import (
    NOTHING,
    REQUEST,
    UNKNOWN,
    Env,
    Val,
    clip,
    constant,
    derived,
    element,
    fold_binary,
    fold_compare,
    from_const,
    join_all,
    mapping,
    sequence,
)
from warnframe.detector.expressions import Expressions
from warnframe.detector.rule_registry import hooks

#: Methods that put their arguments into the object they are called on (a list, a set, a dict, a
#: ConfigParser, a command being built up).
MUTATORS = {"append", "extend", "insert", "add", "update", "set", "setdefault", "appendleft", "extendleft",
            "write", "writelines", "push", "put", "__setitem__"}
#: ``name.isdigit()`` and its kin: a test that only lets a fixed alphabet through.
VALIDATING_METHODS = {"isdigit", "isdecimal", "isnumeric", "isalnum", "isalpha", "isidentifier"}
#: Decorators that make a function a web route: its parameters come from the request's URL.
ROUTE_DECORATORS = {"route", "get", "post", "put", "delete", "patch", "api_route", "websocket", "view_config",
                    "api_view", "require_http_methods", "require_GET", "require_POST"}
_HOOKS = ("on_call", "on_bind", "on_assign", "on_dict_item", "on_compare", "on_default", "on_reference",
          "on_constant", "on_scope")
#: Statements a helper summary may walk, over all helpers of one module (bounds the work on any input).
SUMMARY_BUDGET = 4000
_SUMMARY_DEPTH = 3


def _imports(tree: ast.Module) -> tuple[dict[str, list[tuple[int, str]]], dict[ast.AST, dict[str, str]]]:
    """Every import, in one walk: the module's (local name -> [(line, dotted name)] in line order:
    an import binds a name from its line on in module code, and everywhere in functions), and each
    function's own (in force in the whole function and the functions nested in it)."""
    module: dict[str, list[tuple[int, str]]] = {}
    local: dict[ast.AST, dict[str, str]] = {}
    stack: list[tuple[ast.AST, ast.AST | None]] = [(tree, None)]
    while stack:  # statements only: an import is never inside an expression
        node, func = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for name, dotted in _bound_imports(node):
                if func is None:
                    module.setdefault(name, []).append((node.lineno, dotted))
                else:
                    local.setdefault(func, {})[name] = dotted
            continue
        inner = node if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
        for field in _BLOCKS:
            block = getattr(node, field, None)
            if block:
                stack.extend((c, inner) for c in block)
    for entries in module.values():
        entries.sort()
    return module, local


_BLOCKS = ("body", "orelse", "finalbody", "handlers", "cases")  # the fields that hold statements


def _bound_imports(node: ast.AST) -> list[tuple[str, str]]:
    if isinstance(node, ast.Import):
        return [(a.asname, a.name) for a in node.names if a.asname]
    if isinstance(node, ast.ImportFrom) and node.module:
        return [(a.asname or a.name, f"{node.module}.{a.name}") for a in node.names if a.name != "*"]
    return []


def _identifiers(node: ast.AST) -> set[str]:
    """Every name and attribute name in ``node``."""
    return {
        n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(node) if isinstance(n, (ast.Name, ast.Attribute))
    }


def _keyword(node: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in node.keywords if k.arg == name), None)


def _arg(node: ast.Call, index: int, name: str | None = None) -> ast.AST | None:
    if len(node.args) > index:
        return node.args[index]
    return _keyword(node, name) if name else None


def _is_const_value(node: ast.AST | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def _terminates(stmts: list[ast.stmt]) -> bool:
    """Does this block always leave the function (return or raise on every path)?"""
    if not stmts:
        return False
    last = stmts[-1]
    if isinstance(last, (ast.Return, ast.Raise)):
        return True
    if isinstance(last, ast.If):
        return _terminates(last.body) and _terminates(last.orelse)
    if isinstance(last, ast.Expr) and isinstance(last.value, ast.Call):  # abort(404), sys.exit(1)
        func = last.value.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        return name in ("abort", "exit", "_exit")
    return False


def _params(func: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    a = func.args
    names = [p.arg for p in a.posonlyargs + a.args]
    if names and names[0] in ("self", "cls"):
        names = names[1:]
    return names + [p.arg for p in a.kwonlyargs]


def _route(v: RuleVisitor, func: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[bool, str | None]:
    """Is the function a web route (its parameters come from the URL), and its path when the route
    is a fixed one (no ``<converter>`` / ``{param}``): there ``request.path`` is that path."""
    routes = []
    for d in func.decorator_list:
        call = d if isinstance(d, ast.Call) else None
        target = call.func if call else d
        last = target.attr if isinstance(target, ast.Attribute) else target.id if isinstance(target, ast.Name) else ""
        if last in ROUTE_DECORATORS and (isinstance(target, ast.Attribute) or last in ("api_view", "view_config")
                                         or last.startswith("require_")):
            path = call.args[0] if call and call.args else None
            routes.append(path.value if isinstance(path, ast.Constant) and isinstance(path.value, str) else None)
    first = func.args.posonlyargs + func.args.args
    django = bool(first) and first[0].arg == "request"  # a Django view: URL parameters follow the request
    static = routes[0] if len(routes) == 1 and routes[0] and not any(c in routes[0] for c in "<{") else None
    return bool(routes) or django, static


class _Scope:
    """What the rules know inside one function (or at module level), in statement order.

    ``env``: name -> ``Val`` (``dataflow.Env``); ``fact(key, compute)``: a fact about the whole
    scope, ``compute(scope node)`` worked out once, when a rule first asks (most scopes never need
    one, and each costs a walk); ``names``: every identifier in the scope; ``imports``: the
    function's own imports; ``path``: the fixed path of a web route (``request.path``).
    """

    def __init__(self, node: ast.AST, parent: _Scope | None = None, params: Mapping[str, Val] | None = None):
        self.node, self.parent = node, parent
        self.env = Env()
        for name, value in (params or {}).items():
            self.env.set(name, value)
        self.facts: dict[str, object] = {}
        self.imports: Mapping[str, str] = {}
        self.path: str | None = None
        self.returns: list[Val] = []

    def fact(self, key: str, compute):
        if key not in self.facts:
            self.facts[key] = compute(self.node)
        return self.facts[key]

    @property
    def names(self) -> set[str]:
        return self.fact("names", _identifiers)


@dataclass(frozen=True)
class Summary:
    """What a same-file function does with any arguments: ``params`` in call order (``self``
    dropped), ``ret`` what it returns (``arg:<name>`` sources stand for the arguments), ``sinks``
    ``(rule, parameters that reach the call that fired it)`` for every rule that fired in it
    because of a parameter. A call is judged by walking the helper again with its arguments
    (``RuleVisitor._helper_sinks``)."""

    params: tuple[str, ...]
    ret: Val
    sinks: tuple[tuple[str, frozenset[str]], ...]


class RuleVisitor(Expressions, ast.NodeVisitor):
    """Walks one module and records ``(rule id, line, column, end line, end column)`` for every
    rule that fires (columns in UTF-8 bytes, as the AST counts them). Family hooks get it as
    ``v``: ``v.hit(rule, node)``, ``v.qualname``, ``v.value`` (a ``dataflow.Val``),
    ``v.str_expr``, ``v.is_literal``, ``v.taint``, ``v.mark`` / ``v.marked``, ``v.scope``,
    ``v.local_function``, and the helpers ``v.arg``, ``v.keyword``, ``v.is_const``,
    ``v.identifiers``."""

    arg, keyword = staticmethod(_arg), staticmethod(_keyword)
    is_const, identifiers = staticmethod(_is_const_value), staticmethod(_identifiers)
    _dispatch: dict[type, Any] = {}

    def __init__(self, tree: ast.Module):
        self.tree = tree
        self._hooks = {name: hooks(name) for name in _HOOKS}
        self.module_imports, self.local_imports = _imports(tree)
        self.hits: list[tuple[str, int, int, int, int]] = []
        self.functions = self._functions(tree)
        self.summaries: dict[ast.AST, Summary | None] = {}
        self.budget, self.depth = SUMMARY_BUDGET, 0
        self._sink_labels: list[tuple[str, frozenset[str]]] | None = None  # set while summarising
        self._pending: set[str] | None = None  # marks a family adds while a name is being bound
        self.module = self.scope = _Scope(tree)
        self.constants = self._constants(tree)
        for hook in self._hooks["on_scope"]:
            hook(self, self.module, tree)

    # ------------------------------------------------------------ module facts

    @staticmethod
    def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
        """Module functions and class methods by name (the first definition of a name)."""
        out: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        for node in tree.body:
            members = node.body if isinstance(node, ast.ClassDef) else [node]
            for m in members:
                if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    out.setdefault(m.name, m)
        return out

    def _constants(self, tree: ast.Module) -> dict[str, Val]:
        """Module names bound once, to a fixed value: visible in every function of the module."""
        counts: dict[str, int] = {}
        assigns: list[tuple[str, ast.expr]] = []
        for node in tree.body:
            if isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                for t in node.targets:
                    for n in ast.walk(t):
                        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                            counts[n.id] = counts.get(n.id, 0) + 1
                if len(node.targets) == 1 and names:
                    assigns.append((names[0], node.value))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                counts[node.target.id] = counts.get(node.target.id, 0) + 1
                if node.value is not None:
                    assigns.append((node.target.id, node.value))
            else:
                for n in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                 ast.ClassDef)) else ():
                    if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                        counts[n.id] = counts.get(n.id, 0) + 1
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import,
                                     ast.ImportFrom)):
                    for bound in [getattr(node, "name", None)] + [a.asname or a.name for a in getattr(node, "names", [])]:
                        if bound:
                            counts[bound] = counts.get(bound, 0) + 1
        out: dict[str, Val] = {}
        self.constants = out
        saved, self.budget = self.budget, 0  # no summaries while the constants are worked out
        try:
            for name, expr in assigns:
                if counts.get(name) == 1:
                    value = self.value(expr)
                    if value.fixed:
                        out[name] = value
        finally:
            self.budget = saved
        return out

    def run(self) -> list[tuple[str, int, int, int, int]]:
        self.visit(self.tree)
        return self.hits

    def hit(self, rule: str, node: ast.expr | ast.stmt | ast.AST) -> None:
        if self._sink_labels is not None:  # summarising a helper: which parameters reach this sink
            labels = self._labels(node)
            if labels:
                self._sink_labels.append((rule, labels))
            return
        lineno = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0)
        end_line = getattr(node, "end_lineno", None) or lineno
        end_col = getattr(node, "end_col_offset", None)
        self.hits.append((rule, lineno, col, end_line, col if end_col is None else end_col))

    def _labels(self, node: ast.AST) -> frozenset[str]:
        parts: list[ast.AST] = []
        if isinstance(node, ast.Call):
            parts = [*node.args, *(k.value for k in node.keywords)]
            if isinstance(node.func, ast.Attribute):
                parts.append(node.func.value)
        else:
            parts = [node]
        out: set[str] = set()
        for p in parts:
            out |= {s for s in self.value(p).sources if s.startswith("arg:")}
        return frozenset(out)

    # ------------------------------------------------------------ names

    def qualname(self, node: ast.AST) -> str:
        """Dotted name of a callee with import aliases resolved where they are in force; ``?``
        stands for any expression."""
        if isinstance(node, ast.Name):
            return self._alias(node.id, getattr(node, "lineno", 0)) or node.id
        if isinstance(node, ast.Attribute):
            return f"{self.qualname(node.value)}.{node.attr}"
        return "?"

    def _alias(self, name: str, line: int) -> str | None:
        """What an imported ``name`` stands for at ``line``: a function's own imports in the whole
        function (and the functions nested in it), module imports in module code from their line
        on and in every function (which runs once the module is loaded)."""
        scope: _Scope | None = self.scope
        while scope is not None and scope.parent is not None:
            if name in scope.imports:
                return scope.imports[name]
            scope = scope.parent
        entries = self.module_imports.get(name)
        if not entries:
            return None
        if self.scope.parent is not None:  # in a function
            return entries[-1][1]
        i = bisect.bisect_right(entries, (line, "\uffff")) - 1
        return entries[i][1] if i >= 0 else None

    def lookup(self, name: str) -> Val | None:
        scope: _Scope | None = self.scope
        while scope is not None:
            found = scope.env.get(name)
            if found is not None:
                return found
            scope = scope.parent
        return self.constants.get(name)

    def local_function(self, node: ast.AST) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        """The same file's function a call goes to: ``f(...)`` for a module function not shadowed
        by an import, ``self.f(...)`` / ``cls.f(...)`` for a method of a class in the file."""
        if isinstance(node, ast.Name) and self._alias(node.id, getattr(node, "lineno", 0)) is None \
                and self.lookup(node.id) is None:
            return self.functions.get(node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            return self.functions.get(node.attr)
        return None

    # ------------------------------------------------------------ marks

    def mark(self, name: str, kind: str) -> None:
        """Mark the name being bound (in an ``on_bind`` hook) or already bound as holding ``kind``."""
        if self._pending is not None:
            self._pending.add(kind)
            return
        found = self.scope.env.get(name)
        if found is not None:
            self.scope.env.set(name, replace(found, marks=found.marks | {kind}))

    def marked(self, name: str, kind: str) -> bool:
        found = self.lookup(name)
        return found is not None and kind in found.marks

    # ------------------------------------------------------------ helpers in the same file

    def _probe(self, func: ast.FunctionDef | ast.AsyncFunctionDef,
               bindings: Mapping[str, Val]) -> tuple[list[tuple[str, frozenset[str]]], Val] | None:
        """Walk ``func``'s body with its parameters bound to ``bindings``, recording no hit: the
        rules that fired on a call an ``arg:`` source reached, with those sources, and what it
        returns. None past the depth or the statement budget."""
        if self.budget <= 0 or self.depth >= _SUMMARY_DEPTH:
            return None
        saved = self.scope, self._sink_labels, self._pending
        self.scope = _Scope(func, self.module, bindings)
        self.scope.imports = self.local_imports.get(func, {})
        self._sink_labels, self._pending = [], None
        self.depth += 1
        try:
            for stmt in func.body:
                if self.budget <= 0:
                    break
                self.visit(stmt)
            labels = self._sink_labels
            # No ``return`` with a value in sight (a function cut off by the end of a window, or one
            # that falls off its end): what it returns is not known, and may carry its arguments.
            ret = join_all(self.scope.returns) if self.scope.returns else Val(
                sources=frozenset(s for v in bindings.values() for s in v.sources if s.startswith("arg:")))
        finally:
            self.depth -= 1
            self.scope, self._sink_labels, self._pending = saved
        return labels, ret

    def summary(self, func: ast.FunctionDef | ast.AsyncFunctionDef) -> Summary | None:
        """What ``func`` does with any arguments (None while it is being worked out, past the depth
        or statement budget)."""
        if func in self.summaries:
            return self.summaries[func]
        self.summaries[func] = None
        params = tuple(_params(func))
        probe = self._probe(func, {p: Val(sources=frozenset({f"arg:{p}"})) for p in params})
        if probe is None:
            return None
        labels, ret = probe
        self.summaries[func] = found = Summary(params, ret, tuple(dict.fromkeys(labels)))
        return found

    def _bind_args(self, summary: Summary, node: ast.Call) -> dict[str, Val]:
        values = {}
        for name, a in zip(summary.params, node.args):
            if isinstance(a, ast.Starred):
                break
            values[f"arg:{name}"] = self.value(a)
        for k in node.keywords:
            if k.arg in summary.params:
                values[f"arg:{k.arg}"] = self.value(k.value)
        return values

    def call_value(self, func: ast.FunctionDef | ast.AsyncFunctionDef, node: ast.Call) -> Val | None:
        """What a call of the same file's ``func`` returns, its arguments put in."""
        summary = self.summary(func)
        if summary is None:
            return None
        ret, args = summary.ret, self._bind_args(summary, node)
        labels = {s for s in ret.sources if s.startswith("arg:")}
        if not labels:
            return ret
        passed = [args[s] for s in labels if s in args]
        sources = (ret.sources - labels).union(*(p.sources for p in passed))
        fixed = ret.fixed or (ret.text is not None and all(p.fixed for p in passed) and len(passed) == len(labels)
                              and not (ret.sources - labels))
        return replace(ret, sources=sources, fixed=fixed, const=NOTHING, marks=frozenset())

    def _helper_sinks(self, node: ast.Call) -> None:
        """A call of a same-file helper that hands an argument to a sink: the helper is walked with
        the arguments passed here (each also marked as ``arg:<param>``), and a rule that fires in
        it on a call an argument reached fires here too, when that argument is not fixed."""
        func = self.local_function(node.func)
        summary = self.summary(func) if func is not None else None
        if func is None or summary is None:
            return
        args = self._bind_args(summary, node)
        if not any(not a.fixed for a in args.values()):
            return
        bindings = {p: replace(args[f"arg:{p}"], sources=args[f"arg:{p}"].sources | {f"arg:{p}"})
                    if f"arg:{p}" in args else Val(sources=frozenset({f"arg:{p}"})) for p in summary.params}
        probe = self._probe(func, bindings)
        if probe is None:
            return
        fired = set()
        for rule, labels in probe[0]:
            if rule not in fired and any((a := args.get(label)) is not None and not a.fixed for label in labels):
                fired.add(rule)
                self.hit(rule, node)

    # ------------------------------------------------------------ statements that bind names

    def bind(self, name: str, value: ast.AST, val: Val | None = None) -> None:
        """Record what ``name = value`` makes ``name`` (replacing what it was)."""
        new = self.value(value) if val is None else val
        self._pending = set()
        try:
            for hook in self._hooks["on_bind"]:
                hook(self, name, value)
            marks = frozenset(self._pending)
        finally:
            self._pending = None
        self.scope.env.set(name, replace(new, marks=marks) if new.marks != marks else new)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        a = node.args
        positional = a.posonlyargs + a.args
        defaults = zip(positional[len(positional) - len(a.defaults):] + a.kwonlyargs, a.defaults + a.kw_defaults)
        for param, default in defaults:
            for hook in self._hooks["on_default"]:
                if default is not None:
                    hook(self, param, default)
        route, path = _route(self, node)
        names = {p.arg for p in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg] if p} - {"self", "cls"}
        level = REQUEST if route else Val(sources=frozenset({"param"}))
        params = {p: (Val(sources=frozenset({"param"})) if route and p == "request" else level) for p in names}
        outer = self.scope
        self.scope = _Scope(node, outer, params)
        self.scope.imports = self.local_imports.get(node, {})
        self.scope.path = path
        for hook in self._hooks["on_scope"]:
            hook(self, self.scope, node)
        try:
            self.generic_visit(node)
        finally:
            self.scope = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Return(self, node: ast.Return) -> None:
        self.generic_visit(node)
        if self._sink_labels is not None and node.value is not None:
            self.scope.returns.append(self.value(node.value))

    def visit_Assign(self, node: ast.Assign) -> None:
        self.generic_visit(node)
        val = self.value(node.value)
        for target in node.targets:
            self.assigned(target, node.value, val)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.generic_visit(node)
        if node.value is not None:
            self.assigned(node.target, node.value, self.value(node.value))

    def assigned(self, target: ast.AST, value: ast.AST, val: Val | None = None) -> None:
        val = self.value(value) if val is None else val
        if isinstance(target, (ast.Tuple, ast.List)):
            values = value.elts if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts) else None
            for i, t in enumerate(target.elts):  # unpacking a call: each name takes the call's facts
                inner = values[i] if values is not None else value
                inner_val = self.value(inner) if values is not None else (
                    val.items[i] if val.items is not None and len(val.items) == len(target.elts) else element(val))
                self.assigned(t, inner, inner_val)
            return
        if isinstance(target, ast.Name):
            name = target.id
        elif isinstance(target, ast.Attribute):
            name = target.attr
        elif isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
            name = str(target.slice.value)  # config["password"] = ...
        else:
            name = ""
        for hook in self._hooks["on_assign"]:
            hook(self, target, name, value)
        if isinstance(target, ast.Name):
            self.bind(target.id, value, val)
        elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
            self._store_item(target.value.id, self.value(target.slice), val)
        elif isinstance(target, ast.Starred) and isinstance(target.value, ast.Name):
            self.bind(target.value.id, value, derived(val))

    def _store_item(self, name: str, key: Val, val: Val) -> None:
        """``name[key] = val``: a dict or list with known contents keeps them, any other object takes
        the value's sources."""
        old = self.lookup(name)
        if old is None:
            return
        if old.keys is not None and key.known:
            keys = tuple((k, v) for k, v in old.keys if not (k == key.const and type(k) is type(key.const)))
            new = replace(mapping(keys + ((key.const, val),)), marks=old.marks)
        else:
            new = Val(sources=old.sources | val.sources | key.sources, fixed=old.fixed and val.fixed, text=old.text,
                      marks=old.marks)
        self.scope.env.set(name, new)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.generic_visit(node)
        if not isinstance(node.target, ast.Name):
            return
        name = node.target.id
        old, new = self.value(node.target), self.value(node.value)
        op = type(node.op).__name__
        folded = fold_binary(op, old.const, new.const) if old.known and new.known else NOTHING
        if folded is not NOTHING:
            val = from_const(folded)
        elif op == "Add" and old.items is not None and new.items is not None:
            val = sequence(old.items + new.items)
        elif op in ("Add", "Mod") and old.text is not None:
            val = Val(sources=old.sources | new.sources, fixed=old.fixed and new.fixed,
                      text=clip(old.text + (new.text or "") if op == "Add" else old.text))
        else:
            val = derived(old, new)
        self.scope.env.set(name, replace(val, marks=old.marks))

    def _mutate(self, node: ast.Call) -> None:
        """``x.append(v)``, ``x.set(section, option, v)``, ... on a name: the object takes what is put in."""
        func = node.func
        if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)):
            return
        name, method = func.value.id, func.attr
        old = self.scope.env.get(name)
        if old is None or (method not in MUTATORS and method not in ("pop", "remove", "clear", "popleft")):
            return
        args = [self.value(a) for a in node.args]
        new: Val | None = None
        if old.items is not None:
            items = list(old.items)
            if method == "append" and len(args) == 1:
                items.append(args[0])
            elif method == "extend" and len(args) == 1 and args[0].items is not None:
                items += args[0].items
            elif method == "insert" and len(args) == 2 and args[0].known and isinstance(args[0].const, int):
                items.insert(args[0].const, args[1])
            elif method == "pop" and (not args or args[0].known and isinstance(args[0].const, int)):
                index = args[0].const if args else -1
                if items and -len(items) <= index < len(items):  # type: ignore[operator]
                    items.pop(index)  # type: ignore[arg-type]
            elif method == "clear":
                items = []
            else:
                items = None  # type: ignore[assignment]
            if items is not None:
                new = sequence(tuple(items))
        elif old.keys is not None:
            if method == "set" and len(args) == 3 and args[0].known and args[1].known:  # ConfigParser
                key = (args[0].const, args[1].const)
                keys = tuple((k, v) for k, v in old.keys if k != key)
                new = mapping(keys + ((key, args[2]),))
            elif method == "update" and len(args) == 1 and args[0].keys is not None:
                new = mapping(tuple((k, v) for k, v in old.keys if k not in dict(args[0].keys)) + args[0].keys)
            elif method == "clear":
                new = mapping(())
        if new is None:
            if method in ("pop", "remove", "clear", "popleft"):
                return
            new = Val(sources=old.sources.union(*(a.sources for a in args)),
                      fixed=old.fixed and all(a.fixed for a in args), text=old.text)
        self.scope.env.set(name, replace(new, marks=old.marks))

    # ------------------------------------------------------------ branches

    def _arms(self, arms: list[tuple[Iterable[ast.AST], bool, dict[str, Val]]], fallthrough: bool = False) -> None:
        """Walk each arm in a branch of the environment (every arm is walked, so that the rules see
        it); join into it the arms that can run and reach its end (``fallthrough``: also the path
        on which no arm runs)."""
        env = self.scope.env
        live = []
        for stmts, alive, binds in arms:
            child = env.branch()
            self.scope.env = child
            try:
                for name, val in binds.items():
                    child.set(name, val)
                body = list(stmts)
                for stmt in body:
                    self.visit(stmt)
            finally:
                self.scope.env = env
            if alive and not _terminates([s for s in body if isinstance(s, ast.stmt)]):
                live.append(child)
        if fallthrough:
            live.append(env.branch())
        if live:
            env.merge(live)

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        truth = self.truth(node.test)
        body, orelse = self._guarded(node)
        self._arms([(node.body, truth is not False, body), (node.orelse, truth is not True, orelse)])

    def _guarded(self, node: ast.If) -> tuple[dict[str, Val], dict[str, Val]]:
        """Names the ``if`` validates, as each arm sees them: after ``if not re.fullmatch(p, name):
        return`` (or ``raise``, ``abort()``), and inside ``if name in ALLOWED:``, ``name`` is fixed
        (an allow-list, an anchored pattern, ``isdigit()`` and its kin); which side of the test
        exits tells which arm is the validated one."""
        names = self._validated(node.test)
        if not names:
            return {}, {}
        clean = {}
        for n in names:
            old = self.lookup(n)
            clean[n] = Val(fixed=True, text="" if old is None or old.text is not None else None,
                           marks=old.marks if old is not None else frozenset())
        exits, other = _terminates(node.body), _terminates(node.orelse)
        if exits and not other:
            return {}, clean
        if other and not exits:
            return clean, {}
        positive = not (isinstance(node.test, ast.UnaryOp) and isinstance(node.test.op, ast.Not))
        return (clean, {}) if positive and not exits else ({}, {})

    def _validated(self, test: ast.AST) -> set[str]:
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            return self._validated(test.operand)
        if isinstance(test, ast.BoolOp):
            return set().union(*(self._validated(v) for v in test.values))
        if isinstance(test, ast.Call):
            func = test.func
            if isinstance(func, ast.Attribute) and func.attr in VALIDATING_METHODS and isinstance(func.value, ast.Name) \
                    and not test.args:
                return {func.value.id}
            q = self.qualname(func)
            if q in ("re.match", "re.fullmatch", "re.search") and len(test.args) >= 2 \
                    and isinstance(test.args[1], ast.Name):
                pattern = self.value(test.args[0]).const
                text = pattern if isinstance(pattern, str) else ""
                whole = q == "re.fullmatch" or text.endswith(("$", "\\Z")) and (
                    q == "re.match" or text.startswith(("^", "\\A")))  # the pattern covers all of it
                return {test.args[1].id} if whole else set()
            if isinstance(func, ast.Attribute) and func.attr in ("match", "fullmatch") and test.args \
                    and isinstance(test.args[0], ast.Name) and not self._is_module(func.value):
                return {test.args[0].id}  # a compiled pattern
        if isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and len(test.ops) == 1 \
                and isinstance(test.ops[0], (ast.In, ast.NotIn)):
            allowed = self.value(test.comparators[0])
            if allowed.fixed and (allowed.items is not None or allowed.keys is not None or allowed.known):
                return {test.left.id}
        return set()

    def visit_While(self, node: ast.While) -> None:
        self.visit(node.test)
        truth = self.truth(node.test)
        self._arms([(node.body + node.orelse, truth is not False, {})], fallthrough=truth is not True)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        item = element(self.value(node.iter))
        binds = {n.id: item for n in ast.walk(node.target) if isinstance(n, ast.Name)}
        self._arms([(node.body + node.orelse, True, binds)], fallthrough=True)

    visit_AsyncFor = visit_For

    def visit_Try(self, node: ast.Try) -> None:
        for stmt in node.body:
            self.visit(stmt)
        arms: list[tuple[Iterable[ast.AST], bool, dict[str, Val]]] = [
            (node.orelse, not _terminates(node.body), {})]
        for h in node.handlers:
            if h.type is not None:
                self.visit(h.type)
            arms.append((h.body, True, {h.name: UNKNOWN} if h.name else {}))
        self._arms(arms)
        for stmt in node.finalbody:
            self.visit(stmt)

    visit_TryStar = visit_Try  # type: ignore[assignment]

    def visit_Match(self, node: ast.Match) -> None:
        self.visit(node.subject)
        subject = self.value(node.subject)
        arms: list[tuple[Iterable[ast.AST], bool, dict[str, Val]]] = []
        decided = False
        for case in node.cases:
            matches = self._matches(case.pattern, subject)
            binds = {n.name: subject for n in ast.walk(case.pattern) if isinstance(n, ast.MatchAs) and n.name}
            stmts: list[ast.AST] = ([case.guard] if case.guard is not None else []) + list(case.body)
            arms.append((stmts, not decided and matches is not False, binds))
            if matches is True and case.guard is None:
                decided = True
        self._arms(arms, fallthrough=not decided)

    def _matches(self, pattern: ast.pattern, subject: Val) -> bool | None:
        if isinstance(pattern, ast.MatchAs):
            return True if pattern.pattern is None else self._matches(pattern.pattern, subject)
        if isinstance(pattern, ast.MatchOr):
            results = [self._matches(p, subject) for p in pattern.patterns]
            return True if True in results else None if None in results else False
        if isinstance(pattern, (ast.MatchValue, ast.MatchSingleton)):
            value = self.value(pattern.value) if isinstance(pattern, ast.MatchValue) else constant(pattern.value)
            if subject.known and value.known:
                result = fold_compare("Eq", subject.const, value.const)
                return None if result is NOTHING else bool(result)
        return None

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:  # with tarfile.open(p) as tar: ``tar`` takes the opener's facts
            self.visit(item.context_expr)
            if isinstance(item.optional_vars, ast.Name):
                self.bind(item.optional_vars.id, item.context_expr)
            elif item.optional_vars is not None:
                self.visit(item.optional_vars)
        for stmt in node.body:
            self.visit(stmt)

    visit_AsyncWith = visit_With

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.generic_visit(node)
        if isinstance(node.target, ast.Name):
            self.bind(node.target.id, node.value)

    def visit(self, node: ast.AST) -> None:
        if self._sink_labels is not None and isinstance(node, ast.stmt):
            self.budget -= 1
            if self.budget <= 0:
                return
        kind = type(node)
        method = self._dispatch.get(kind)
        if method is None:
            method = self._dispatch[kind] = getattr(type(self), "visit_" + kind.__name__, RuleVisitor.generic_visit)
        method(self, node)

    def generic_visit(self, node: ast.AST) -> None:
        """``ast.NodeVisitor.generic_visit`` without its per-field generator (the walk is most of
        the detector's time)."""
        for field in node._fields:
            value = getattr(node, field, None)
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        self.visit(item)
            elif isinstance(value, ast.AST):
                self.visit(value)

    # ------------------------------------------------------------ expressions

    def visit_Dict(self, node: ast.Dict) -> None:
        self.generic_visit(node)
        for key, value in zip(node.keys, node.values):
            for hook in self._hooks["on_dict_item"]:
                if key is not None:
                    hook(self, key, value)

    def visit_Compare(self, node: ast.Compare) -> None:
        self.generic_visit(node)
        for hook in self._hooks["on_compare"]:
            hook(self, node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.generic_visit(node)
        for hook in self._hooks["on_reference"]:
            hook(self, node.attr, node)

    def visit_Name(self, node: ast.Name) -> None:
        name = (self._alias(node.id, node.lineno) or "").rpartition(".")[2]
        for hook in self._hooks["on_reference"]:
            hook(self, name, node)

    def visit_Constant(self, node: ast.Constant) -> None:
        for hook in self._hooks["on_constant"]:
            hook(self, node)

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        q = self.qualname(node.func)
        last = q.rpartition(".")[2]
        for hook in self._hooks["on_call"]:
            hook(self, node, q, last)
        self._helper_sinks(node)
        self._mutate(node)
