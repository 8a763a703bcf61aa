"""Error types the CLI maps to exit codes (stdlib only, importable from every layer)."""


class InputError(ValueError):
    """Bad input: a file, folder or option that cannot be used. One line, naming it. Exit 2."""


class CheckFailed(RuntimeError):
    """A check that ran and failed (an accuracy gate, a parity check). Exit 1."""
