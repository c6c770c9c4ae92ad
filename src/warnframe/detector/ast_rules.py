"""The rule engine on the AST: one walk of a parsed module, calling every family's AST hooks.

The engine keeps the facts every rule needs (import aliases, strings built from values, taint
from parameters and requests, per-scope names) and calls each family's hooks
(``corpus.families.base.Detector``: ``on_call``, ``on_bind``, ``on_assign``, ...); the families
hold the rules themselves. ``RuleVisitor(tree).run()`` returns every hit as ``(rule id, line,
column, end line, end column)``; a hook sees the visitor as ``v`` (its helpers are listed on the
class). Code that does not parse goes to the text twins instead (``text_rules``).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Set

from warnframe.detector.rule_registry import hooks


def _import_aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted name it stands for (``import subprocess as sp``, ``from os import system``)."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update({a.asname: a.name for a in node.names if a.asname})
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
    return out


def _identifiers(node: ast.AST) -> set[str]:
    """Every name and attribute name in ``node``."""
    return {
        n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(node) if isinstance(n, (ast.Name, ast.Attribute))
    }


def _is_constant(node: ast.AST) -> bool:
    if isinstance(node, (ast.Tuple, ast.List)):
        return all(_is_constant(e) for e in node.elts)
    return isinstance(node, ast.Constant)


def _keyword(node: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in node.keywords if k.arg == name), None)


def _arg(node: ast.Call, index: int, name: str | None = None) -> ast.AST | None:
    if len(node.args) > index:
        return node.args[index]
    return _keyword(node, name) if name else None


def _is_const_value(node: ast.AST | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def _literal_text(node: ast.expr) -> str:
    """The text of a literal part of an f-string (a ``str`` constant beside its formatted fields)."""
    assert isinstance(node, ast.Constant) and isinstance(node.value, str)
    return node.value


class _Scope:
    """What the rules know inside one function (or at module level), in statement order.

    ``marked``: names a family marked when they were bound (``marked["path"]``: holds a path
    built from input), cleared when the name is rebound; ``fact(key, compute)``: a fact about the
    whole scope, ``compute(scope node)`` worked out once, when a rule first asks (most scopes never
    need one, and each costs a walk); ``names``: every identifier in the scope.
    """

    def __init__(self, node: ast.AST, params: Set[str] = frozenset()):
        self.node = node
        self.strings: dict[str, tuple[bool, str]] = {}  # name -> (built from values?, literal text)
        self.taint: dict[str, str] = dict.fromkeys(params, "param")  # name -> "param" | "request"
        self.marked: dict[str, set[str]] = defaultdict(set)
        self.facts: dict[str, object] = {}

    def fact(self, key: str, compute):
        if key not in self.facts:
            self.facts[key] = compute(self.node)
        return self.facts[key]

    @property
    def names(self) -> set[str]:
        return self.fact("names", _identifiers)


class RuleVisitor(ast.NodeVisitor):
    """Walks one module and records ``(rule id, line, column, end line, end column)`` for every
    rule that fires (columns in UTF-8 bytes, as the AST counts them). Family hooks get it as
    ``v``: ``v.hit(rule, node)``, ``v.qualname``, ``v.str_expr``, ``v.is_literal``, ``v.taint``,
    ``v.scope``, and the helpers ``v.arg``, ``v.keyword``, ``v.is_const``, ``v.identifiers``."""

    arg, keyword = staticmethod(_arg), staticmethod(_keyword)
    is_const, identifiers = staticmethod(_is_const_value), staticmethod(_identifiers)

    def __init__(self, tree: ast.Module):
        self.tree = tree
        self.aliases = _import_aliases(tree)
        self.hits: list[tuple[str, int, int, int, int]] = []
        self.module = self.scope = self.new_scope(tree)

    def new_scope(self, node: ast.AST, params: Set[str] = frozenset()) -> _Scope:
        scope = _Scope(node, params)
        for hook in hooks("on_scope"):
            hook(self, scope, node)
        return scope

    def run(self) -> list[tuple[str, int, int, int, int]]:
        self.visit(self.tree)
        return self.hits

    def hit(self, rule: str, node: ast.expr | ast.stmt) -> None:
        end_line = getattr(node, "end_lineno", None) or node.lineno
        end_col = getattr(node, "end_col_offset", None)
        end_col = node.col_offset if end_col is None else end_col
        self.hits.append((rule, node.lineno, node.col_offset, end_line, end_col))

    def qualname(self, node: ast.AST) -> str:
        """Dotted name of a callee with import aliases resolved; ``?`` stands for any expression."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            return f"{self.qualname(node.value)}.{node.attr}"
        return "?"

    # string and taint facts about expressions

    def str_expr(self, node: ast.AST | None) -> tuple[bool, str] | None:
        """``(built, text)`` when ``node`` is a string: built = formatted or concatenated from
        non-constant values; text = the literal text known to end up in it (its constant parts and
        those of the strings put into it). None when it is not known to be a string."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return False, node.value
        if isinstance(node, ast.JoinedStr):
            fields = [v for v in node.values if isinstance(v, ast.FormattedValue)]
            parts = [self.str_expr(v.value) if isinstance(v, ast.FormattedValue) else (False, _literal_text(v))
                     for v in node.values]
            return bool(fields), "".join(p[1] for p in parts if p)
        if isinstance(node, ast.Name):
            return self.scope.strings.get(node.id) or self.module.strings.get(node.id)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
            left = self.str_expr(node.left)
            if isinstance(node.op, ast.Mod):
                return (left[0] or not _is_constant(node.right), left[1]) if left else None
            right = self.str_expr(node.right)
            if left is None and right is None:
                return None
            built = left is None or right is None or left[0] or right[0]
            return built, (left or (0, ""))[1] + (right or (0, ""))[1]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("format", "join"):
            base = self.str_expr(node.func.value)
            if base is None:
                return None
            args = node.args + [k.value for k in node.keywords]
            pieces = [n.value for a in args
                      for n in ast.walk(a) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            return base[0] or not all(_is_constant(a) for a in args), base[1] + "".join(pieces)
        return None

    def is_literal(self, node: ast.AST) -> bool:
        if isinstance(node, (ast.List, ast.Tuple)):
            return all(self.is_literal(e) for e in node.elts)
        if isinstance(node, ast.Constant):
            return True
        kind = self.str_expr(node)
        return kind is not None and not kind[0]

    def taint(self, node: ast.AST) -> str | None:
        """"request" if the value comes from a web request, input() or argv; "param" if it comes
        from a parameter of the enclosing function; else None."""
        found = None
        for n in ast.walk(node):
            if isinstance(n, (ast.Name, ast.Attribute)):
                q = self.qualname(n)
                if q.startswith(("request.", "flask.request.")) or q in ("sys.argv", "input", "raw_input"):
                    return "request"
            if isinstance(n, ast.Name):
                level = self.scope.taint.get(n.id)
                if level == "request":
                    return level
                found = found or level
        return found

    # statements that bind names

    def bind(self, name: str, value: ast.AST) -> None:
        """Record what ``name = value`` makes ``name`` (replacing what it was)."""
        s = self.scope
        for facts in (s.strings, s.taint):
            facts.pop(name, None)
        for marked in s.marked.values():
            marked.discard(name)
        kind, level = self.str_expr(value), self.taint(value)
        if kind is not None:
            s.strings[name] = kind
        if level is not None:
            s.taint[name] = level
        for hook in hooks("on_bind"):
            hook(self, name, value)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        a = node.args
        params = {p.arg for p in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg] if p} - {"self", "cls"}
        positional = a.posonlyargs + a.args
        defaults = zip(positional[len(positional) - len(a.defaults):] + a.kwonlyargs, a.defaults + a.kw_defaults)
        for param, default in defaults:
            for hook in hooks("on_default"):
                if default is not None:
                    hook(self, param, default)
        outer, self.scope = self.scope, self.new_scope(node, params)
        self.generic_visit(node)
        self.scope = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Assign(self, node: ast.Assign) -> None:
        self.generic_visit(node)
        for target in node.targets:
            self.assigned(target, node.value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.generic_visit(node)
        if node.value is not None:
            self.assigned(node.target, node.value)

    def assigned(self, target: ast.AST, value: ast.AST) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            values = value.elts if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts) else None
            for i, t in enumerate(target.elts):  # unpacking a call: each name takes the call's facts
                self.assigned(t, values[i] if values is not None else value)
            return
        if isinstance(target, ast.Name):
            name = target.id
        elif isinstance(target, ast.Attribute):
            name = target.attr
        elif isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
            name = str(target.slice.value)  # config["password"] = ...
        else:
            name = ""
        for hook in hooks("on_assign"):
            hook(self, target, name, value)
        if isinstance(target, ast.Name):
            self.bind(target.id, value)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.generic_visit(node)
        if not isinstance(node.target, ast.Name):
            return
        name, s = node.target.id, self.scope
        old, new = self.str_expr(node.target), self.str_expr(node.value)
        if old is not None and isinstance(node.op, ast.Add):
            s.strings[name] = (old[0] or new is None or new[0], old[1] + (new[1] if new else ""))
        level = self.taint(node.value)
        if level and s.taint.get(name) != "request":
            s.taint[name] = level

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        level = self.taint(node.iter)
        if level:
            self.scope.taint.update(dict.fromkeys(_identifiers(node.target), level))
        for stmt in node.body + node.orelse:
            self.visit(stmt)

    visit_AsyncFor = visit_For

    # expressions

    def visit_Dict(self, node: ast.Dict) -> None:
        self.generic_visit(node)
        for key, value in zip(node.keys, node.values):
            for hook in hooks("on_dict_item"):
                if key is not None:
                    hook(self, key, value)

    def visit_Compare(self, node: ast.Compare) -> None:
        self.generic_visit(node)
        for hook in hooks("on_compare"):
            hook(self, node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.generic_visit(node)
        for hook in hooks("on_reference"):
            hook(self, node.attr, node)

    def visit_Name(self, node: ast.Name) -> None:
        name = self.aliases.get(node.id, "").rpartition(".")[2]
        for hook in hooks("on_reference"):
            hook(self, name, node)

    def visit_Constant(self, node: ast.Constant) -> None:
        for hook in hooks("on_constant"):
            hook(self, node)

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

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        q = self.qualname(node.func)
        last = q.rpartition(".")[2]
        for hook in hooks("on_call"):
            hook(self, node, q, last)
