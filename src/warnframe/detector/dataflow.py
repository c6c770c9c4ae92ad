"""What the rule engine knows about a value: where it may come from, whether it is fixed, its text.

``ast_rules.RuleVisitor`` evaluates every expression a rule asks about to a :class:`Val` in the
environment of the statement it sits in (:class:`Env`), and binds names to values as it walks a
function in statement order: an intra-procedural dataflow, joined at the end of each branch
(``if``/``else``, loops, ``try``, ``match``; a branch that always returns or raises is left out of
the join, a branch whose condition folds to a constant is not taken), with the module's constants
visible in every function. ``docs/detector_rules.md`` says what it follows and what it does not.

A value is *fixed* when it cannot carry text the program's caller chose: a literal, a module
constant, anything computed from fixed values by a known-pure operation (formatting, ``+``, string
methods, ``base64``, ``os.path.join``, ...), and the output of a sanitiser (``int()``, ``len()``,
``shlex.quote()``, ...). Its *sources* are where input may have come from: ``request`` (a web
request, ``input()``, ``sys.argv``), ``param`` (a parameter of the enclosing function, the
environment), or ``arg:<name>`` (a parameter while a same-file helper is summarised). Constant
folding is bounded (``MAX_TEXT`` characters, small numbers), so a value never costs more than the
code that built it.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace

#: The longest literal text (and folded constant string) a value keeps: enough for any query or
#: command, and it keeps chains like ``b = a + a; c = b + b; ...`` linear.
MAX_TEXT = 4096
_MAX_INT = 1 << 64


class _Nothing:
    """``Val.const`` of a value whose constant value is not known."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOTHING"


NOTHING = _Nothing()


@dataclass(frozen=True, slots=True)
class Val:
    """One abstract value (see the module docstring).

    ``text``: the literal text known to end up in it when it is known to be a string (None when it
    is not), used by rules that look for SQL keywords or shell syntax; ``const``: its value when it
    is a known constant (``NOTHING`` otherwise); ``items``: a list or tuple's elements, in order,
    when they are known; ``keys``: a mapping's ``(constant key, value)`` pairs when every key is
    known (dicts, and ``configparser`` sections as ``(section, option)`` keys); ``marks``: what a
    family marked the value as when it was bound (``"path"``: a path built from input).
    """

    sources: frozenset[str] = frozenset()
    fixed: bool = False
    text: str | None = None
    const: object = NOTHING
    items: tuple[Val, ...] | None = None
    keys: tuple[tuple[object, Val], ...] | None = None
    marks: frozenset[str] = frozenset()

    @property
    def built(self) -> bool:
        """A string formatted or concatenated from a part that is not fixed."""
        return self.text is not None and not self.fixed

    @property
    def level(self) -> str | None:
        """``"request"`` if input from a request may reach it, ``"param"`` for any other source."""
        if "request" in self.sources:
            return "request"
        return "param" if self.sources else None

    @property
    def known(self) -> bool:
        return self.const is not NOTHING


UNKNOWN = Val()
REQUEST = Val(sources=frozenset({"request"}))
PARAM = Val(sources=frozenset({"param"}))


def clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT]


def constant(value: object) -> Val:
    """The value of a literal (a string's text is itself)."""
    if isinstance(value, str):
        return Val(fixed=True, text=clip(value), const=value if len(value) <= MAX_TEXT else NOTHING)
    if isinstance(value, bytes):
        return Val(fixed=True, const=value if len(value) <= MAX_TEXT else NOTHING)
    if isinstance(value, bool) or value is None or (isinstance(value, (int, float)) and abs(value) < _MAX_INT):
        return Val(fixed=True, const=value)
    return Val(fixed=True)


def sequence(items: tuple[Val, ...]) -> Val:
    """A list or tuple of these values."""
    sources = frozenset().union(*(i.sources for i in items)) if items else frozenset()
    return Val(sources=sources, fixed=all(i.fixed for i in items), items=items)


def mapping(keys: tuple[tuple[object, Val], ...]) -> Val:
    values = [v for _, v in keys]
    sources = frozenset().union(*(v.sources for v in values)) if values else frozenset()
    return Val(sources=sources, fixed=all(v.fixed for v in values), keys=keys)


def derived(*parts: Val, text: str | None = None, fixed: bool | None = None) -> Val:
    """A value computed from ``parts`` by an operation the engine does not fold: their sources,
    fixed when they all are (unless told), a string with ``text`` when given."""
    sources = frozenset().union(*(p.sources for p in parts)) if parts else frozenset()
    return Val(sources=sources, fixed=all(p.fixed for p in parts) if fixed is None else fixed,
               text=None if text is None else clip(text))


def join(a: Val, b: Val) -> Val:
    """What a name may hold after two branches that bound it to ``a`` and ``b``."""
    if a == b:
        return a
    text = a.text if b.text is None else b.text if a.text is None else clip(
        a.text if a.text == b.text else a.text + "\n" + b.text)
    items = None
    if a.items is not None and b.items is not None and len(a.items) == len(b.items):
        items = tuple(join(x, y) for x, y in zip(a.items, b.items))
    keys = None
    if a.keys is not None and b.keys is not None:
        bk = dict(b.keys)
        merged = [(k, join(v, bk.pop(k)) if k in bk else v) for k, v in a.keys]
        keys = tuple(merged + list(bk.items()))
    return Val(sources=a.sources | b.sources, fixed=a.fixed and b.fixed, text=text,
               const=a.const if a.const == b.const and type(a.const) is type(b.const) else NOTHING,
               items=items, keys=keys, marks=a.marks | b.marks)


def join_all(values: list[Val]) -> Val:
    out = values[0] if values else UNKNOWN
    for v in values[1:]:
        out = join(out, v)
    return out


def element(container: Val, index: Val | None = None) -> Val:
    """``container[index]`` (``index`` None: any element, as a ``for`` loop or an unknown index sees it)."""
    if index is not None and index.known:
        key = index.const
        if container.items is not None and isinstance(key, int) and not isinstance(key, bool):
            if -len(container.items) <= key < len(container.items):
                return container.items[key]
        if container.keys is not None:
            for k, v in container.keys:
                if k == key and type(k) is type(key):
                    return v
        if container.known and isinstance(container.const, (str, bytes)) and isinstance(key, (int, slice)):
            try:
                return constant(container.const[key])
            except (IndexError, TypeError, ValueError):
                return UNKNOWN
    parts = list(container.items or ()) + [v for _, v in container.keys or ()]
    inner = join_all(parts) if parts and (container.items is not None or container.keys is not None) else None
    extra = index.sources if index is not None and not (container.items is not None or container.keys is not None) \
        else frozenset()
    if inner is not None:
        return replace(inner, sources=inner.sources | extra, marks=frozenset())
    text = "" if container.text is not None else None
    return Val(sources=container.sources | extra, fixed=container.fixed, text=text)


# ---------------------------------------------------------------- bounded constant folding

def _small(value: object) -> bool:
    if isinstance(value, (str, bytes)):
        return len(value) <= MAX_TEXT
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return abs(value) < _MAX_INT
    if isinstance(value, float):
        return True
    if isinstance(value, tuple):
        return len(value) <= 64 and all(_small(v) for v in value)
    return False


_BINARY = {"Add": operator.add, "Sub": operator.sub, "Mult": operator.mul, "FloorDiv": operator.floordiv,
           "Div": operator.truediv, "Mod": operator.mod, "BitAnd": operator.and_, "BitOr": operator.or_,
           "BitXor": operator.xor}
_COMPARE = {"Eq": operator.eq, "NotEq": operator.ne, "Lt": operator.lt, "LtE": operator.le, "Gt": operator.gt,
            "GtE": operator.ge, "In": lambda a, b: a in b, "NotIn": lambda a, b: a not in b,
            "Is": operator.is_, "IsNot": operator.is_not}


def fold_binary(op: str, a: object, b: object) -> object:
    """``a <op> b`` for small constants, NOTHING when it is not cheap and safe to compute."""
    fn = _BINARY.get(op)
    if fn is None or not (_small(a) and _small(b)):
        return NOTHING
    if op == "Mult":  # "x" * 10**9
        n = b if isinstance(a, (str, bytes, tuple)) else a if isinstance(b, (str, bytes, tuple)) else None
        seq = a if n is b else b
        if n is not None and (not isinstance(n, int) or len(seq) * max(n, 0) > MAX_TEXT):  # type: ignore[arg-type]
            return NOTHING
    if op == "Mod" and isinstance(a, (str, bytes)) and len(a) > MAX_TEXT // 4:
        return NOTHING
    try:
        out = fn(a, b)
    except (ArithmeticError, TypeError, ValueError, KeyError, IndexError):
        return NOTHING
    return out if _small(out) else NOTHING


def fold_compare(op: str, a: object, b: object) -> object:
    fn = _COMPARE.get(op)
    if fn is None or not (_small(a) and _small(b)):
        return NOTHING
    if op in ("Is", "IsNot") and not (a is None or b is None or isinstance(a, bool) or isinstance(b, bool)):
        return NOTHING
    try:
        return bool(fn(a, b))
    except (TypeError, ValueError):
        return NOTHING


#: String methods folded on a constant receiver with constant arguments (all pure and cheap).
STR_METHODS = {"strip", "lstrip", "rstrip", "lower", "upper", "title", "capitalize", "casefold", "swapcase",
               "replace", "split", "rsplit", "splitlines", "partition", "rpartition", "startswith", "endswith",
               "find", "rfind", "index", "rindex", "count", "encode", "decode", "removeprefix", "removesuffix",
               "zfill", "ljust", "rjust", "center", "isdigit", "isalnum", "isalpha", "isdecimal", "isnumeric",
               "isidentifier", "islower", "isupper", "isspace", "expandtabs", "format", "join"}


def fold_method(receiver: object, method: str, args: list[object]) -> object:
    if method not in STR_METHODS or method in ("format", "join") or not isinstance(receiver, (str, bytes)):
        return NOTHING
    if not all(_small(a) for a in args) or method in ("zfill", "ljust", "rjust", "center", "expandtabs") and any(
            isinstance(a, int) and a > MAX_TEXT for a in args):
        return NOTHING
    try:
        out = getattr(receiver, method)(*args)
    except (TypeError, ValueError, LookupError, UnicodeError):
        return NOTHING
    if isinstance(out, list):
        out = tuple(out)
    return out if _small(out) else NOTHING


def from_const(value: object) -> Val:
    """A folded constant as a value (a tuple or list of constants keeps its items)."""
    if isinstance(value, tuple):
        return Val(fixed=True, const=value, items=tuple(from_const(v) for v in value))
    return constant(value)


# ---------------------------------------------------------------- the environment

class Env:
    """Name -> Val for one scope, with copy-on-write branches: a branch is a child ``Env`` that
    sees its parent's names and records only what it binds; ``merge`` joins the branches that
    reach the end of a compound statement back into the parent. Lookups walk at most the nesting
    depth; a merge costs the number of names the branches bound."""

    __slots__ = ("parent", "vars")

    def __init__(self, parent: Env | None = None):
        self.vars: dict[str, Val] = {}
        self.parent = parent

    def get(self, name: str) -> Val | None:
        env: Env | None = self
        while env is not None:
            found = env.vars.get(name)
            if found is not None:
                return found
            env = env.parent
        return None

    def set(self, name: str, value: Val) -> None:
        self.vars[name] = value

    def branch(self) -> Env:
        return Env(self)

    def merge(self, branches: list[Env]) -> None:
        """Join ``branches`` (children of this Env that reach the join point) into this one."""
        if len(branches) == 1:
            self.vars.update(branches[0].vars)
            return
        names: dict[str, None] = {}
        for b in branches:
            names.update(dict.fromkeys(b.vars))
        for name in names:
            before = self.get(name)
            values = [v for b in branches if (v := b.vars.get(name, before)) is not None]
            self.vars[name] = join_all(values)
