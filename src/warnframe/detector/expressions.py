"""What an expression evaluates to, for the rule engine: ``Expressions.value(node) -> Val``.

A mixin of ``ast_rules.RuleVisitor``: it evaluates any expression to a ``dataflow.Val`` in the
environment of the statement being walked (names through the scope chain and the module's
constants, sources of input, sanitisers and pure functions, bounded constant folding of
operators, comparisons, string methods, f-strings, ``%`` and ``.format``, containers, conditional
expressions, comprehensions, calls of the same file's functions through their summaries), and
answers what the rules ask about an expression (``str_expr``, ``is_literal``, ``taint``). The
visitor supplies names (``qualname``, ``lookup``), the scope and the helper summaries.
"""

from __future__ import annotations

import ast
from dataclasses import replace
from typing import Any

from warnframe.detector.dataflow import (
    NOTHING,
    REQUEST,
    UNKNOWN,
    Val,
    clip,
    constant,
    derived,
    element,
    fold_binary,
    fold_compare,
    fold_method,
    from_const,
    join,
    join_all,
    mapping,
    sequence,
)

#: Sources of input besides parameters: a web request (``request.*`` from Flask, Django, ... and
#: ``self.request.*``), ``input()`` and ``sys.argv`` ("request"), the environment ("env": ranked
#: with parameters).
REQUEST_ROOTS = ("request.", "flask.request.", "self.request.", "bottle.request.", "cherrypy.request.")
REQUEST_NAMES = {"input", "raw_input", "sys.argv", "sys.stdin", "flask.request", "request.get_json"}
ENV_SOURCES = {"os.environ", "os.getenv", "os.environ.get", "os.environb", "os.getenvb"}
#: Calls whose result cannot carry text the caller chose (numbers, booleans, quoted shell words,
#: safe file names): they end a flow of input.
SANITISERS = {"int", "float", "bool", "len", "ord", "abs", "round", "hash", "id", "isinstance", "issubclass",
              "callable", "hasattr", "uuid.UUID", "ipaddress.ip_address", "ipaddress.ip_network",
              "shlex.quote", "pipes.quote", "shlex.join", "secure_filename", "werkzeug.utils.secure_filename",
              "werkzeug.secure_filename", "math.floor", "math.ceil", "datetime.date.fromisoformat"}
QUOTERS = {"shlex.quote", "pipes.quote", "shlex.join", "secure_filename", "werkzeug.utils.secure_filename",
           "werkzeug.secure_filename"}  # sanitisers that return a string
#: Pure functions: their result is fixed when every argument is, and carries the arguments' sources.
PURE = {"str", "bytes", "repr", "format", "ascii", "hex", "oct", "chr", "list", "tuple", "sorted", "reversed",
        "set", "frozenset", "dict", "min", "max", "sum", "os.path.join", "os.path.basename", "os.path.dirname",
        "os.path.normpath", "os.path.splitext", "os.path.expanduser", "posixpath.join", "ntpath.join",
        "json.dumps", "html.escape", "markupsafe.escape", "codecs.encode", "codecs.decode", "textwrap.dedent",
        "string.Template", "pathlib.Path", "Path", "pathlib.PurePath", "pathlib.PurePosixPath"}
PURE_MODULES = ("base64.", "binascii.", "urllib.parse.", "string.")
STRING_RESULT = {"str", "repr", "format", "ascii", "hex", "oct", "chr", "os.path.join", "os.path.basename",
                 "os.path.dirname", "os.path.normpath", "os.path.expanduser", "posixpath.join", "ntpath.join",
                 "json.dumps", "html.escape", "markupsafe.escape", "textwrap.dedent"}


class Expressions:
    """The expression half of the rule engine (see the module docstring); ``RuleVisitor`` provides
    the methods below that raise ``NotImplementedError``."""

    scope: Any  # ast_rules._Scope

    def qualname(self, node: ast.AST) -> str:
        raise NotImplementedError

    def lookup(self, name: str) -> Val | None:
        raise NotImplementedError

    def local_function(self, node: ast.AST) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        raise NotImplementedError

    def call_value(self, func: ast.FunctionDef | ast.AsyncFunctionDef, node: ast.Call) -> Val | None:
        raise NotImplementedError

    # ------------------------------------------------------------ values of expressions

    def value(self, node: ast.AST | None) -> Val:
        """What ``node`` evaluates to here (``dataflow.Val``)."""
        if node is None:
            return UNKNOWN
        method = getattr(self, f"_v_{type(node).__name__}", None)
        if method is not None:
            return method(node)
        if isinstance(node, ast.expr):  # comprehensions, lambdas, await, ...: whatever flows in
            return derived(*self._inner_values(node), fixed=False)
        return UNKNOWN

    def _inner_values(self, node: ast.AST) -> list[Val]:
        """The values of the expressions directly inside ``node``, through the nodes that are not
        expressions (a comprehension's ``for ... in ...``, keywords)."""
        out = []
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                out.append(self.value(child))
            elif not isinstance(child, (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)):
                out += self._inner_values(child)
        return out

    def _v_Constant(self, node: ast.Constant) -> Val:
        return constant(node.value)

    def _v_Name(self, node: ast.Name) -> Val:
        found = self.lookup(node.id)
        if found is not None:
            return found
        q = self.qualname(node)
        if q in REQUEST_NAMES:
            return REQUEST
        if q in ENV_SOURCES:
            return Val(sources=frozenset({"env"}))
        return UNKNOWN

    def _source(self, q: str) -> Val | None:
        if q.startswith(REQUEST_ROOTS) or q in REQUEST_NAMES:
            if q in ("request.path", "flask.request.path") and self._route_path() is not None:
                return constant(self._route_path())
            return REQUEST
        if q in ENV_SOURCES or q.startswith("os.environ."):
            return Val(sources=frozenset({"env"}))
        return None

    def _route_path(self) -> str | None:
        scope = self.scope
        while scope is not None:
            if scope.path is not None:
                return scope.path
            scope = scope.parent
        return None

    def _v_Attribute(self, node: ast.Attribute) -> Val:
        source = self._source(self.qualname(node))
        if source is not None:
            return source
        base = self.value(node.value)
        if base.known and isinstance(base.const, (str, bytes)):
            return Val(sources=base.sources, fixed=base.fixed)  # a method of a literal
        return Val(sources=base.sources)

    def _v_JoinedStr(self, node: ast.JoinedStr) -> Val:
        texts, parts, consts = [], [], []
        for piece in node.values:
            if isinstance(piece, ast.FormattedValue):
                part = self.value(piece.value)
                parts.append(part)
                texts.append(part.text or "")
                simple = piece.format_spec is None and piece.conversion in (-1, 115)
                consts.append(str(part.const) if simple and part.known and isinstance(part.const, (str, int))
                              and not isinstance(part.const, bool) else NOTHING)
            elif isinstance(piece, ast.Constant) and isinstance(piece.value, str):
                texts.append(piece.value)
                consts.append(piece.value)
        text = clip("".join(texts))
        value = derived(*parts, text=text)
        if all(isinstance(c, str) for c in consts):
            return replace(value, const="".join(consts)) if len(text) < 4096 else value  # type: ignore[arg-type]
        return value

    def _v_BinOp(self, node: ast.BinOp) -> Val:
        left, right = self.value(node.left), self.value(node.right)
        op = type(node.op).__name__
        folded = fold_binary(op, left.const, right.const) if left.known and right.known else NOTHING
        if folded is not NOTHING:
            return from_const(folded)
        if op == "Mod" and left.text is not None:  # "..." % args
            return Val(sources=left.sources | right.sources, fixed=left.fixed and right.fixed, text=left.text)
        if op == "Add" and (left.text is not None or right.text is not None):
            return Val(sources=left.sources | right.sources, fixed=left.fixed and right.fixed,
                       text=clip((left.text or "") + (right.text or "")))
        if op == "Add" and left.items is not None and right.items is not None:
            return sequence(left.items + right.items)
        return derived(left, right)

    def _v_UnaryOp(self, node: ast.UnaryOp) -> Val:
        operand = self.value(node.operand)
        if isinstance(node.op, ast.Not):
            return Val(fixed=True, const=(not operand.const) if operand.known else NOTHING)
        if operand.known and isinstance(operand.const, (int, float)) and not isinstance(operand.const, bool):
            return constant(-operand.const if isinstance(node.op, ast.USub) else
                            operand.const if isinstance(node.op, ast.UAdd) else ~int(operand.const))
        return derived(operand)

    def _v_BoolOp(self, node: ast.BoolOp) -> Val:
        values = [self.value(v) for v in node.values]
        if all(v.known for v in values):
            out = values[0]
            for v in values:
                out = v
                if bool(v.const) != isinstance(node.op, ast.And):
                    break
            return out
        return join_all(values)

    def _v_Compare(self, node: ast.Compare) -> Val:
        left = self.value(node.left)
        result: object = True
        for op, right_node in zip(node.ops, node.comparators):
            right = self.value(right_node)
            if not (left.known and right.known) or result is NOTHING:
                result = NOTHING
                break
            r = fold_compare(type(op).__name__, left.const, right.const)
            if r is NOTHING:
                result = NOTHING
                break
            if not r:
                result = False
                break
            left = right
        return Val(fixed=True, const=result)

    def _v_IfExp(self, node: ast.IfExp) -> Val:
        truth = self.truth(node.test)
        if truth is True:
            return self.value(node.body)
        if truth is False:
            return self.value(node.orelse)
        return join(self.value(node.body), self.value(node.orelse))

    def _v_List(self, node: ast.List | ast.Tuple | ast.Set) -> Val:
        if any(isinstance(e, ast.Starred) for e in node.elts):
            return derived(*(self.value(e) for e in node.elts))
        items = tuple(self.value(e) for e in node.elts)
        out = sequence(items)
        if isinstance(node, ast.Tuple) and all(i.known for i in items):
            return replace(out, const=tuple(i.const for i in items))
        return out

    _v_Tuple = _v_Set = _v_List

    def _v_ListComp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp) -> Val:
        """A comprehension: its targets take the elements of what they iterate over (in a branch of
        the environment), and it holds what its element expression makes of them."""
        env = self.scope.env
        self.scope.env = inner = env.branch()
        try:
            for gen in node.generators:
                item = element(self.value(gen.iter))
                for n in ast.walk(gen.target):
                    if isinstance(n, ast.Name):
                        inner.set(n.id, item)
            parts = [self.value(node.key), self.value(node.value)] if isinstance(node, ast.DictComp) \
                else [self.value(node.elt)]
        finally:
            self.scope.env = env
        return derived(*parts)

    _v_SetComp = _v_GeneratorExp = _v_DictComp = _v_ListComp

    def _v_Starred(self, node: ast.Starred) -> Val:
        return self.value(node.value)

    def _v_Dict(self, node: ast.Dict) -> Val:
        pairs = []
        for k, val in zip(node.keys, node.values):
            key = self.value(k) if k is not None else None
            if key is None or not key.known:
                return derived(*(self.value(x) for x in node.keys + node.values if x is not None))
            pairs.append((key.const, self.value(val)))
        return mapping(tuple(pairs))

    def _v_Subscript(self, node: ast.Subscript) -> Val:
        container = self.value(node.value)
        index = self.value(node.slice)
        out = element(container, index)
        if container.known and isinstance(container.const, (str, bytes)) and isinstance(node.slice, ast.Slice) \
                and index.known:
            return out
        if container.text is not None and out.text is None and not out.known:
            return replace(out, text="")
        return out

    def _v_Slice(self, node: ast.Slice) -> Val:
        parts = [self.value(p) if p is not None else constant(None) for p in (node.lower, node.upper, node.step)]
        if all(p.known and (p.const is None or isinstance(p.const, int)) for p in parts):
            return Val(fixed=True, const=slice(*(p.const for p in parts)))
        return derived(*parts)

    def _v_NamedExpr(self, node: ast.NamedExpr) -> Val:
        return self.value(node.value)

    def _v_FormattedValue(self, node: ast.FormattedValue) -> Val:
        return self.value(node.value)

    def _v_Call(self, node: ast.Call) -> Val:
        q = self.qualname(node.func)
        last = q.rpartition(".")[2]
        args = [self.value(a) for a in node.args]
        kwargs = [self.value(k.value) for k in node.keywords]
        if isinstance(node.func, ast.Attribute):  # request.args.get(...), request.path.split(...)
            base = self._source(self.qualname(node.func.value))
            if base is not None:
                return self._method_value(node, base, last, args, kwargs)
        source = self._source(q)
        if source is not None or q in ("input", "raw_input"):
            return source or REQUEST
        if q in SANITISERS:
            if args and args[0].known and q in ("int", "float", "len", "bool", "abs"):
                try:
                    return from_const({"int": int, "float": float, "len": len, "bool": bool, "abs": abs}[q](
                        args[0].const))  # type: ignore[operator]
                except (TypeError, ValueError, OverflowError):
                    pass
            return Val(fixed=True, text="" if q in QUOTERS else None)
        func = self.local_function(node.func)
        if func is not None:
            summarised = self.call_value(func, node)
            if summarised is not None:
                return summarised
        if isinstance(node.func, ast.Attribute) and not self._is_module(node.func.value):
            return self._method_value(node, self.value(node.func.value), last, args, kwargs)
        if q in ("configparser.ConfigParser", "configparser.RawConfigParser", "ConfigParser", "dict",
                 "collections.OrderedDict", "OrderedDict") and not args and not kwargs:
            return Val(fixed=True, keys=())  # an empty mapping whose contents are followed
        if q in PURE or q.startswith(PURE_MODULES):
            value = derived(*args, *kwargs, text="".join(a.text or "" for a in args) if q in STRING_RESULT else None)
            if q == "str" and args and args[0].known and isinstance(args[0].const, (str, int, float)):
                return constant(str(args[0].const))
            if q in ("list", "tuple") and args and args[0].items is not None:
                return sequence(args[0].items)
            return value
        return derived(*args, *kwargs, fixed=False)

    def _is_module(self, node: ast.AST) -> bool:
        """Is ``node`` a module or another name bound to no value here (``os`` in
        ``os.path.join``, an object a snippet never defines) rather than a value?"""
        while isinstance(node, ast.Attribute):
            node = node.value
        return isinstance(node, ast.Name) and self.lookup(node.id) is None and node.id not in ("self", "cls")

    def _method_value(self, node: ast.Call, receiver: Val, method: str, args: list[Val], kwargs: list[Val]) -> Val:
        if method == "format" and receiver.text is not None:
            texts = "".join(a.text or "" for a in args + kwargs)
            out = Val(sources=receiver.sources.union(*(a.sources for a in args + kwargs)),
                      fixed=receiver.fixed and all(a.fixed for a in args + kwargs), text=clip(receiver.text + texts))
            if receiver.known and isinstance(receiver.const, str) and not kwargs and all(
                    a.known and isinstance(a.const, (str, int)) for a in args) and len(receiver.const) < 1024:
                try:
                    return constant(receiver.const.format(*(a.const for a in args)))
                except (IndexError, KeyError, ValueError, AttributeError):
                    pass
            return out
        if method == "join" and receiver.text is not None and args:
            items = args[0].items
            texts = "".join(i.text or "" for i in items) if items is not None else (args[0].text or "")
            out = Val(sources=receiver.sources | args[0].sources, fixed=receiver.fixed and args[0].fixed,
                      text=clip(receiver.text + texts))
            if receiver.known and items is not None and all(i.known and isinstance(i.const, str) for i in items):
                joined = str(receiver.const).join(str(i.const) for i in items)
                return constant(joined) if len(joined) <= 4096 else out
            return out
        if receiver.keys is not None and method in ("get", "getint", "getboolean", "getfloat", "pop") and args:
            key: object = NOTHING
            if len(args) >= 2 and method != "pop" and args[0].known and args[1].known and receiver.keys and isinstance(
                    receiver.keys[0][0], tuple):  # ConfigParser.get(section, option)
                key = (args[0].const, args[1].const)
            elif args[0].known:
                key = args[0].const
            if key is not NOTHING:
                found = next((v for k, v in receiver.keys if k == key and type(k) is type(key)), None)
                if found is not None:
                    return found
                return args[1] if len(args) > 1 and not isinstance(receiver.keys[0][0] if receiver.keys else None,
                                                                    tuple) else constant(None)
            return element(receiver)
        if receiver.keys is not None and method in ("values", "items", "keys", "copy"):
            return replace(element(receiver), text=None) if method != "copy" else receiver
        if receiver.known:
            folded = fold_method(receiver.const, method, [a.const for a in args]) if all(a.known for a in args) \
                and not kwargs else NOTHING
            if folded is not NOTHING:
                return from_const(folded)
        if receiver.text is not None or receiver.known and isinstance(receiver.const, (str, bytes)):
            fixed = receiver.fixed and all(a.fixed for a in args + kwargs)
            sources = receiver.sources.union(*(a.sources for a in args + kwargs))
            if method in ("split", "rsplit", "splitlines", "partition", "rpartition"):
                return Val(sources=sources, fixed=fixed, text="")
            string = method not in ("find", "rfind", "index", "rindex", "count", "startswith", "endswith") \
                and not method.startswith("is")
            return Val(sources=sources, fixed=fixed, text=receiver.text if string else None)
        if receiver.items is not None and method in ("copy", "pop"):
            return receiver if method == "copy" else element(receiver, args[0] if args else constant(-1))
        return derived(receiver, *args, *kwargs, fixed=False)

    def truth(self, test: ast.AST) -> bool | None:
        """The truth value of a condition when it folds to a constant."""
        value = self.value(test)
        if not value.known:
            return None
        try:
            return bool(value.const)
        except Exception:  # noqa: BLE001 - a folded constant's __bool__ is a builtin's; be total anyway
            return None

    # ------------------------------------------------------------ what rules ask about expressions

    def str_expr(self, node: ast.AST | None) -> tuple[bool, str] | None:
        """``(built, text)`` when ``node`` is a string: built = formatted or concatenated from a
        value that is not fixed; text = the literal text known to end up in it (its constant parts
        and those of the strings put into it). None when it is not known to be a string."""
        value = self.value(node)
        return None if value.text is None else (value.built, value.text)

    def is_literal(self, node: ast.AST | None) -> bool:
        """A fixed value: literals, module constants, and what is computed from them or sanitised."""
        return node is not None and self.value(node).fixed

    def taint(self, node: ast.AST) -> str | None:
        """"request" if the value may come from a web request, ``input()`` or ``sys.argv``;
        "param" if from a parameter of the enclosing function or the environment; else None."""
        return self.value(node).level
