"""User-facing errors: one clear line (what, where, what to do) and exit code 2."""

from __future__ import annotations

import re

#: Characters that would break the one line or disguise it: C0 and C1 controls (newline, carriage
#: return, escape...), DEL, the Unicode line and paragraph separators and the bidirectional
#: overrides and isolates (a file name can hold any of them).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str) -> str:
    """``text`` with every character that could split or disguise an error line escaped as Python
    writes it in a string literal (``\\n``, ``\\x1b``, ``\\u202e``); other text unchanged."""
    return _UNSAFE.sub(lambda m: _NAMED.get(m.group(), ascii(m.group())[1:-1]), text)


class UserError(Exception):
    """Bad input from the user. The CLI prints ``str(self)`` on one line and exits with code 2.

    ``what``, ``where`` and ``fix`` keep the text as given; ``str(self)`` escapes control
    characters (:func:`one_line`), so a file name holding a newline cannot split the line."""

    exit_code = 2

    def __init__(self, what: str, where: str | None = None, fix: str | None = None):
        self.what, self.where, self.fix = what, where, fix
        parts = [one_line(str(what))]
        if where:
            parts.append(f"({one_line(str(where))})")
        msg = " ".join(parts)
        if fix:
            msg += f"; {one_line(str(fix))}"
        super().__init__(msg)

    def refixed(self, old: str, new: str) -> UserError:
        """This error with ``old`` replaced by ``new`` in its advice (a command that names the
        setting by its own flag); itself when the advice does not mention ``old``."""
        if not self.fix or old not in self.fix:
            return self
        return UserError(self.what, self.where, self.fix.replace(old, new))
