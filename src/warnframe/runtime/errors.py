"""User-facing errors: one clear line (what, where, what to do) and exit code 2."""


class UserError(Exception):
    """Bad input from the user. The CLI prints ``str(self)`` on one line and exits with code 2."""

    exit_code = 2

    def __init__(self, what: str, where: str | None = None, fix: str | None = None):
        self.what, self.where, self.fix = what, where, fix
        parts = [what]
        if where:
            parts.append(f"({where})")
        msg = " ".join(parts)
        if fix:
            msg += f"; {fix}"
        super().__init__(msg)
